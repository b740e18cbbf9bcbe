// EXIF through libexif (Debian libexif-dev). See exif.h for the contract.
#include "image/exif.h"

#include <libexif/exif-data.h>
#include <libexif/exif-log.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

namespace facesearch {
namespace {

constexpr size_t kMaxExifBytes = 65533;  // a JPEG segment's payload at most
constexpr size_t kMaxText = 128;

uint32_t Be16(const unsigned char* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const unsigned char* p) { return (Be16(p) << 16) | Be16(p + 2); }
uint32_t Le32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
const unsigned char* U(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

std::string_view StripExifHeader(std::string_view block) {
  if (block.substr(0, 6) == std::string_view("Exif\0\0", 6)) block.remove_prefix(6);
  return block.substr(0, kMaxExifBytes);
}

// JPEG: the APP1 segment starting "Exif\0\0", before the first scan.
std::string_view JpegExif(std::string_view s) {
  size_t i = 2;
  while (i + 4 <= s.size()) {
    const unsigned char* b = U(s);
    if (b[i] != 0xFF) return {};
    const unsigned char m = b[i + 1];
    if (m == 0xFF) { ++i; continue; }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
    if (m == 0xDA || m == 0xD9) return {};
    const size_t len = Be16(b + i + 2);
    if (len < 2 || i + 2 + len > s.size()) return {};
    const std::string_view payload = s.substr(i + 4, len - 2);
    if (m == 0xE1 && payload.substr(0, 6) == std::string_view("Exif\0\0", 6)) return StripExifHeader(payload);
    i += 2 + len;
  }
  return {};
}

// PNG: the eXIf chunk.
std::string_view PngExif(std::string_view s) {
  size_t i = 8;
  while (i + 12 <= s.size()) {
    const size_t len = Be32(U(s) + i);
    if (len > s.size() - i - 12) return {};
    const std::string_view type = s.substr(i + 4, 4);
    if (type == "eXIf") return StripExifHeader(s.substr(i + 8, len));
    if (type == "IEND") return {};
    i += 12 + len;
  }
  return {};
}

// WebP: the EXIF chunk of the RIFF container (some writers keep JPEG's "Exif\0\0" in it).
std::string_view WebpExif(std::string_view s) {
  size_t i = 12;
  while (i + 8 <= s.size()) {
    const size_t len = Le32(U(s) + i + 4);
    if (len > s.size() - i - 8) return {};
    if (s.substr(i, 4) == "EXIF") return StripExifHeader(s.substr(i + 8, len));
    i += 8 + len + (len & 1);
  }
  return {};
}

// Printable text of an ASCII entry: up to its NUL, control characters dropped, spaces trimmed.
std::string Text(ExifEntry* e) {
  if (e == nullptr || e->format != EXIF_FORMAT_ASCII || e->data == nullptr) return {};
  std::string out;
  for (unsigned int i = 0; i < e->size && e->data[i] != 0 && out.size() < kMaxText; ++i)
    if (e->data[i] >= 0x20 && e->data[i] != 0x7F) out += static_cast<char>(e->data[i]);
  const size_t first = out.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  return out.substr(first, out.find_last_not_of(' ') - first + 1);
}

bool Digits(const std::string& s, size_t at, size_t n) {
  for (size_t i = at; i < at + n; ++i)
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
  return true;
}

// "YYYY:MM:DD HH:MM:SS" → "YYYY-MM-DDTHH:MM:SS" (+ "±HH:MM" offset when valid); "" for the
// all-zero or blank "unknown" that the standard allows; nullopt when malformed.
std::optional<std::string> IsoTime(const std::string& exif, const std::string& offset) {
  if (exif.empty() || exif.find_first_not_of(" :0") == std::string::npos) return std::string();
  if (exif.size() != 19 || !Digits(exif, 0, 4) || exif[4] != ':' || !Digits(exif, 5, 2) || exif[7] != ':' ||
      !Digits(exif, 8, 2) || exif[10] != ' ' || !Digits(exif, 11, 2) || exif[13] != ':' ||
      !Digits(exif, 14, 2) || exif[16] != ':' || !Digits(exif, 17, 2))
    return std::nullopt;
  const int month = std::stoi(exif.substr(5, 2)), day = std::stoi(exif.substr(8, 2));
  const int hour = std::stoi(exif.substr(11, 2)), minute = std::stoi(exif.substr(14, 2));
  const int second = std::stoi(exif.substr(17, 2));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  std::string iso = exif.substr(0, 4) + "-" + exif.substr(5, 2) + "-" + exif.substr(8, 2) + "T" + exif.substr(11);
  if (offset.size() == 6 && (offset[0] == '+' || offset[0] == '-') && Digits(offset, 1, 2) &&
      offset[3] == ':' && Digits(offset, 4, 2))
    iso += offset;
  return iso;
}

// Degrees from a GPS coordinate entry (3 rationals: degrees, minutes, seconds) and its N/S or
// E/W reference; nullopt when absent or malformed (then `problem` says why).
std::optional<double> Coordinate(ExifData* d, ExifEntry* value, ExifEntry* ref, double limit,
                                 const char* negative, std::string& problem) {
  if (value == nullptr) return std::nullopt;
  const std::string r = Text(ref);
  if (value->format != EXIF_FORMAT_RATIONAL || value->components < 3 || value->size < 24 ||
      (r != "N" && r != "S" && r != "E" && r != "W")) {
    problem = "malformed GPS position (not three rationals with an N/S or E/W reference)";
    return std::nullopt;
  }
  const ExifByteOrder order = exif_data_get_byte_order(d);
  double parts[3];
  for (int i = 0; i < 3; ++i) {
    const ExifRational q = exif_get_rational(value->data + 8 * i, order);
    if (q.denominator == 0) {
      problem = "malformed GPS position (a zero denominator)";
      return std::nullopt;
    }
    parts[i] = static_cast<double>(q.numerator) / q.denominator;
  }
  const double degrees = parts[0] + parts[1] / 60 + parts[2] / 3600;
  if (!std::isfinite(degrees) || degrees > limit) {
    problem = "GPS position out of range (" + std::to_string(degrees) + " degrees)";
    return std::nullopt;
  }
  return r == negative ? -degrees : degrees;
}

// The first message libexif logs about corrupt data.
void OnLog(ExifLog*, ExifLogCode code, const char*, const char* format, va_list args, void* sink) {
  auto* problem = static_cast<std::string*>(sink);
  if (code != EXIF_LOG_CODE_CORRUPT_DATA || !problem->empty()) return;
  char buf[256];
  std::vsnprintf(buf, sizeof buf, format, args);
  *problem = std::string("corrupt EXIF: ") + buf;
}

ExifEntry* Entry(ExifData* d, ExifIfd ifd, int tag) {
  return exif_content_get_entry(d->ifd[ifd], static_cast<ExifTag>(tag));
}

}  // namespace

std::string_view FindExifBlock(std::string_view s) {
  if (s.size() >= 4 && s.substr(0, 3) == "\xFF\xD8\xFF") return JpegExif(s);
  if (s.size() >= 8 && s.substr(0, 8) == "\x89PNG\r\n\x1A\n") return PngExif(s);
  if (s.size() >= 12 && s.substr(0, 4) == "RIFF" && s.substr(8, 4) == "WEBP") return WebpExif(s);
  return {};
}

ExifRead ReadExif(std::string_view file_bytes) {
  ExifRead out;
  const std::string_view block = FindExifBlock(file_bytes);
  if (block.empty()) return out;
  // libexif wants the "Exif\0\0" header in front of the TIFF structure.
  std::string data("Exif\0\0", 6);
  data.append(block);
  std::unique_ptr<ExifData, decltype(&exif_data_unref)> d(exif_data_new(), exif_data_unref);
  std::unique_ptr<ExifLog, decltype(&exif_log_unref)> log(exif_log_new(), exif_log_unref);
  if (!d || !log) return out;
  // Following the specification would fill in "missing" mandatory tags, DateTime among them,
  // with today's values: a reader must never invent a capture time.
  exif_data_unset_option(d.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_log_set_func(log.get(), OnLog, &out.problem);
  exif_data_log(d.get(), log.get());
  exif_data_load_data(d.get(), reinterpret_cast<const unsigned char*>(data.data()),
                      static_cast<unsigned int>(data.size()));

  bool any_entry = false;
  for (int i = 0; i < EXIF_IFD_COUNT; ++i) any_entry = any_entry || (d->ifd[i] && d->ifd[i]->count > 0);
  if (!any_entry) {  // libexif returns silently when IFD0 lies outside the block
    if (out.problem.empty()) out.problem = "corrupt EXIF: no readable entry (its first IFD lies outside the block?)";
    return out;
  }
  PhotoMetadata& m = out.metadata;
  m.camera_make = Text(Entry(d.get(), EXIF_IFD_0, EXIF_TAG_MAKE));
  m.camera_model = Text(Entry(d.get(), EXIF_IFD_0, EXIF_TAG_MODEL));
  const std::string original = Text(Entry(d.get(), EXIF_IFD_EXIF, EXIF_TAG_DATE_TIME_ORIGINAL));
  const std::string offset = Text(Entry(d.get(), EXIF_IFD_EXIF, EXIF_TAG_OFFSET_TIME_ORIGINAL));
  if (auto iso = IsoTime(original, offset)) m.taken_at = *iso;
  else if (out.problem.empty()) out.problem = "capture time '" + original + "' is not EXIF's YYYY:MM:DD HH:MM:SS";
  std::string gps_problem;
  auto lat = Coordinate(d.get(), Entry(d.get(), EXIF_IFD_GPS, EXIF_TAG_GPS_LATITUDE),
                        Entry(d.get(), EXIF_IFD_GPS, EXIF_TAG_GPS_LATITUDE_REF), 90, "S", gps_problem);
  auto lon = Coordinate(d.get(), Entry(d.get(), EXIF_IFD_GPS, EXIF_TAG_GPS_LONGITUDE),
                        Entry(d.get(), EXIF_IFD_GPS, EXIF_TAG_GPS_LONGITUDE_REF), 180, "W", gps_problem);
  if (lat && lon) {  // half a position is none
    m.latitude = lat;
    m.longitude = lon;
  }
  if (out.problem.empty()) out.problem = gps_problem;
  return out;
}

}  // namespace facesearch
