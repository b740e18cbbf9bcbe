// Face analysis: detection → 5-point landmarks → aligned 150×150 chip → 128-d embedding.
//
// FaceAnalyzer is the seam between the engine and dlib: the engine only sees this interface, so
// the heavy models stay in one adapter (dlib_analyzer.cpp) and pipeline code can be exercised with
// other implementations.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "image/decode.h"

namespace facesearch {

// One detection pass: which detector, how many times the image is doubled first (HOG and CNN;
// YuNet runs on the image as it is), (HOG only) the adjust_threshold handed to dlib's
// object_detector (0 = dlib's default; lower finds more, including more false faces), and (YuNet
// only) the lowest score kept.
struct DetectPass {
  DetectorKind detector = DetectorKind::kHog;
  int upsample = 1;
  double adjust_threshold = 0.0;
  double min_score = kYunetScore;
};

struct AnalyzerOptions {
  DetectorKind detector = DetectorKind::kHog;
  int upsample = 1;  // times the image is doubled before detection (finds faces ≥ ~40 px at 1)
  double min_score = kYunetScore;  // YuNet's first pass: the lowest score kept
  // Tried in order only while no face has been found: an image where the first pass finds a face
  // is analysed exactly as without them, at no extra cost.
  std::vector<DetectPass> retry;
  // plain with 5 landmarks (default): dlib's single forward pass, as face_recognition does
  EmbeddingMode embedding;
  double chip_padding = 0.25;  // dlib's default; studies only (bench/embedding_study.cpp)
  int min_face = 0;         // drop faces whose box is narrower or shorter than this (pixels)
  // > 0: an image whose longer side exceeds this is detected on a copy scaled down to it, and the
  // boxes are mapped back to full resolution for landmarks and chips. 0: full size always.
  int detect_max_side = 0;
  // Chips per forward pass of the ResNet (dlib's net(chips, batch)). The descriptors do not depend
  // on it (tests/test_analyzer.cpp); on the CPU it changes the time little (docs/benchmarks.md).
  int embed_batch = 16;
};

// Seconds one analyzer spent per stage since it was made (each clone counts its own): wall-clock
// time, and the CPU time of the calling thread (which a busy machine does not inflate).
struct AnalyzerSeconds {
  double detect = 0;     // detector passes, including the reduced copy and retries
  double landmarks = 0;  // shape predictor and chip extraction
  double embed = 0;      // the ResNet forward passes
  double detect_cpu = 0, landmarks_cpu = 0, embed_cpu = 0;
};

// One instance is used by one thread at a time; Clone() gives another thread its own copy.
class FaceAnalyzer {
 public:
  virtual ~FaceAnalyzer() = default;
  // Every face in `image`, in the detector's order. An image with no face yields an empty vector,
  // not an error. Errors: kInternal when the model library fails.
  virtual Result<std::vector<Face>> Analyze(const RgbImage& image) = 0;
  // Landmarks, chip and embedding of faces at known boxes (e.g. from an earlier Analyze of the
  // same image), without detection; det_score is left 0. Errors: kInternal.
  virtual Result<std::vector<Face>> AnalyzeBoxes(const RgbImage& image, const std::vector<Box>& boxes) = 0;
  // The aligned 150x150 chip of a face found by Analyze in the same image: what the embedder sees.
  virtual Result<RgbImage> Chip(const RgbImage& image, const Face& face) = 0;
  virtual std::unique_ptr<FaceAnalyzer> Clone() const = 0;
  // Time spent in Analyze so far, by stage.
  virtual AnalyzerSeconds Seconds() const { return {}; }
};

// Loads and verifies (SHA-256 pins) the dlib models from `models_dir`. The CNN and YuNet detector
// models are only needed when a pass (options.detector or a retry) uses them. Errors: kModel.
Result<std::unique_ptr<FaceAnalyzer>> LoadDlibAnalyzer(const std::filesystem::path& models_dir,
                                                       const AnalyzerOptions& options);

}  // namespace facesearch
