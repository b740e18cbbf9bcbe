// Decoding of untrusted files: format allow-list, header caps, pixel-format normalisation, EXIF.
#include <catch2/catch.hpp>
#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/fs.h"
#include "image/decode.h"
#include "support.h"

using namespace facesearch;

namespace {

std::string Encode(const cv::Mat& m, const std::string& ext) {
  std::vector<uchar> buf;
  REQUIRE(cv::imencode(ext, m, buf));
  return std::string(buf.begin(), buf.end());
}

std::string ReadTestImage(const std::string& name) {
  auto bytes = ReadFile(test::TestImage(name), size_t{1} << 30);
  REQUIRE(bytes);
  return *bytes;
}

// A JPEG of w×h whose APP1 EXIF segment carries the given orientation tag.
std::string JpegWithOrientation(int w, int h, uint16_t orientation) {
  cv::Mat m(h, w, CV_8UC3, cv::Scalar(10, 200, 30));
  std::string jpeg = Encode(m, ".jpg");
  const std::string tiff = std::string("MM\0*\0\0\0\x08", 8) + std::string("\0\x01", 2) +  // 1 entry
                           std::string("\x01\x12\0\x03\0\0\0\x01", 8) +                   // tag, SHORT, 1
                           std::string(1, '\0') + std::string(1, static_cast<char>(orientation)) +
                           std::string("\0\0", 2) + std::string("\0\0\0\0", 4);            // next IFD
  std::string payload = std::string("Exif\0\0", 6) + tiff;
  size_t len = payload.size() + 2;
  std::string app1 = std::string("\xFF\xE1", 2) + static_cast<char>(len >> 8) + static_cast<char>(len & 0xFF) + payload;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

// One IFD entry of a hand-built TIFF. Types 16/17 (LONG8/SLONG8) hold 8 bytes, so a classic TIFF
// stores them at an offset; `value` is then the 8-byte value itself and the builder places it.
struct TiffEntry {
  uint16_t tag;
  uint16_t type;
  uint64_t value;
};

void Put(std::string& s, size_t at, uint64_t v, int bytes) {  // little-endian
  for (int i = 0; i < bytes; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// A little-endian, uncompressed, 8-bit grey TIFF whose single strip holds width*height pixels, with
// the size tags given by `size_tags` (in that order, so duplicates are possible).
std::string GreyTiff(const std::vector<TiffEntry>& size_tags, int width, int height) {
  std::vector<TiffEntry> entries = size_tags;
  const uint64_t pixels = uint64_t(width) * height;
  entries.push_back({258, 3, 8});       // BitsPerSample
  entries.push_back({262, 3, 1});       // PhotometricInterpretation: black is zero
  entries.push_back({273, 4, 0});       // StripOffsets: set below
  entries.push_back({279, 4, pixels});  // StripByteCounts
  std::stable_sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.tag < b.tag; });
  const size_t ifd = 8, wide = ifd + 2 + 12 * entries.size() + 4;
  size_t next_wide = wide;
  const size_t data = wide + 8 * entries.size();
  std::string s(data + pixels, '\x80');
  s.replace(0, 4, std::string("II*\0", 4));
  Put(s, 4, ifd, 4);
  Put(s, ifd, entries.size(), 2);
  Put(s, wide - 4, 0, 4);  // no next IFD
  for (size_t k = 0; k < entries.size(); ++k) {
    const TiffEntry& e = entries[k];
    const size_t at = ifd + 2 + 12 * k;
    Put(s, at, e.tag, 2);
    Put(s, at + 2, e.type, 2);
    Put(s, at + 4, 1, 4);
    if (e.type == 16 || e.type == 17) {
      Put(s, next_wide, e.value, 8);
      Put(s, at + 8, next_wide, 4);
      next_wide += 8;
    } else {
      Put(s, at + 8, e.tag == 273 ? data : e.value, e.type == 3 ? 2 : 4);
    }
  }
  return s;
}

}  // namespace

TEST_CASE("SniffFormat accepts the five allowed formats and refuses others by magic bytes", "[decode]") {
  cv::Mat m(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  CHECK(SniffFormat(Encode(m, ".jpg")) == ImageFormat::kJpeg);
  CHECK(SniffFormat(Encode(m, ".png")) == ImageFormat::kPng);
  CHECK(SniffFormat(Encode(m, ".bmp")) == ImageFormat::kBmp);
  CHECK(SniffFormat(Encode(m, ".webp")) == ImageFormat::kWebp);
  CHECK(SniffFormat(Encode(m, ".tiff")) == ImageFormat::kTiff);
  CHECK(SniffFormat(Encode(m, ".ppm")) == ImageFormat::kUnknown);  // OpenCV decodes it; we refuse
  CHECK(SniffFormat("GIF89a") == ImageFormat::kUnknown);
  CHECK(SniffFormat("") == ImageFormat::kUnknown);
}

TEST_CASE("Every accepted format decodes to RGB with the dimensions its header states", "[decode]") {
  cv::Mat bgr(37, 53, CV_8UC3, cv::Scalar(255, 0, 0));  // pure blue in OpenCV's BGR order
  for (const char* ext : {".jpg", ".png", ".bmp", ".webp", ".tiff"}) {
    INFO(ext);
    std::string bytes = Encode(bgr, ext);
    auto header = ReadImageHeader(bytes);
    REQUIRE(header);
    CHECK(header->width == 53);
    CHECK(header->height == 37);
    auto img = DecodeImage(bytes, DecodeLimits{});
    REQUIRE(img);
    CHECK(img->width == 53);
    CHECK(img->height == 37);
    REQUIRE(img->pixels.size() == 53u * 37u * 3u);
    CHECK(int(img->pixels[0]) < 10);   // R
    CHECK(int(img->pixels[2]) > 245);  // B
  }
}

TEST_CASE("Grey, 16-bit and RGBA images are normalised to 8-bit RGB", "[decode]") {
  cv::Mat grey(10, 12, CV_8UC1, cv::Scalar(77));
  auto g = DecodeImage(Encode(grey, ".png"), DecodeLimits{});
  REQUIRE(g);
  CHECK((g->pixels[0] == 77 && g->pixels[1] == 77 && g->pixels[2] == 77));

  cv::Mat deep(10, 12, CV_16UC3, cv::Scalar(0x1200, 0x3400, 0xAB00));
  auto d = DecodeImage(Encode(deep, ".png"), DecodeLimits{});
  REQUIRE(d);
  CHECK(int(d->pixels[0]) == 0xAB);  // R came from OpenCV's third (red) channel, scaled to 8 bits
  CHECK(int(d->pixels[2]) == 0x12);

  auto rgba = DecodeImage(ReadTestImage("32bit.png"), DecodeLimits{});
  REQUIRE(rgba);
  CHECK(rgba->width == 626);
  CHECK(rgba->height == 1200);
  CHECK(rgba->pixels.size() == 626u * 1200u * 3u);
}

TEST_CASE("EXIF orientation 6 rotates the decoded image by 90 degrees", "[decode]") {
  std::string upright = JpegWithOrientation(40, 20, 1);
  std::string rotated = JpegWithOrientation(40, 20, 6);
  auto a = DecodeImage(upright, DecodeLimits{});
  auto b = DecodeImage(rotated, DecodeLimits{});
  REQUIRE(a);
  REQUIRE(b);
  CHECK((a->width == 40 && a->height == 20));
  CHECK((b->width == 20 && b->height == 40));
}

TEST_CASE("A truncated JPEG is refused instead of decoded with grey padding", "[decode]") {
  std::string jpeg = ReadTestImage("obama.jpg");
  auto r = DecodeImage(jpeg.substr(0, jpeg.size() / 2), DecodeLimits{});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kDecode);
  CHECK_THAT(r.error().message, Catch::Contains("truncated"));
}

TEST_CASE("A header claiming huge dimensions is refused before any decoder runs", "[decode]") {
  std::string png = Encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar(0)), ".png");
  // Patch IHDR to 60000 x 60000 (3.6 gigapixels); the CRC no longer matches, which is fine since
  // the decoder must never see it.
  for (int off : {16, 20}) {
    png[off] = 0;
    png[off + 1] = 0;
    png[off + 2] = static_cast<char>(60000 >> 8);
    png[off + 3] = static_cast<char>(60000 & 0xFF);
  }
  auto r = DecodeImage(png, DecodeLimits{});
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("exceeds the pixel limit"));

  DecodeLimits small;
  small.max_bytes = 100;
  auto big = DecodeImage(ReadTestImage("obama.jpg"), small);
  REQUIRE_FALSE(big);
  CHECK_THAT(big.error().message, Catch::Contains("larger than"));
}

