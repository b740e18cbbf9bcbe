// `facesearch query PHOTO`
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/eval.h"

namespace facesearch::cli {
namespace {

struct QueryArgs {
  std::string photo;
  QueryOptions options;
  double max_fmr = 0;  // set: the threshold comes from the calibration table
  OutputFormat format = OutputFormat::kTable;
};

void Run(Context& ctx, QueryArgs& args) {
  if (args.max_fmr > 0) {
    args.options.threshold = ThresholdForFmr(args.max_fmr);
    if (args.options.threshold <= 0)
      return ctx.Report(Error{ErrorCode::kInvalidArgument,
                              "--max-fmr is below what the calibration table can resolve; use 1e-6 or more"});
    spdlog::debug("--max-fmr {} gives threshold {}", args.max_fmr, args.options.threshold);
  }
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
      "Matches are faces whose distance to the probe is at most --threshold, nearest first. Each\n"
      "carries its FMR: the share of different-person pairs that come this close on LFW, and a band\n"
      "(very strong <= 1e-5 < strong <= 1e-4 < moderate <= 1e-3 < weak <= 1e-2 < very weak). In a\n"
      "corpus of N faces about FMR x N strangers are expected within the threshold: a match is a\n"
      "lead for a person to check, not an identification.\n"
      "Exit status: 0 at least one match, 1 no match (or no face in the probe), 2 error.\n"
      "Every query is recorded in the audit log before results are shown (`facesearch audit`);\n"
      "say why with --case ID and --purpose TEXT.\n\n"
      "Examples:\n"
      "  facesearch query probe.jpg\n"
      "  facesearch --case 2025-017 --purpose 'robbery, Main St' query probe.jpg\n"
      "  facesearch query --max-fmr 1e-4 probe.jpg        # only strong or very strong matches\n"
      "  facesearch query --all-faces --format csv group.jpg > leads.csv\n"
      "  curl -s https://example.org/p.jpg | facesearch query --format jsonl - | jq -r .image\n"
      "  facesearch query -q probe.jpg >/dev/null && echo 'seen before'");
  cmd->add_option("photo", args->photo, "Probe image file, or - to read it from stdin")->required();
  cmd->add_option("-k,--top-k", args->options.top_k, "Most matches to return per probe face")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  CLI::Option* threshold =
      cmd->add_option("-t,--threshold", args->options.threshold,
                      "Largest distance that counts as a match (dlib: 0.6; lower is stricter)")
          ->check(CLI::Range(0.0, 2.0))
          ->capture_default_str();
  cmd->add_option("--max-fmr", args->max_fmr,
                  "Instead of --threshold: the largest false-match rate to accept, e.g. 1e-3 "
                  "(from the LFW calibration in data/calibration.tsv)")
      ->check(CLI::Range(1e-9, 1.0))
      ->excludes(threshold);
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
