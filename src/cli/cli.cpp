// Options and error reporting shared by the subcommands.
#include "cli/cli.h"

#include <spdlog/spdlog.h>

#include <map>

namespace facesearch::cli {

CorpusConfig Context::Config() const {
  CorpusConfig config;
  config.corpus_dir = corpus.empty() ? DefaultCorpusDir() : std::filesystem::path(corpus);
  if (!models.empty()) config.models_dir = models;
  config.audit = AuditContext{case_id, purpose};
  config.strict_permissions = strict_permissions;
  return config;
}

void Context::Report(const Error& error) {
  spdlog::error("{}", error.message);
  exit_code = kExitError;
}

void AddPipelineOptions(CLI::App& cmd, PipelineOptions& options) {
  cmd.add_option("--detector", options.detector, "Face detector: hog (fast, frontal) or cnn (slower, finds more)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, DetectorKind>{{"hog", DetectorKind::kHog}, {"cnn", DetectorKind::kCnn}},
          CLI::ignore_case))
      ->default_str("hog");
  cmd.add_option("--upsample", options.upsample,
                 "Times to double the image before detecting; 1 finds faces down to ~40 px")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  cmd.add_option("--max-pixels", options.max_pixels, "Refuse images with more pixels than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

}  // namespace facesearch::cli