TEST_CASE("Garbage, empty and disguised non-image files give a clear decode error", "[decode]") {
  for (std::string bytes : {std::string("this is not an image"), std::string(),
                            Encode(cv::Mat(4, 4, CV_8UC3, cv::Scalar(0)), ".ppm"),
                            std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF", 10),
                            std::string("\x89PNG\r\n\x1A\n", 8) + std::string(200, '\x42')}) {
    auto r = DecodeImage(bytes, DecodeLimits{});
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kDecode);
    CHECK_FALSE(r.error().message.empty());
  }
}

TEST_CASE("Decode errors carry the reason callers branch on: too large, pixel cap, truncated, not an image",
          "[decode]") {
  const std::string jpeg = ReadTestImage("obama.jpg");
  auto reason = [](std::string_view bytes, const DecodeLimits& limits) {
    auto r = DecodeImage(bytes, limits);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kDecode);
    return r.error().reason;
  };
  DecodeLimits few_bytes;
  few_bytes.max_bytes = 100;
  CHECK(reason(jpeg, few_bytes) == ErrorReason::kTooLarge);
  DecodeLimits few_pixels;
  few_pixels.max_pixels = 100;
  CHECK(reason(jpeg, few_pixels) == ErrorReason::kPixelCap);
  CHECK(reason(jpeg.substr(0, jpeg.size() / 2), DecodeLimits{}) == ErrorReason::kTruncated);
  CHECK(reason("this is not an image", DecodeLimits{}) == ErrorReason::kNotImage);
  // A PNG signature over garbage: corrupt data, with no finer reason than the code.
  CHECK(reason(std::string("\x89PNG\r\n\x1A\n", 8) + std::string(200, '\x42'), DecodeLimits{}) ==
        ErrorReason::kUnspecified);
}

