// `facesearch query PHOTO`
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {
namespace {

struct QueryArgs {
  std::string photo;
  QueryOptions options;
  OutputFormat format = OutputFormat::kTable;
};

void Run(Context& ctx, QueryArgs& args) {
  auto result = QueryPhoto(ctx.Config(), args.photo, args.options);
  if (!result) return ctx.Report(result.error());
  if (result->faces_detected == 0) {
    spdlog::warn("no face found in {}; try --upsample 2 or --detector cnn for small or turned faces",
                 args.photo);
  }
  WriteQueryResult(std::cout, *result, args.options, args.format);
  std::cout.flush();
  if (!result->any_match() && result->faces_detected > 0)
    spdlog::info("no face in the corpus is within distance {} of the probe", args.options.threshold);
  ctx.exit_code = result->any_match() ? kExitMatch : kExitNoMatch;
}

}  // namespace

void AddQueryCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<QueryArgs>();
  CLI::App* cmd = app.add_subcommand("query", "Find the corpus faces that match the face in a photo");
  cmd->footer(
      "Matches are faces whose distance to the probe is at most --threshold, nearest first. A match\n"
      "is a lead for a person to check, not an identification: look at the distance, and at the\n"
      "photos. Exit status: 0 at least one match, 1 no match (or no face in the probe), 2 error.\n\n"
      "Examples:\n"
      "  facesearch query probe.jpg\n"
      "  facesearch query --all-faces --format csv group.jpg > leads.csv\n"
      "  curl -s https://example.org/p.jpg | facesearch query --format jsonl - | jq -r .image\n"
      "  facesearch query -q probe.jpg >/dev/null && echo 'seen before'");
  cmd->add_option("photo", args->photo, "Probe image file, or - to read it from stdin")->required();
  cmd->add_option("-k,--top-k", args->options.top_k, "Most matches to return per probe face")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("-t,--threshold", args->options.threshold,
                  "Largest distance that counts as a match (dlib: 0.6; lower is stricter)")
      ->check(CLI::Range(0.0, 2.0))
      ->capture_default_str();
  cmd->add_flag("--all-faces", args->options.all_faces,
                "Search with every face in the probe (default: the largest face only)");
  cmd->add_option("-f,--format", args->format, "Output: table, json, jsonl or csv")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable},
                                              {"json", OutputFormat::kJson},
                                              {"jsonl", OutputFormat::kJsonl},
                                              {"csv", OutputFormat::kCsv}},
          CLI::ignore_case))
      ->default_str("table");
  AddPipelineOptions(*cmd, args->options.pipeline);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
