// facesearch: find the photos of a person in an image corpus. See README.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/version.h"

namespace facesearch::cli {

namespace {

constexpr Subcommand kSubcommands[] = {
    {"index", AddIndexCommand},
    {"query", AddQueryCommand},
    {"info", AddInfoCommand},
    {"export", AddExportCommand},
    {"compare", AddCompareCommand},
    {"faces", AddFacesCommand},
    {"cluster", AddClusterCommand},
    {"eval", AddEvalCommand},
    {"forget", AddForgetCommand},
    {"optout", AddOptoutCommand},
    {"audit", AddAuditCommand},
    {"config", AddConfigCommand},
    {"verify", AddVerifyCommand},
    {"reindex", AddReindexCommand},
    {"embed", AddEmbedCommand},
    {"import", AddImportCommand},
    {"compact", AddCompactCommand},
    {"serve", AddServeCommand},
    {"user", AddUserCommand},
    {"subject", AddSubjectCommand},
};

void SetUpLogging(int verbose, bool quiet) {
  auto logger = spdlog::stderr_color_mt("facesearch");
  // Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
  const char* no_color = std::getenv("NO_COLOR");
  const bool colour = isatty(STDERR_FILENO) && !(no_color && *no_color);
  // %^..%$: colour range; %*: the message with control characters escaped (it names files).
  logger->set_formatter(TerminalLogFormatter(colour ? "%^facesearch: %l:%$ %*" : "facesearch: %l: %*"));
  logger->set_level(quiet ? spdlog::level::warn
                          : verbose > 0 ? spdlog::level::debug : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// `facesearch --cluster FILE CMD ARGS...` runs `facesearch-cluster CMD --cluster FILE ARGS...` in
// this process's place (exec: its output, exit status and signals are the command's). The sharded
// search, the ledger and the receipts live in one place, the Python runner on Ray (docs/scale.md);
// the binary stays free of Ray and of a second implementation. `optout add PHOTO` maps to the
// runner's `optout PHOTO`, `optout list` and `optout remove REQUEST_ID` to its `optout-list` and
// `optout-remove`; `audit verify` keeps its action. The runner is $FACESEARCH_CLUSTER, else
// facesearch-cluster on PATH.
int ExecCluster(int argc, char** argv) {
  static const char* const kMapped[] = {"query", "info", "forget", "optout", "compare", "audit", "verify"};
  if (argc < 4 || std::find_if(std::begin(kMapped), std::end(kMapped), [&](const char* c) {
                    return std::strcmp(c, argv[3]) == 0;
                  }) == std::end(kMapped)) {
    std::cerr << "facesearch: error: --cluster FILE is followed by query, compare, info, forget, optout add|list|remove, "
                 "audit or verify, e.g. facesearch --cluster cluster.json query probe.jpg\n";
    return kExitError;
  }
  const char* runner = std::getenv("FACESEARCH_CLUSTER");
  if (!runner || !*runner) runner = "facesearch-cluster";
  std::vector<char*> args{const_cast<char*>(runner), argv[3], const_cast<char*>("--cluster"), argv[2]};
  int rest = 4;
  if (std::strcmp(argv[3], "optout") == 0) {
    static const char* const kOptoutRunner[][2] = {
        {"add", "optout"}, {"list", "optout-list"}, {"remove", "optout-remove"}};
    const auto* action = std::find_if(std::begin(kOptoutRunner), std::end(kOptoutRunner), [&](const auto& a) {
      return argc >= 5 && std::strcmp(a[0], argv[4]) == 0;
    });
    if (action == std::end(kOptoutRunner)) {
      std::cerr << "facesearch: error: with --cluster, optout takes add PHOTO, list, or remove REQUEST_ID (the "
                   "request_id of `optout list --json`)\n";
      return kExitError;
    }
    args[1] = const_cast<char*>((*action)[1]);
    rest = 5;
  }
  for (int i = rest; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execvp(runner, args.data());
  std::cerr << "facesearch: error: --cluster runs " << runner << ", which could not be started (" << std::strerror(errno)
            << "): scripts/setup-ray.sh installs it in .venv-ray/bin; put that on PATH or set FACESEARCH_CLUSTER\n";
  return kExitError;
}

int Main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--cluster") == 0) return ExecCluster(argc, argv);
  CLI::App app{
      "facesearch: find the photos of one person in an image corpus you indexed.\n"
      "Results are leads for a person to check, never identifications: each match carries its\n"
      "distance (dlib's Euclidean distance; 0.6 is the usual same-person threshold).\n\n"
      "Typical use:\n"
      "  facesearch index ~/case-42/photos             # build or extend the corpus\n"
      "  facesearch query suspect.jpg                   # ranked matches, exit 0 if any\n"
      "  facesearch query --format jsonl probe.jpg | jq -r .image\n\n"
      "Exit status: 0 match found / success, 1 no match, 2 error.",
      "facesearch"};
  app.set_version_flag("--version", "facesearch " FACESEARCH_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  Context ctx;
  int verbose = 0;
  bool quiet = false;
  app.add_option("--corpus", ctx.corpus,
                 "Corpus directory (default: $FACESEARCH_CORPUS, else ~/.local/share/facesearch/corpus)")
      ->envname("FACESEARCH_CORPUS");
  app.add_option("--models", ctx.models,
                 "Directory of the dlib model files (default: $FACESEARCH_MODELS, else "
                 "~/.cache/facesearch/models, filled by scripts/fetch-models.sh)");
  app.add_option("--lock-wait", ctx.lock_wait_s,
                 "Seconds a command that changes the corpus waits for another writer to finish "
                 "before failing (exit 2); 0 fails at once (default: wait as long as it takes)")
      ->envname("FACESEARCH_LOCK_WAIT")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("-v,--verbose", verbose, "More detail on stderr");
  app.add_flag("-q,--quiet", quiet, "Only warnings and errors on stderr");
  AddAccountabilityOptions(app, ctx);
  std::string cluster_file;  // only here to be refused: Main execs the runner when --cluster comes first
  app.add_option("--cluster", cluster_file,
                 "Run query, compare, info, forget, optout add|list|remove, audit or verify on a sharded cluster through "
                 "facesearch-cluster "
                 "(docs/scale.md); must come first: facesearch --cluster cluster.json query probe.jpg")
      ->check([](const std::string&) {
        return std::string("--cluster must be the first argument: facesearch --cluster FILE query PHOTO");
      });
  for (const Subcommand& sub : kSubcommands) sub.add(app, ctx);
  RequireFiniteNumbers(app);

  // Logging must be configured before any subcommand callback runs.
  app.parse_complete_callback([&] { SetUpLogging(verbose, quiet); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitError;
  }
  return ctx.exit_code;
}

}  // namespace
}  // namespace facesearch::cli

int main(int argc, char** argv) {
#ifdef FACESEARCH_DLIB_AVX2
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::cerr << "facesearch: error: this build needs a CPU with AVX2 and FMA; rebuild with "
                 "cmake -DFACESEARCH_DLIB_AVX2=OFF\n";
    return facesearch::cli::kExitError;
  }
#endif
  try {
    return facesearch::cli::RunCheckingStdout([&] { return facesearch::cli::Main(argc, argv); });
  } catch (const std::exception& e) {
    std::cerr << "facesearch: internal error: " << e.what() << "\n";
    return facesearch::cli::kExitError;
  }
}
