// Decoding of untrusted image files. See decode.h for the contract.
//
// Why parse headers ourselves: OpenCV's own pixel cap (OPENCV_IO_MAX_IMAGE_PIXELS) is read once
// when the library loads, and OpenCV picks its decoder from the first bytes, not the extension,
// so a ".jpg" could reach a rarely used decoder. We therefore allow-list formats by magic bytes
// and check the dimensions in the header before any decoder touches the data. A header can be
// read two ways (a TIFF with repeated or 8-byte size tags was), so the cap is enforced a second
// time on the matrices the decoder allocates (ScopedPixelCap).
#include "image/decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

namespace facesearch {
namespace {

uint32_t Be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const uint8_t* p) { return (Be16(p) << 16) | Be16(p + 2); }
uint32_t Le16(const uint8_t* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t Le32(const uint8_t* p) { return (Le16(p + 2) << 16) | Le16(p); }

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

auto Malformed(ImageFormat f, const char* what) {
  return Fail(ErrorCode::kDecode,
              std::string("malformed ") + ImageFormatName(f) + " header: " + what);
}

// JPEG: walk the marker segments up to the first start-of-frame. Also reports where the scan
// data starts, so truncation (no end-of-image marker after it) can be detected.
Result<ImageHeader> JpegHeader(std::string_view s, size_t* scan_start) {
  const uint8_t* b = Bytes(s);
  size_t i = 2;
  ImageHeader h{ImageFormat::kJpeg, 0, 0};
  while (i + 4 <= s.size()) {
    if (b[i] != 0xFF) return Malformed(h.format, "expected a marker");
    uint8_t m = b[i + 1];
    if (m == 0xFF) { ++i; continue; }                              // fill byte
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }  // standalone markers
    size_t len = Be16(b + i + 2);
    if (len < 2 || i + 2 + len > s.size()) return Malformed(h.format, "segment past end of file");
    bool sof = (m >= 0xC0 && m <= 0xCF) && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (len < 7) return Malformed(h.format, "short frame header");
      h.height = static_cast<int>(Be16(b + i + 5));
      h.width = static_cast<int>(Be16(b + i + 7));
    }
    if (m == 0xDA) {  // start of scan: entropy-coded data follows
      if (h.width == 0) return Malformed(h.format, "scan before frame header");
      *scan_start = i + 2 + len;
      return h;
    }
    i += 2 + len;
  }
  return Fail(ErrorCode::kDecode, ErrorReason::kTruncated, "truncated JPEG: no image data");
}

Result<ImageHeader> PngHeader(std::string_view s) {
  if (s.size() < 24 || std::memcmp(s.data() + 12, "IHDR", 4) != 0)
    return Malformed(ImageFormat::kPng, "no IHDR chunk");
  const uint8_t* b = Bytes(s);
  uint32_t w = Be32(b + 16), h = Be32(b + 20);
  if (w > 0x7FFFFFFF || h > 0x7FFFFFFF) return Malformed(ImageFormat::kPng, "dimension overflow");
  return ImageHeader{ImageFormat::kPng, static_cast<int>(w), static_cast<int>(h)};
}

Result<ImageHeader> BmpHeader(std::string_view s) {
  if (s.size() < 26) return Malformed(ImageFormat::kBmp, "file too short");
  const uint8_t* b = Bytes(s);
  uint32_t dib = Le32(b + 14);
  int64_t w = 0, h = 0;
  if (dib == 12) {
    w = Le16(b + 18);
    h = Le16(b + 20);
  } else {
    w = static_cast<int32_t>(Le32(b + 18));
    h = static_cast<int32_t>(Le32(b + 22));
  }
  h = h < 0 ? -h : h;  // negative height = top-down rows
  if (w <= 0 || w > 0x7FFFFFFF || h > 0x7FFFFFFF) return Malformed(ImageFormat::kBmp, "bad size");
  return ImageHeader{ImageFormat::kBmp, static_cast<int>(w), static_cast<int>(h)};
}

