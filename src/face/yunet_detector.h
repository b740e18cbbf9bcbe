// YuNet face detection (face_detection_yunet_2023mar.onnx, OpenCV model zoo) run through OpenCV's
// DNN module. Debian's OpenCV 4.6 has cv::FaceDetectorYN, but it expects the outputs of the 2022mar
// model and cannot run this one, so the decoding of OpenCV >= 4.8's FaceDetectorYN is written out
// here: same padding, blob, priors, scores, NMS and top-k (scripts/yunet_parity.py checks the
// result against opencv-python's FaceDetectorYN; docs/benchmarks.md has the figures). No OpenCV
// type in this header.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include "facesearch/error.h"
#include "image/decode.h"

namespace facesearch {

// One face as FaceDetectorYN reports it, in pixels of the input image (sub-pixel: the parity check
// compares these floats). The box may extend past the border.
struct YunetFace {
  float x = 0, y = 0, w = 0, h = 0;  // top-left corner, width, height
  // (x, y) of the right eye, left eye, nose tip, right and left mouth corners ("right" is the
  // subject's right, on the viewer's left) — not dlib's 5 points.
  std::array<float, 10> landmarks{};
  float score = 0;  // sqrt(cls × obj), in [0, 1]
};

// FaceDetectorYN's parameters; the defaults are those of its Python and C++ create().
struct YunetOptions {
  float score_threshold = 0.9f;
  float nms_threshold = 0.3f;
  int top_k = 5000;
};

// One instance is used by one thread at a time (cv::dnn::Net is not thread-safe); Clone() gives
// another thread its own network, built from the same verified bytes.
class YunetDetector {
 public:
  // Reads the model from `models_dir` and checks it against its pin before OpenCV parses it.
  // Errors: kModel (missing, altered, or unreadable by OpenCV), with the fetch command.
  static Result<std::unique_ptr<YunetDetector>> Load(const std::filesystem::path& models_dir);
  ~YunetDetector();
  Result<std::unique_ptr<YunetDetector>> Clone() const;
  // Every face scoring at least options.score_threshold, best first after NMS. An empty image
  // yields no face. Errors: kInternal when OpenCV fails.
  Result<std::vector<YunetFace>> Detect(const RgbImage& image, const YunetOptions& options = {});

 private:
  struct Impl;
  explicit YunetDetector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace facesearch