TEST_CASE("ResizeToMaxSide scales the longer side down to the limit keeping the aspect and leaves smaller images alone", "[decode]") {
  RgbImage img{400, 100, std::vector<uint8_t>(400 * 100 * 3, 77)};
  RgbImage half = ResizeToMaxSide(img, 200);
  CHECK(half.width == 200);
  CHECK(half.height == 50);
  REQUIRE(half.pixels.size() == 200u * 50 * 3);
  CHECK(std::all_of(half.pixels.begin(), half.pixels.end(), [](uint8_t v) { return v == 77; }));
  RgbImage same = ResizeToMaxSide(img, 400);
  CHECK((same.width == 400 && same.height == 100 && same.pixels == img.pixels));
  CHECK(ResizeToMaxSide(img, 0).width == 400);
  RgbImage tall{3, 3000, std::vector<uint8_t>(3 * 3000 * 3, 1)};
  RgbImage thin = ResizeToMaxSide(tall, 1000);
  CHECK(thin.height == 1000);
  CHECK(thin.width == 1);
}

TEST_CASE("A TIFF with duplicate size tags is measured as libtiff reads it (first tag wins) and capped",
          "[decode][hostile]") {
  // OpenCV's decoder (libtiff) ignores a repeated tag; a header reader that keeps the last one
  // would check 100x1000 and let a 1200x1000 image through a 1-megapixel cap.
  DecodeLimits limits;
  limits.max_pixels = 1'000'000;
  const std::string tiff = GreyTiff({{256, 3, 1200}, {256, 3, 100}, {257, 3, 1000}}, 1200, 1000);
  auto header = ReadImageHeader(tiff);
  REQUIRE(header);
  CHECK(header->width == 1200);
  CHECK(header->height == 1000);
  auto r = DecodeImage(tiff, limits);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("exceeds the pixel limit"));

  // Under the cap, the same file decodes at the size the header reader reported.
  limits.max_pixels = 2'000'000;
  auto ok = DecodeImage(tiff, limits);
  REQUIRE(ok);
  CHECK((ok->width == 1200 && ok->height == 1000));
}

TEST_CASE("A TIFF with 8-byte (LONG8) size tags is measured from the value they point at and capped",
          "[decode][hostile]") {
  DecodeLimits limits;
  limits.max_pixels = 1'000'000;
  const std::string tiff = GreyTiff({{256, 16, 1200}, {257, 16, 1000}}, 1200, 1000);
  auto header = ReadImageHeader(tiff);
  REQUIRE(header);
  CHECK(header->width == 1200);
  CHECK(header->height == 1000);
  auto r = DecodeImage(tiff, limits);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("exceeds the pixel limit"));

  // Size tags libtiff refuses (a count other than 1, a non-integer type, a negative value) are
  // refused here too rather than guessed at.
  std::string two = GreyTiff({{256, 4, 1200}, {257, 4, 1000}}, 1200, 1000);
  Put(two, 8 + 2 + 4, 2, 4);  // first entry (ImageWidth): count 2
  CHECK_FALSE(ReadImageHeader(two));
  CHECK_FALSE(ReadImageHeader(GreyTiff({{256, 11, 1200}, {257, 3, 1000}}, 1200, 1000)));  // FLOAT
  CHECK_FALSE(ReadImageHeader(GreyTiff({{256, 9, uint32_t(-5)}, {257, 3, 1000}}, 1200, 1000)));
}

TEST_CASE("The pixel cap also holds on what OpenCV allocates, whatever the header reader concluded",
          "[decode][hostile]") {
  // The backstop under the header check: a decoder that finds a bigger image than the header
  // reader did cannot allocate it while the cap is in force on this thread.
  const std::string jpeg = ReadTestImage("obama.jpg");  // 910x1137
  cv::Mat raw(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data()));
  {
    ScopedPixelCap cap(1'000'000);
    CHECK_THROWS(cv::imdecode(raw, cv::IMREAD_COLOR));
    CHECK(cap.refused());
  }
  ScopedPixelCap roomy(2'000'000);
  cv::Mat ok = cv::imdecode(raw, cv::IMREAD_COLOR);
  CHECK(ok.cols == 910);
  CHECK_FALSE(roomy.refused());
}
