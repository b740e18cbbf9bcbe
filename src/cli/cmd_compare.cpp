// `facesearch compare A B`: 1:1 verification of two photos.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/analyze.h"
#include "common/json.h"
#include "facesearch/eval.h"

namespace facesearch::cli {
namespace {

struct CompareArgs {
  std::string a, b;
  CompareOptions options;
  int face_a = -1, face_b = -1;
  double max_fmr = 0;  // set: the threshold comes from the calibration table
  bool threshold_given = false;  // else: the model's same-person distance
  bool json = false;
};

void RunRemote(Context& ctx, CompareArgs& args) {
  if (args.a == "-" && args.b == "-")
    return ctx.Report(Error{ErrorCode::kInvalidArgument, "only one of the two photos can come from stdin"});
  server::ClientRequest request{"POST", "/v1/compare", {}, {}};
  auto& p = request.params;
  if (args.max_fmr > 0) p.emplace_back("max_fmr", fmt::format("{}", args.max_fmr));
  else if (args.threshold_given) p.emplace_back("threshold", fmt::format("{}", args.options.threshold));
  if (args.face_a >= 0) p.emplace_back("face_a", std::to_string(args.face_a));
  if (args.face_b >= 0) p.emplace_back("face_b", std::to_string(args.face_b));
  p.emplace_back("format", args.json ? "json" : "table");
  for (const auto& [name, photo] : {std::pair{"a", &args.a}, std::pair{"b", &args.b}}) {
    auto part = PhotoPart(name, *photo, args.options.pipeline.max_file_bytes);
    if (!part) return ctx.Report(part.error());
    request.parts.push_back(std::move(*part));
  }
  RunOnServer(ctx, std::move(request));
}

void Run(Context& ctx, CompareArgs& args) {
  if (!ctx.server.empty()) return RunRemote(ctx, args);
  // Both photos are embedded with --embedding (plain by default): its calibration applies.
  const Calibration calibration = Calibration::For(args.options.pipeline.embedding.value_or(EmbeddingMode{}));
  if (!calibration.exact())
    spdlog::warn("no calibration was measured for '{}' embeddings: the false-match rate uses the {} table and is "
                 "approximate", EmbeddingModeName(*args.options.pipeline.embedding), calibration.mode());
  if (args.max_fmr > 0) {
    args.options.threshold = calibration.ThresholdForFmr(args.max_fmr);
    if (args.options.threshold <= 0)
      return ctx.Report(Error{ErrorCode::kInvalidArgument,
                              "--max-fmr is below what the calibration table can resolve; use 1e-6 or more"});
  } else if (!args.threshold_given) {
    args.options.threshold = calibration.same_person_distance();
  }
  if (args.face_a >= 0) args.options.face_a = args.face_a;
  if (args.face_b >= 0) args.options.face_b = args.face_b;
  auto r = ComparePhotos(ctx.Config(), PhotoArg(args.a, std::cin), PhotoArg(args.b, std::cin), args.options);
  if (!r) return ctx.Report(r.error());
  for (const PhotoFaces* p : {&r->a, &r->b})
    if (p->faces.empty()) spdlog::warn("no face found in {}", p->path);
  std::cout << (args.json ? CompareJson(*r, args.options.threshold, calibration)
                         : CompareText(*r, args.options.threshold, calibration));
  ctx.exit_code = r->same ? kExitMatch : kExitNoMatch;
}

}  // namespace

void AddCompareCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand("compare", "Tell whether two photos show the same person (1:1)");
  cmd->footer(
      "Compares the largest face of each photo (or --face-a/--face-b, counted from 0 in detector\n"
      "order). Exit status: 0 same person (distance <= threshold), 1 different or no face, 2 error.\n"
      "The FMR is the share of different-person pairs this close on LFW, measured with the same\n"
      "--embedding mode where one was measured (plain, flip).\n\n"
      "Examples:\n"
      "  facesearch compare id-card.jpg cctv-still.png\n"
      "  facesearch compare --json a.jpg b.jpg | jq .distance\n"
      "  facesearch compare --max-fmr 1e-4 a.jpg b.jpg && echo same\n"
      "  curl -s https://example.org/b.jpg | facesearch compare a.jpg -");
  cmd->add_option("a", args->a, "First photo (or - for stdin)")->required();
  cmd->add_option("b", args->b, "Second photo (or - for stdin)")->required();
  CLI::Option* threshold =
      cmd->add_option("-t,--threshold", args->options.threshold, "Largest distance that counts as the same person")
          ->check(CLI::Range(0.0, 2.0))
          ->capture_default_str();
  cmd->add_option("--max-fmr", args->max_fmr,
                  "Instead of --threshold: the largest false-match rate to accept, e.g. 1e-3 (from the LFW calibration)")
      ->check(CLI::Range(1e-9, 1.0))
      ->excludes(threshold);
  cmd->add_option("--face-a", args->face_a, "Face of the first photo to use (default: largest)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--face-b", args->face_b, "Face of the second photo to use (default: largest)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args->json, "Print the result as JSON");
  AddPipelineOptions(*cmd, args->options.pipeline);
  AddServerOptions(*cmd, ctx);
  cmd->callback([&ctx, args, threshold] {
    args->threshold_given = threshold->count() > 0;
    Run(ctx, *args);
  });
}

}  // namespace facesearch::cli
