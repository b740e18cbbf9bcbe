// Image decoding for untrusted files: format allow-list by magic bytes, dimension caps checked in
// the file header BEFORE any decoder runs and enforced again on what the decoder allocates, EXIF
// orientation applied, and every pixel format (grey, alpha, 16-bit, palette) normalised to 8-bit
// RGB.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "facesearch/error.h"

namespace facesearch {

// 8-bit RGB, rows packed (stride = 3 * width).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

struct DecodeLimits {
  int64_t max_bytes = int64_t{256} << 20;  // refuse larger files without reading them
  int64_t max_pixels = 80'000'000;         // width*height; ~240 MB as RGB
  int max_side = 30'000;
};

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kBmp, kTiff };
const char* ImageFormatName(ImageFormat f);

// Identifies an accepted format from the first bytes; kUnknown for anything else (including
// formats OpenCV could decode but we refuse: PxM, SunRaster, HDR, JPEG-2000, EXR...).
ImageFormat SniffFormat(std::string_view head);

struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;
  int height = 0;
};

// Reads the dimensions from the header without decoding pixels. Errors: kDecode (unknown format:
// reason kNotImage; truncated: kTruncated; malformed header).
Result<ImageHeader> ReadImageHeader(std::string_view bytes);

// Encodes `image` as PNG (or JPEG when `extension` is ".jpg"/".jpeg"). Errors: kInternal.
Result<std::string> EncodeImage(const RgbImage& image, const std::string& extension);

// `image` scaled down (area averaging) so that its longer side is `max_side` pixels, aspect kept;
// a copy of it unchanged when it is no larger.
RgbImage ResizeToMaxSide(const RgbImage& image, int max_side);

// While alive, OpenCV refuses (throws cv::Exception) to allocate on this thread any matrix of more
// than `max_pixels` pixels, and refused() then says so. DecodeImage holds one around its decoder,
// so a header that misstates the size cannot lift the cap. Not nestable.
class ScopedPixelCap {
 public:
  explicit ScopedPixelCap(int64_t max_pixels);
  ~ScopedPixelCap();
  ScopedPixelCap(const ScopedPixelCap&) = delete;
  ScopedPixelCap& operator=(const ScopedPixelCap&) = delete;
  bool refused() const;
};

// Decodes `bytes`. Errors: kDecode with a message saying why and, where a caller may act on it, a
// reason: kTooLarge, kPixelCap, kTruncated (JPEG), kNotImage; corrupt data has none.
Result<RgbImage> DecodeImage(std::string_view bytes, const DecodeLimits& limits);

}  // namespace facesearch