Result<ImageHeader> WebpHeader(std::string_view s) {
  const uint8_t* b = Bytes(s);
  ImageHeader h{ImageFormat::kWebp, 0, 0};
  if (s.size() < 30) return Malformed(h.format, "file too short");
  if (std::memcmp(b + 12, "VP8 ", 4) == 0) {
    if (b[23] != 0x9D || b[24] != 0x01 || b[25] != 0x2A) return Malformed(h.format, "bad VP8 start code");
    h.width = static_cast<int>(Le16(b + 26) & 0x3FFF);
    h.height = static_cast<int>(Le16(b + 28) & 0x3FFF);
  } else if (std::memcmp(b + 12, "VP8L", 4) == 0) {
    if (b[20] != 0x2F) return Malformed(h.format, "bad VP8L signature");
    uint32_t bits = Le32(b + 21);
    h.width = static_cast<int>((bits & 0x3FFF) + 1);
    h.height = static_cast<int>(((bits >> 14) & 0x3FFF) + 1);
  } else if (std::memcmp(b + 12, "VP8X", 4) == 0) {
    h.width = static_cast<int>((Le32(b + 24) & 0xFFFFFF) + 1);
    h.height = static_cast<int>((Le32(b + 27) & 0xFFFFFF) + 1);
  } else {
    return Malformed(h.format, "unknown chunk");
  }
  return h;
}

// TIFF: the size tags of the first IFD (the page OpenCV decodes), read exactly as libtiff reads
// them, so that the cap is checked on the size the decoder will use: the first of repeated tags
// wins (libtiff ignores the rest), any integer type is accepted and an 8-byte one (LONG8, SLONG8)
// is read at the offset its entry holds. What libtiff refuses (another type, a count other than
// 1, a negative value) is refused here too.
Result<ImageHeader> TiffHeader(std::string_view s) {
  const uint8_t* b = Bytes(s);
  const bool le = b[0] == 'I';
  auto u16 = [&](size_t at) { return le ? Le16(b + at) : Be16(b + at); };
  auto u32 = [&](size_t at) { return le ? Le32(b + at) : Be32(b + at); };
  auto u64 = [&](size_t at) {
    uint64_t hi = u32(at), lo = u32(at + 4);
    return le ? (lo << 32) | hi : (hi << 32) | lo;
  };
  ImageHeader h{ImageFormat::kTiff, 0, 0};
  // The value of a size tag, or -1 when libtiff would refuse the entry.
  auto size_value = [&](size_t e) -> int64_t {
    if (u32(e + 4) != 1) return -1;
    const uint32_t type = u16(e + 2);
    switch (type) {
      case 1: return b[e + 8];                                   // BYTE
      case 6: return static_cast<int8_t>(b[e + 8]);              // SBYTE
      case 3: return u16(e + 8);                                 // SHORT
      case 8: return static_cast<int16_t>(u16(e + 8));           // SSHORT
      case 4: case 13: return u32(e + 8);                        // LONG, IFD
      case 9: return static_cast<int32_t>(u32(e + 8));           // SLONG
      case 16: case 17: case 18: {                               // LONG8, SLONG8, IFD8
        const size_t at = u32(e + 8);
        if (at > s.size() || s.size() - at < 8) return -1;
        const uint64_t v = u64(at);
        if (type == 17 && static_cast<int64_t>(v) < 0) return -1;
        return static_cast<int64_t>(std::min<uint64_t>(v, 0x7FFFFFFF));
      }
      default: return -1;
    }
  };
  const size_t ifd = u32(4);
  if (ifd > s.size() || s.size() - ifd < 2) return Malformed(h.format, "IFD past end of file");
  const size_t count = u16(ifd);
  for (size_t k = 0; k < count; ++k) {
    const size_t e = ifd + 2 + 12 * k;
    if (e + 12 > s.size()) return Malformed(h.format, "IFD entry past end of file");
    const uint32_t tag = u16(e);
    int* field = tag == 256 ? &h.width : tag == 257 ? &h.height : nullptr;
    if (field == nullptr || *field != 0) continue;  // not a size tag, or a repeat: libtiff ignores it
    const int64_t value = size_value(e);
    if (value < 0) return Malformed(h.format, "size tag of a type, count or value the decoder refuses");
    *field = static_cast<int>(std::min<int64_t>(value, 0x7FFFFFFF));
    if (*field == 0) return Malformed(h.format, "zero image size");
  }
  if (h.width <= 0 || h.height <= 0) return Malformed(h.format, "no image size tags");
  return h;
}

