// Prints what src/face/yunet_detector.cpp finds in each image, at full float precision, for
// scripts/check/yunet_parity.py to compare with opencv-python's cv2.FaceDetectorYN. Built on demand:
// cmake --build build --target yunet_dump.
//
//   build/yunet_dump MODELS_DIR [--score S] < LIST_FILE
//
// LIST_FILE: one image path per line. Output: one JSON line per image,
// {"image":PATH,"faces":[[x,y,w,h,lx0,ly0,...,lx4,ly4,score],...]} or {"image":PATH,"error":MSG}.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/fs.h"
#include "common/json.h"
#include "face/yunet_detector.h"
#include "image/decode.h"

using namespace facesearch;

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    std::fprintf(stderr, "usage: %s MODELS_DIR [--score S] < LIST_FILE\n", argv[0]);
    return 2;
  }
  YunetOptions options;
  if (argc == 4) options.score_threshold = std::strtof(argv[3], nullptr);
  auto detector = YunetDetector::Load(argv[1]);
  if (!detector) {
    std::fprintf(stderr, "%s\n", detector.error().message.c_str());
    return 1;
  }
  std::string path;
  while (std::getline(std::cin, path)) {
    std::string line = "{\"image\":" + JsonString(path);
    auto bytes = ReadFile(path, size_t{256} << 20);
    auto image = bytes ? DecodeImage(*bytes, DecodeLimits{}) : Result<RgbImage>(std::unexpected(bytes.error()));
    auto faces = image ? (*detector)->Detect(*image, options) : Result<std::vector<YunetFace>>(std::unexpected(image.error()));
    if (!faces) {
      std::cout << line << ",\"error\":" << JsonString(faces.error().message) << "}\n";
      continue;
    }
    line += ",\"faces\":[";
    char buf[32];
    for (size_t i = 0; i < faces->size(); ++i) {
      const YunetFace& f = (*faces)[i];
      line += i ? ",[" : "[";
      auto add = [&](float v, bool comma) {
        std::snprintf(buf, sizeof buf, "%.9g", double(v));
        line += buf;
        if (comma) line += ',';
      };
      add(f.x, true), add(f.y, true), add(f.w, true), add(f.h, true);
      for (float v : f.landmarks) add(v, true);
      add(f.score, false);
      line += ']';
    }
    std::cout << line << "]}\n";
  }
  return 0;
}
