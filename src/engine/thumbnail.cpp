// Face crops for reports: decode once, crop and scale each box, encode as JPEG.
#include "engine/corpus.h"
#include "engine/video.h"
#include "facesearch/analyze.h"
#include "image/thumbnail.h"
#include "image/video.h"

#include <algorithm>
#include <chrono>

namespace facesearch {

Result<std::vector<std::string>> FaceThumbnails(std::string_view image_bytes, const std::vector<Box>& boxes,
                                                const PipelineOptions& limits, int max_side) {
  auto image = DecodeImage(image_bytes, LimitsFrom(limits));
  if (!image) return Fail(ErrorCode::kDecode, image.error().message);
  std::vector<std::string> out;
  out.reserve(boxes.size());
  for (const Box& b : boxes) {
    auto crop = CropScaled(*image, b.x, b.y, b.w, b.h, 0.25, max_side);
    if (!crop) {
      out.emplace_back();
      continue;
    }
    FS_ASSIGN(std::string jpeg, EncodeImage(*crop, ".jpg"));
    out.push_back(std::move(jpeg));
  }
  return out;
}

Result<std::string> VideoFaceThumbnail(const std::string& path, const std::string& expected_sha256,
                                       const VideoSpan& video, const Box& box, const PipelineOptions& options,
                                       int max_side) {
  FS_ASSIGN(VideoFile file, VideoFile::Open(path, options.video.max_bytes));
  if (file.sha256() != expected_sha256)
    return Fail(ErrorCode::kDecode, path + " has changed since it was indexed");
  FS_ASSIGN(auto reader, VideoReader::Open(file.fd(), path, {options.max_pixels, options.video.max_seconds}));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(options.video.budget_s));
  // The stored frame's time is its number over the frame rate: ask a hair earlier, so rounding can
  // never skip it.
  FS_ASSIGN(auto frame, reader->Next(std::max(0.0, video.at_s - 1e-6), deadline));
  if (!frame || frame->number != video.frame)
    return Fail(ErrorCode::kDecode, path + ": frame " + std::to_string(video.frame) + " was not reached");
  FS_ASSIGN(RgbImage crop, CropScaled(frame->image, box.x, box.y, box.w, box.h, 0.25, max_side));
  return EncodeImage(crop, ".jpg");
}

}  // namespace facesearch
