// `facesearch index PATH...`
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {
namespace {

// Exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report Ctrl-C).
constexpr int kExitInterrupted = 130;

struct IndexArgs {
  std::vector<std::string> paths;
  IndexOptions options;
  bool json = false;
};

// Seconds a stopping run has to finish the inputs in progress and commit. A read that does not
// return (a list on a pipe nobody writes to, a wait for the corpus lock) must not keep a stopped
// run alive, and ending the process at any point is safe: SQLite's journal and the index
// catch-up keep the corpus consistent, and what was committed stays.
constexpr unsigned kStopGraceSeconds = 5;
static_assert(kStopGraceSeconds == 5, "the messages below and --help say 5 s");

// Set by SIGINT/SIGTERM; the run stops starting new inputs and commits what is done. The handler
// then restores the default actions, so a second signal ends the process at once, and arms a
// SIGALRM deadline of kStopGraceSeconds. Only async-signal-safe calls in the handlers.
std::atomic<bool> g_interrupted{false};

void Say(const char* text, size_t size) {
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, text, size);
}

extern "C" void OnStopDeadline(int) {
  static constexpr char kText[] =
      "facesearch: error: the run did not stop within 5 s (an input or the corpus lock is not "
      "answering); exiting: what was committed stays, run the same command again to finish\n";
  Say(kText, sizeof kText - 1);
  ::_exit(kExitInterrupted);
}

extern "C" void OnInterrupt(int) {
  static constexpr char kText[] =
      "facesearch: warning: stopping: finishing the inputs in progress and committing (a second "
      "signal stops at once)\n";
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGALRM, OnStopDeadline);
  ::alarm(kStopGraceSeconds);
  Say(kText, sizeof kText - 1);
}

}  // namespace

void PrintIndexSummary(std::ostream& out, const IndexSummary& s, bool json, const char* verb) {
  if (json) {
    out << IndexSummaryJson(s);
    return;
  }
  out << verb << " " << s.files << " files in " << fmt::format("{}", RoundDecimals(s.elapsed_s, 1))
      << " s: " << s.added << " images with faces (" << s.faces << " faces), " << s.noface
      << " without a face, " << s.duplicates << " already indexed, " << s.errors << " errors";
  if (s.erased > 0) out << ", " << s.erased << " skipped (erased earlier)";
  if (s.optout_faces > 0) out << ", " << s.optout_faces << " face(s) skipped (opt-out)";
  if (s.skipped > 0) out << ", " << s.skipped << " skipped (robots.txt, noimageindex, scheme)";
  if (s.interrupted) out << "; INTERRUPTED: run the same command again to finish";
  out << "\n";
}

void LogFileOutcome(const FileOutcome& o) {
  if (o.result == FileResult::kError) spdlog::warn("{}: {}", o.path, o.error);
  else if (!o.warning.empty()) spdlog::warn("{}: {}", o.path, o.warning);
  else if (o.result == FileResult::kSkipped) spdlog::info("{}: skipped ({}): {}", o.path, o.reason, o.error);
  else if (o.result == FileResult::kErased)
    spdlog::info("{}: skipped: erased earlier by `facesearch forget` (--allow-reindex to add it)", o.path);
  else spdlog::debug("{}: {} ({} faces)", o.path, FileResultName(o.result), o.faces);
}

void ShowProgressOnTerminal(IndexOptions& options) {
  if (isatty(STDERR_FILENO) && spdlog::default_logger()->level() <= spdlog::level::info)
    options.on_progress = [](const IndexProgress& p) {
      double rate = p.elapsed_s > 0 ? static_cast<double>(p.done) / p.elapsed_s : 0.0;
      double faces_rate = p.elapsed_s > 0 ? static_cast<double>(p.faces) / p.elapsed_s : 0.0;
      long long eta_s = rate > 0 ? static_cast<long long>(static_cast<double>(p.total - p.done) / rate) : 0;
      std::fprintf(stderr, "\r%lld/%lld files, %lld faces, %lld errors, %.1f files/s, %.1f faces/s, ETA %lld:%02lld ",
                   static_cast<long long>(p.done), static_cast<long long>(p.total),
                   static_cast<long long>(p.faces), static_cast<long long>(p.errors), rate, faces_rate,
                   eta_s / 60, eta_s % 60);
      if (p.done == p.total) std::fputc('\n', stderr);
    };
}

