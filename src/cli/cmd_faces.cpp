// `facesearch faces IMAGE...`: detection only — boxes, landmarks, detector score, size.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/analyze.h"

namespace facesearch::cli {
namespace {

struct FacesArgs {
  std::vector<std::string> images;
  PipelineOptions pipeline;
  std::string crop_dir;
  bool jsonl = false;
};

// `faces --server URL`: the photos are uploaded and analysed by the server, which answers what
// `faces` prints (its detector settings apply).
void RunRemote(Context& ctx, const FacesArgs& args) {
  if (!args.crop_dir.empty()) return ctx.Report(Error{ErrorCode::kInvalidArgument, "--crop is not available with --server"});
  server::ClientRequest request{"POST", "/v1/faces", {{"format", args.jsonl ? "jsonl" : "table"}}, {}};
  for (const std::string& image : args.images) {
    auto part = PhotoPart("image", image, args.pipeline.max_file_bytes);
    if (!part) return ctx.Report(part.error());
    request.parts.push_back(std::move(*part));
  }
  RunOnServer(ctx, std::move(request));
}

void Run(Context& ctx, const FacesArgs& args) {
  if (!ctx.server.empty()) return RunRemote(ctx, args);
  auto analyzer = PhotoAnalyzer::Load(ctx.Config(), args.pipeline);
  if (!analyzer) return ctx.Report(analyzer.error());
  const std::filesystem::path crop_dir = args.crop_dir;
  ctx.exit_code = WriteFaces(
      std::cout, args.images, args.jsonl,
      [&](size_t i) { return (*analyzer)->Analyze(PhotoArg(args.images[i], std::cin), args.crop_dir.empty() ? nullptr : &crop_dir); },
      [](const LogLine& line) { spdlog::log(line.level, "{}", line.text); });
}

}  // namespace

void AddFacesCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<FacesArgs>();
  CLI::App* cmd = app.add_subcommand("faces", "Detect faces only: boxes, landmarks, detector score, size");
  cmd->footer(
      "Needs no corpus. Faces are numbered from 0 in detector order (the numbers --face uses).\n"
      "Exit status: 0 at least one face, 1 no face in any image, 2 an image could not be read.\n\n"
      "Examples:\n"
      "  facesearch faces group.jpg\n"
      "  facesearch faces --jsonl *.jpg | jq -c '{image, size}'\n"
      "  facesearch faces --crop chips/ probe.jpg     # the aligned 150x150 crops the embedder sees\n"
      "  facesearch faces --server http://127.0.0.1:8420 --jsonl group.jpg   # on a `facesearch serve`");
  cmd->add_option("images", args->images, "Image files, or - for stdin")->required();
  cmd->add_option("--crop", args->crop_dir, "Write each face's aligned 150x150 chip as PNG into this directory");
  cmd->add_flag("--jsonl", args->jsonl, "One JSON object per face");
  AddPipelineOptions(*cmd, args->pipeline);
  AddServerOptions(*cmd, ctx);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
