// facesearch: find the photos of a person in an image corpus. See README.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

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

int Main(int argc, char** argv) {
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