namespace {

void Run(Context& ctx, IndexArgs& args) {
  const bool tty = isatty(STDERR_FILENO) && spdlog::default_logger()->level() <= spdlog::level::info;
  args.options.on_file = LogFileOutcome;
  ShowProgressOnTerminal(args.options);
  if (args.paths.empty() && args.options.list_files.empty() && args.options.manifests.empty() &&
      args.options.url_lists.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "nothing to index: give PATH..., --from-file, --manifest or --urls"});
  g_interrupted = false;
  args.options.stop = &g_interrupted;
  args.options.list_stream = &std::cin;
  auto previous_int = std::signal(SIGINT, OnInterrupt);
  auto previous_term = std::signal(SIGTERM, OnInterrupt);
  auto summary = IndexPaths(ctx.Config(), args.paths, args.options);
  ::alarm(0);  // stopped in time: no deadline while the summary is printed
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  if (!summary) {
    ctx.Report(summary.error());
    if (g_interrupted) ctx.exit_code = kExitInterrupted;
    return;
  }
  if (tty && summary->interrupted) std::fputc('\n', stderr);  // end the progress line
  PrintIndexSummary(std::cout, *summary, args.json, "indexed");
  ctx.exit_code = summary->interrupted ? kExitInterrupted : kExitMatch;
}

}  // namespace

void AddIndexCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<IndexArgs>();
  CLI::App* cmd = app.add_subcommand("index", "Add images to the corpus: detect, align and embed every face");
  cmd->footer(
      "Directories are walked recursively for .jpg .jpeg .png .webp .bmp .tif .tiff files and\n"
      ".mp4 .m4v .mov .mkv .webm .avi videos; files named on the command line are always tried.\n"
      "A video is sampled (--video-fps, default 2 per second) and each face is tracked across the\n"
      "samples: one appearance is stored once, as its best face, with its frame and the times it\n"
      "was first and last seen. Content already in the corpus (same SHA-256) is\n"
      "skipped, so re-running is cheap. A file that fails is recorded with its reason and the run\n"
      "goes on (`facesearch info --errors` lists them). Exit status 0 when the run completes (see\n"
      "the summary for per-file errors), 2 when it cannot run, 130 when SIGINT (Ctrl-C) or SIGTERM\n"
      "stopped it: what was done is committed and a second run finishes the job. A stopped run\n"
      "that cannot finish its inputs in progress within 5 s (a pipe nobody writes to, the lock)\n"
      "exits then; a second signal stops it at once. Content erased by\n"
      "`facesearch forget` is skipped unless --allow-reindex, and faces matching an opt-out\n"
      "(`facesearch optout`) are never stored.\n\n"
      "Manifests (--manifest, .jsonl or .csv) give each image's path or url and its provenance:\n"
      "page_url, source, captured_at, licence, notes; queries and export return them.\n"
      "URLs (--urls, manifests, or as PATH) are fetched politely: robots.txt and X-Robots-Tag\n"
      "(noimageindex, noindex, none) are honoured, one request per second and two at a time per\n"
      "host, User-Agent \"facesearch/VERSION (+CONTACT)\". --ignore-robots is recorded in the audit log.\n\n"
      "Examples:\n"
      "  facesearch index ~/case-42/photos\n"
      "  facesearch index --video-fps 4 --video-budget 600 cctv/      # denser sampling, 10 min per video\n"
      "  find /mnt/archive -name '*.jpg' -newer last-run | facesearch index -\n"
      "  find /mnt/archive -name '*.jpg' -print0 | facesearch index --from-file - -0\n"
      "  facesearch index --manifest seized.jsonl --manifest web.csv\n"
      "  facesearch index --urls urls.txt --contact 'case-42 team <ana@example.org>'\n"
      "  facesearch --corpus /srv/cases/42 index --jobs 8 --json photos/ > summary.json\n"
      "  facesearch --corpus ~/case-42-sface index --model sface ~/case-42/photos   # SFace: a new corpus");
  cmd->add_option("paths", args->paths, "Files, directories, URLs, or - to read paths from stdin");
  AddInputOptions(*cmd, args->options);
  cmd->add_flag("--ignore-robots", args->options.fetch.ignore_robots,
                "Do not honour robots.txt and X-Robots-Tag (recorded in the audit log)");
  cmd->add_flag("--json", args->json, "Print the summary as JSON on stdout");
  cmd->add_flag("--allow-reindex", args->options.allow_reindex,
                "Also index content that `facesearch forget` erased earlier (skipped by default)");
  AddPipelineOptions(*cmd, args->options.pipeline);
  AddVideoOptions(*cmd, args->options.pipeline.video);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

