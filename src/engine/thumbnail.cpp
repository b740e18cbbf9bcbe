// Face crops for reports: decode once, crop and scale each box, encode as JPEG.
#include "engine/corpus.h"
#include "facesearch/analyze.h"
#include "image/thumbnail.h"

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

}  // namespace facesearch
