// dlib's MMOD CNN face detector (mmod_human_face_detector.dat), slower and more accurate than HOG
// on rotated and small faces. Kept out of dlib_analyzer.cpp because its network type is heavy to
// compile.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "image/decode.h"

namespace facesearch {

struct Detection {
  Box box;
  double score = 0.0;
  // YuNet's 5 landmarks (x, y pairs, its order), which the SFace alignment needs; empty for the
  // dlib detectors and for boxes given without them.
  std::optional<std::array<float, 10>> points;
};

class CnnDetector {
 public:
  // Errors: kModel when the file cannot be deserialised.
  static Result<std::unique_ptr<CnnDetector>> Load(const std::filesystem::path& model_file);
  ~CnnDetector();
  std::unique_ptr<CnnDetector> Clone() const;
  // Same upsampling rule as dlib's Python binding: pyramid_up `upsample` times, map boxes back.
  std::vector<Detection> Detect(const RgbImage& image, int upsample);

 private:
  struct Impl;
  explicit CnnDetector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace facesearch