Result<ImageHeader> ParseHeader(std::string_view bytes, size_t* jpeg_scan_start) {
  switch (SniffFormat(bytes)) {
    case ImageFormat::kJpeg: return JpegHeader(bytes, jpeg_scan_start);
    case ImageFormat::kPng: return PngHeader(bytes);
    case ImageFormat::kBmp: return BmpHeader(bytes);
    case ImageFormat::kWebp: return WebpHeader(bytes);
    case ImageFormat::kTiff: return TiffHeader(bytes);
    case ImageFormat::kUnknown: break;
  }
  return Fail(ErrorCode::kDecode, ErrorReason::kNotImage,
              "not an image format facesearch accepts (JPEG, PNG, WebP, BMP, TIFF)");
}

// The pixel cap of the DecodeImage running on this thread (0: none), and whether it refused.
thread_local int64_t t_pixel_cap = 0;
thread_local bool t_pixel_cap_refused = false;

// OpenCV's default allocator, refusing on a capped thread any matrix of more than the cap's
// pixels. Mat::create falls back to the default allocator when a matrix's own allocator throws,
// so only the default one can refuse; everything else is passed to OpenCV's standard allocator,
// which then owns the buffers it returns.
class PixelCapAllocator final : public cv::MatAllocator {
 public:
  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data, size_t* step,
                         cv::AccessFlag flags, cv::UMatUsageFlags usage) const override {
    if (t_pixel_cap > 0 && data == nullptr) {
      int64_t pixels = 1;
      for (int i = 0; i < dims; ++i) pixels = std::min<int64_t>(pixels * sizes[i], int64_t{1} << 62);
      if (pixels > t_pixel_cap) {
        t_pixel_cap_refused = true;
        CV_Error(cv::Error::StsNoMem, "image exceeds the pixel limit");
      }
    }
    return Std()->allocate(dims, sizes, type, data, step, flags, usage);
  }
  bool allocate(cv::UMatData* u, cv::AccessFlag flags, cv::UMatUsageFlags usage) const override {
    return Std()->allocate(u, flags, usage);
  }
  void deallocate(cv::UMatData* u) const override { Std()->deallocate(u); }

 private:
  static cv::MatAllocator* Std() { return cv::Mat::getStdAllocator(); }
};

// Installed while the program starts, before any thread exists: OpenCV reads the default
// allocator without synchronisation. Never destroyed, so that it outlives every matrix.
const bool kPixelCapInstalled = [] {
  cv::Mat::setDefaultAllocator(new PixelCapAllocator);
  return true;
}();

void SilenceOpenCvLogging() {
  static std::once_flag once;
  std::call_once(once, [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  });
}

}  // namespace

ScopedPixelCap::ScopedPixelCap(int64_t max_pixels) {
  t_pixel_cap = max_pixels;
  t_pixel_cap_refused = false;
}

ScopedPixelCap::~ScopedPixelCap() { t_pixel_cap = 0; }

bool ScopedPixelCap::refused() const { return t_pixel_cap_refused; }

const char* ImageFormatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return "JPEG";
    case ImageFormat::kPng: return "PNG";
    case ImageFormat::kWebp: return "WebP";
    case ImageFormat::kBmp: return "BMP";
    case ImageFormat::kTiff: return "TIFF";
    case ImageFormat::kUnknown: break;
  }
  return "unknown";
}

ImageFormat SniffFormat(std::string_view h) {
  auto starts = [&](std::string_view magic, size_t at = 0) {
    return h.size() >= at + magic.size() && h.substr(at, magic.size()) == magic;
  };
  if (starts("\xFF\xD8\xFF")) return ImageFormat::kJpeg;
  if (starts("\x89PNG\r\n\x1A\n")) return ImageFormat::kPng;
  if (starts("RIFF") && starts("WEBP", 8)) return ImageFormat::kWebp;
  if (starts("BM") && h.size() >= 26) return ImageFormat::kBmp;
  if (starts(std::string_view("II*\0", 4)) || starts(std::string_view("MM\0*", 4)))
    return ImageFormat::kTiff;
  return ImageFormat::kUnknown;
}

