// `facesearch faces IMAGE...`: detection only — boxes, landmarks, detector score, size.
#include <spdlog/spdlog.h>

#include <iomanip>
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

std::string FaceJson(const PhotoFaces& p, size_t i) {
  const Face& f = p.faces[i];
  Json face = {{"image", p.path},
               {"sha256", p.sha256},
               {"face", i},
               {"box", BoxJson(f.box)},
               {"size", std::min(f.box.w, f.box.h)},
               {"det_score", f.det_score},
               {"landmarks", LandmarksJson(f.landmarks)}};
  if (i < p.quality.size()) {
    const FaceQuality& q = p.quality[i];
    face["sharpness"] = q.sharpness;
    face["low_quality"] = q.low();
    face["quality_issues"] = q.issues;
  }
  if (i < p.chip_paths.size()) face["chip"] = p.chip_paths[i];
  return JsonText(face);
}

void Run(Context& ctx, const FacesArgs& args) {
  auto analyzer = PhotoAnalyzer::Load(ctx.Config(), args.pipeline);
  if (!analyzer) return ctx.Report(analyzer.error());
  const std::filesystem::path crop_dir = args.crop_dir;
  bool any_face = false, any_error = false;
  if (!args.jsonl)
    std::cout << std::left << std::setw(6) << "FACE" << std::setw(20) << "BOX" << std::setw(7) << "SIZE"
              << std::setw(8) << "SCORE" << "IMAGE\n";
  for (const std::string& image : args.images) {
    auto photo = (*analyzer)->Analyze(PhotoArg(image, std::cin), args.crop_dir.empty() ? nullptr : &crop_dir);
    if (!photo) {
      spdlog::error("{}", photo.error().message);
      any_error = true;
      continue;
    }
    if (photo->faces.empty()) spdlog::info("no face found in {}", image);
    for (size_t i = 0; i < photo->faces.size(); ++i) {
      any_face = true;
      const Face& f = photo->faces[i];
      if (args.jsonl) {
        std::cout << FaceJson(*photo, i) << '\n';
        continue;
      }
      std::string box = std::to_string(f.box.w) + "x" + std::to_string(f.box.h) + "+" + std::to_string(f.box.x) +
                        "+" + std::to_string(f.box.y);
      char score[16];
      std::snprintf(score, sizeof score, "%.3f", f.det_score);
      std::cout << std::left << std::setw(6) << i << std::setw(20) << box << std::setw(7)
                << std::min(f.box.w, f.box.h) << std::setw(8) << score << TerminalText(image) << '\n';
    }
  }
  std::cout.flush();
  ctx.exit_code = any_error ? kExitError : any_face ? kExitMatch : kExitNoMatch;
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
      "  facesearch faces --crop chips/ probe.jpg     # the aligned 150x150 crops the embedder sees");
  cmd->add_option("images", args->images, "Image files, or - for stdin")->required();
  cmd->add_option("--crop", args->crop_dir, "Write each face's aligned 150x150 chip as PNG into this directory");
  cmd->add_flag("--jsonl", args->jsonl, "One JSON object per face");
  AddPipelineOptions(*cmd, args->pipeline);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
