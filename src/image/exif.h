// EXIF of untrusted image files: capture time, camera and GPS position. libexif stays in exif.cpp.
//
// Why our own container walk before libexif: libexif finds EXIF only in JPEG and logs "corrupt
// data" for every JPEG without it, so the EXIF block is located here (JPEG APP1 "Exif", PNG eXIf
// chunk, WebP EXIF chunk; bounds-checked, at most 64 KiB as in JPEG) and only that block is handed
// to libexif. A TIFF's own tags and the other formats are not read.
#pragma once

#include <string>
#include <string_view>

#include "facesearch/types.h"

namespace facesearch {

struct ExifRead {
  PhotoMetadata metadata;  // what could be read; empty when the file has no EXIF
  // Why EXIF (or part of it) was not read: libexif found corrupt data, a time that is not EXIF's
  // "YYYY:MM:DD HH:MM:SS", a GPS position out of range... "" when there was no problem. Never
  // a reason to refuse the image: its pixels are decoded separately.
  std::string problem;
};

// Reads the EXIF of a file's bytes. Never fails and never throws; text fields are cut to 128
// bytes and stripped of control characters (they reach every output format).
ExifRead ReadExif(std::string_view file_bytes);

// The EXIF block of a JPEG, PNG or WebP file (TIFF header onwards, without "Exif\0\0"), or an
// empty view when there is none.
std::string_view FindExifBlock(std::string_view file_bytes);

}  // namespace facesearch
