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
    Json line = {{"image", path}};
    auto bytes = ReadFile(path, size_t{256} << 20);
    auto image = bytes ? DecodeImage(*bytes, DecodeLimits{}) : Result<RgbImage>(std::unexpected(bytes.error()));
    auto faces = image ? (*detector)->Detect(*image, options) : Result<std::vector<YunetFace>>(std::unexpected(image.error()));
    if (!faces) {
      line["error"] = faces.error().message;
      std::cout << JsonText(line) << "\n";
      continue;
    }
    Json rows = Json::array();
    for (const YunetFace& f : *faces) {  // x, y, w, h, the landmarks, score: each float's shortest form
      Json row = {ShortestDouble(f.x), ShortestDouble(f.y), ShortestDouble(f.w), ShortestDouble(f.h)};
      for (float v : f.landmarks) row.push_back(ShortestDouble(v));
      row.push_back(ShortestDouble(f.score));
      rows.push_back(std::move(row));
    }
    line["faces"] = std::move(rows);
    std::cout << JsonText(line) << "\n";
  }
  return 0;
}