void AddInputOptions(CLI::App& app, IndexOptions& options) {
  CLI::App* cmd = &app;
  cmd->add_option("--from-file", options.list_files,
                  "Also index the paths (or URLs) listed in this file, one per line (- for stdin)");
  cmd->add_flag("-0,--null", options.null_separated,
                "Lists read from stdin or --from-file are NUL-separated (find -print0)");
  cmd->add_option("--manifest", options.manifests,
                  "Index the rows of this JSONL or CSV manifest (path or url, page_url, source, "
                  "captured_at, licence, notes)");
  cmd->add_option("--manifest-format", options.manifest_format, "jsonl or csv (default: by extension)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, ManifestFormat>{{"auto", ManifestFormat::kAuto},
                                                {"jsonl", ManifestFormat::kJsonl},
                                                {"csv", ManifestFormat::kCsv}},
          CLI::ignore_case));
  cmd->add_option("--urls", options.url_lists, "Fetch and index the URLs listed in this file, one per line");
  FetchOptions& fetch = options.fetch;
  cmd->add_option("--fetch-timeout", fetch.timeout_s, "Seconds for one HTTP request")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-fetch-bytes", fetch.max_bytes,
                  "Largest HTTP body accepted, in bytes (default: 256 MiB, the file size limit)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-redirects", fetch.max_redirects, "Redirects followed per URL")
      ->check(CLI::Range(0, 20))->capture_default_str();
  cmd->add_option("--retries", fetch.retries, "Retries after a 5xx, 429, timeout or connection error")
      ->check(CLI::Range(0, 10))->capture_default_str();
  cmd->add_option("--backoff", fetch.backoff_s, "Seconds before the first retry (doubles each time)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--host-rate", fetch.host_rate, "Requests per second per host")
      ->check(CLI::Range(0.01, 1000.0))->capture_default_str();
  cmd->add_option("--host-concurrency", fetch.host_concurrency, "Requests in flight per host")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--contact", fetch.contact,
                  "Contact in the User-Agent \"facesearch/VERSION (+CONTACT)\", e.g. an e-mail address");
  cmd->add_option("-j,--jobs", options.jobs,
                  "Worker threads, 1 to " + std::to_string(MaxIndexJobs()) +
                      " (default: one per CPU; each holds its own ~34 MB copy of the models)")
      ->check(CLI::Validator(
          [](std::string& value) {
            int jobs = 0;
            const char* end = value.data() + value.size();
            auto [stop, ec] = std::from_chars(value.data(), end, jobs);
            return ec == std::errc() && stop == end && jobs >= 1 && jobs <= MaxIndexJobs()
                       ? std::string()
                       : JobsOutOfRange(value);
          },
          "1.." + std::to_string(MaxIndexJobs())));
}

}  // namespace facesearch::cli
