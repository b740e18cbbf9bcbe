// `facesearch index PATH...`
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {
namespace {

struct IndexArgs {
  std::vector<std::string> paths;
  IndexOptions options;
  bool json = false;
  std::string from_file;  // a list of paths; "-" for stdin
  bool null_separated = false;
};

// Appends the paths listed in `file` (newline- or NUL-separated), as `query --from-file` does.
Status ReadPathList(const std::string& file, bool null_separated, std::vector<std::string>& paths) {
  std::ifstream in;
  if (file != "-") {
    in.open(file);
    if (!in) return Fail(ErrorCode::kNotFound, "cannot open path list " + file);
  }
  std::istream& src = file == "-" ? std::cin : in;
  for (std::string line; std::getline(src, line, null_separated ? '\0' : '\n');) {
    if (!null_separated && !line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) paths.push_back(line);
  }
  return Ok();
}

void PrintSummary(const IndexSummary& s, bool json) {
  if (json) {
    std::cout << "{\"files\":" << s.files << ",\"added\":" << s.added << ",\"noface\":" << s.noface
              << ",\"duplicates\":" << s.duplicates << ",\"errors\":" << s.errors
              << ",\"faces\":" << s.faces << ",\"erased\":" << s.erased
              << ",\"optout_faces\":" << s.optout_faces << ",\"seconds\":" << JsonNumber(s.elapsed_s) << "}\n";
    return;
  }
  std::cout << "indexed " << s.files << " files in " << JsonNumber(std::round(s.elapsed_s * 10) / 10)
            << " s: " << s.added << " images with faces (" << s.faces << " faces), " << s.noface
            << " without a face, " << s.duplicates << " already indexed, " << s.errors << " errors";
  if (s.erased > 0) std::cout << ", " << s.erased << " skipped (erased earlier)";
  if (s.optout_faces > 0) std::cout << ", " << s.optout_faces << " face(s) skipped (opt-out)";
  std::cout << "\n";
}

void Run(Context& ctx, IndexArgs& args) {
  if (!args.from_file.empty())
    if (Status s = ReadPathList(args.from_file, args.null_separated, args.paths); !s) return ctx.Report(s.error());
  if (args.paths.empty()) return ctx.Report(Error{ErrorCode::kInvalidArgument, "nothing to index (PATH... or --from-file)"});
  const bool tty = isatty(STDERR_FILENO) && spdlog::default_logger()->level() <= spdlog::level::info;
  args.options.on_file = [&](const FileOutcome& o) {
    if (o.result == FileResult::kError) spdlog::warn("{}: {}", o.path, o.error);
    else if (o.result == FileResult::kErased)
      spdlog::info("{}: skipped: erased earlier by `facesearch forget` (index --allow-reindex to add it)", o.path);
    else spdlog::debug("{}: {} ({} faces)", o.path, FileResultName(o.result), o.faces);
  };
  if (tty)
    args.options.on_progress = [](const IndexProgress& p) {
      double rate = p.elapsed_s > 0 ? static_cast<double>(p.done) / p.elapsed_s : 0.0;
      double faces_rate = p.elapsed_s > 0 ? static_cast<double>(p.faces) / p.elapsed_s : 0.0;
      long long eta_s = rate > 0 ? static_cast<long long>(static_cast<double>(p.total - p.done) / rate) : 0;
      std::fprintf(stderr, "\r%lld/%lld files, %lld faces, %lld errors, %.1f files/s, %.1f faces/s, ETA %lld:%02lld ",
                   static_cast<long long>(p.done), static_cast<long long>(p.total),
                   static_cast<long long>(p.faces), static_cast<long long>(p.errors), rate, faces_rate,
                   eta_s / 60, eta_s % 60);
      if (p.done == p.total) std::fputc('\n', stderr);
    };
  auto summary = IndexPaths(ctx.Config(), args.paths, args.options);
  if (!summary) return ctx.Report(summary.error());
  PrintSummary(*summary, args.json);
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddIndexCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<IndexArgs>();
  CLI::App* cmd = app.add_subcommand("index", "Add images to the corpus: detect, align and embed every face");
  cmd->footer(
      "Directories are walked recursively for .jpg .jpeg .png .webp .bmp .tif .tiff files; files\n"
      "named on the command line are always tried. Content already in the corpus (same SHA-256) is\n"
      "skipped, so re-running is cheap. A file that fails is recorded with its reason and the run\n"
      "goes on. Exit status 0 when the run completes (see the summary for per-file errors), 2 when\n"
      "it cannot run. Content erased by `facesearch forget` is skipped unless --allow-reindex, and\n"
      "faces matching an opt-out (`facesearch optout`) are never stored.\n\n"
      "Examples:\n"
      "  facesearch index ~/case-42/photos\n"
      "  find /mnt/archive -name '*.jpg' -newer last-run | facesearch index -\n"
      "  find /mnt/archive -name '*.jpg' -print0 | facesearch index --from-file - -0\n"
      "  facesearch --corpus /srv/cases/42 index --jobs 8 --json photos/ > summary.json");
  cmd->add_option("paths", args->paths, "Files, directories, or - to read paths from stdin");
  cmd->add_option("--from-file", args->from_file, "Also index the paths listed in this file (- for stdin)");
  cmd->add_flag("-0,--null", args->null_separated, "--from-file lists are NUL-separated (find -print0)");
  cmd->add_option("-j,--jobs", args->options.jobs, "Worker threads (default: one per CPU)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "Print the summary as JSON on stdout");
  cmd->add_flag("--allow-reindex", args->options.allow_reindex,
                "Also index content that `facesearch forget` erased earlier (skipped by default)");
  AddPipelineOptions(*cmd, args->options.pipeline);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