Result<ImageHeader> ReadImageHeader(std::string_view bytes) {
  size_t scan_start = 0;
  return ParseHeader(bytes, &scan_start);
}

Result<RgbImage> DecodeImage(std::string_view bytes, const DecodeLimits& limits) {
  if (static_cast<int64_t>(bytes.size()) > limits.max_bytes)
    return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, "file is larger than the " +
                                        std::to_string(limits.max_bytes >> 20) + " MiB limit");
  size_t scan_start = 0;
  FS_ASSIGN(ImageHeader header, ParseHeader(bytes, &scan_start));
  if (header.width <= 0 || header.height <= 0)
    return Fail(ErrorCode::kDecode, "image has zero width or height");
  if (header.width > limits.max_side || header.height > limits.max_side ||
      int64_t{header.width} * header.height > limits.max_pixels)
    return Fail(ErrorCode::kDecode, ErrorReason::kPixelCap, std::to_string(header.width) + "x" +
                                        std::to_string(header.height) +
                                        " image exceeds the pixel limit (" +
                                        std::to_string(limits.max_pixels) + " pixels)");
  if (header.format == ImageFormat::kJpeg) {
    // libjpeg "decodes" a truncated file by padding it with grey; refuse it instead.
    std::string_view scan = bytes.substr(scan_start);
    if (scan.find("\xFF\xD9") == std::string_view::npos)
      return Fail(ErrorCode::kDecode, ErrorReason::kTruncated, "truncated JPEG: no end-of-image marker");
  }

  SilenceOpenCvLogging();
  cv::Mat bgr;
  {
    // The backstop under the header check: whatever size the decoder settles on, it cannot
    // allocate more than the cap.
    ScopedPixelCap cap(limits.max_pixels);
    try {
      cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U,
                  const_cast<char*>(bytes.data()));  // imdecode does not write to its input
      // IMREAD_COLOR: applies EXIF orientation, expands grey/palette, drops alpha, scales 16-bit
      // samples to 8-bit.
      bgr = cv::imdecode(raw, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
      if (!cap.refused())
        return Fail(ErrorCode::kDecode, std::string(ImageFormatName(header.format)) +
                                            " decoder refused the file: " + e.what());
    }
    if (cap.refused())  // whether imdecode passed the refusal on or returned an empty image
      return Fail(ErrorCode::kDecode, ErrorReason::kPixelCap, std::string(ImageFormatName(header.format)) +
                                          " decoder found a larger image than its header states (" +
                                          std::to_string(header.width) + "x" +
                                          std::to_string(header.height) + "): it exceeds the pixel limit (" +
                                          std::to_string(limits.max_pixels) + " pixels)");
  }
  if (bgr.empty() || bgr.type() != CV_8UC3)
    return Fail(ErrorCode::kDecode,
                std::string("corrupt ") + ImageFormatName(header.format) + " data");

  RgbImage out;
  out.width = bgr.cols;
  out.height = bgr.rows;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  cv::Mat rgb(out.height, out.width, CV_8UC3, out.pixels.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return out;
}

Result<std::string> EncodeImage(const RgbImage& image, const std::string& extension) {
  std::vector<uchar> buf;
  try {
    cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    bool jpeg = extension == ".jpg" || extension == ".jpeg";
    if (!cv::imencode(jpeg ? ".jpg" : ".png", bgr, buf))
      return Fail(ErrorCode::kInternal, "OpenCV could not encode the image");
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kInternal, std::string("OpenCV could not encode the image: ") + e.what());
  }
  return std::string(buf.begin(), buf.end());
}

RgbImage ResizeToMaxSide(const RgbImage& image, int max_side) {
  const int side = std::max(image.width, image.height);
  if (max_side <= 0 || side <= max_side) return image;
  const double scale = static_cast<double>(max_side) / side;
  RgbImage out;
  out.width = std::max(1, static_cast<int>(std::lround(image.width * scale)));
  out.height = std::max(1, static_cast<int>(std::lround(image.height * scale)));
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  cv::Mat src(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
  cv::Mat dst(out.height, out.width, CV_8UC3, out.pixels.data());
  cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace facesearch
