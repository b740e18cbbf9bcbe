// libFuzzer target: the EXIF read of untrusted image files (src/image/exif.h): our container walk
// (JPEG APP1, PNG eXIf, WebP EXIF) and libexif's parse of the block it finds. Build and run:
// scripts/fuzz.sh SECONDS exif.
//
// The input is taken as a whole file, and, so that libexif's TIFF parser is reached at once, also
// wrapped as the EXIF segment of a minimal JPEG. Besides memory errors (ASan/UBSan) it checks what
// callers rely on: text fields are short and free of control characters, a position is in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "image/exif.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckText(const std::string& s) {
  Check(s.size() <= 128);
  for (unsigned char c : s) Check(c >= 0x20 && c != 0x7F);
}

void Read(std::string_view bytes) {
  const facesearch::ExifRead r = facesearch::ReadExif(bytes);
  CheckText(r.metadata.taken_at);
  CheckText(r.metadata.camera_make);
  CheckText(r.metadata.camera_model);
  Check(r.metadata.latitude.has_value() == r.metadata.longitude.has_value());
  if (r.metadata.latitude) Check(*r.metadata.latitude >= -90 && *r.metadata.latitude <= 90);
  if (r.metadata.longitude) Check(*r.metadata.longitude >= -180 && *r.metadata.longitude <= 180);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Read(input);
  if (size <= 65000) {
    const size_t len = size + 8;  // "Exif\0\0" + the length field itself
    std::string jpeg("\xFF\xD8\xFF\xE1", 4);
    jpeg += static_cast<char>(len >> 8);
    jpeg += static_cast<char>(len & 0xFF);
    jpeg.append("Exif\0\0", 6);
    jpeg.append(input);
    jpeg.append("\xFF\xD9", 2);
    Read(jpeg);
  }
  return 0;
}
