#include "image/thumbnail.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace facesearch {

Result<RgbImage> CropScaled(const RgbImage& image, int64_t x, int64_t y, int64_t w, int64_t h, double margin,
                            int max_side) {
  const auto mx = static_cast<int64_t>(std::lround(static_cast<double>(w) * margin));
  const auto my = static_cast<int64_t>(std::lround(static_cast<double>(h) * margin));
  const int64_t x0 = std::max<int64_t>(0, x - mx), y0 = std::max<int64_t>(0, y - my);
  const int64_t x1 = std::min<int64_t>(image.width, x + w + mx), y1 = std::min<int64_t>(image.height, y + h + my);
  if (x1 <= x0 || y1 <= y0 || max_side < 1) return Fail(ErrorCode::kInvalidArgument, "the face box lies outside the image");
  const int cw = static_cast<int>(x1 - x0), ch = static_cast<int>(y1 - y0);
  const double scale = std::min(1.0, static_cast<double>(max_side) / std::max(cw, ch));
  RgbImage out;
  out.width = std::max(1, static_cast<int>(std::lround(cw * scale)));
  out.height = std::max(1, static_cast<int>(std::lround(ch * scale)));
  out.pixels.resize(static_cast<size_t>(out.width) * static_cast<size_t>(out.height) * 3);
  try {
    cv::Mat src(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
    cv::Mat dst(out.height, out.width, CV_8UC3, out.pixels.data());
    cv::resize(src(cv::Rect(static_cast<int>(x0), static_cast<int>(y0), cw, ch)), dst, dst.size(), 0, 0,
               cv::INTER_AREA);
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kInternal, std::string("OpenCV could not scale the face crop: ") + e.what());
  }
  return out;
}

}  // namespace facesearch
