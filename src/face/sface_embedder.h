// SFace face recognition (face_recognition_sface_2021dec.onnx, OpenCV model zoo) run through
// OpenCV's DNN module, as OpenCV's FaceRecognizerSF does it: the face is aligned on YuNet's 5
// landmarks by a similarity transform onto SFace's reference points (112×112 crop), fed as an RGB
// float blob without mean or scaling, and the 128 outputs are the feature. FaceRecognizerSF
// compares features by cosine similarity; we L2-normalise them instead, so that the Euclidean
// distance every index kind computes is a function of it (d² = 2 − 2 cos). No OpenCV type here.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "image/decode.h"

namespace facesearch {

// YuNet's 5 landmarks as (x, y) pairs, in its order: right eye, left eye, nose tip, right and left
// mouth corners (the subject's right, on the viewer's left), the order of SFace's reference points.
using FivePoints = std::array<float, 10>;

inline constexpr int kSfaceChipSize = 112;

// One instance is used by one thread at a time (cv::dnn::Net is not thread-safe); Clone() gives
// another thread its own network, built from the same verified bytes.
class SfaceEmbedder {
 public:
  // Reads the model from `models_dir` and checks it against its pin before OpenCV parses it.
  // Errors: kModel (missing, altered, or unreadable by OpenCV), with the fetch command.
  static Result<std::unique_ptr<SfaceEmbedder>> Load(const std::filesystem::path& models_dir);
  ~SfaceEmbedder();
  Result<std::unique_ptr<SfaceEmbedder>> Clone() const;
  // The 112×112 crop of the face whose landmarks are `points` (FaceRecognizerSF::alignCrop).
  // Errors: kInternal when OpenCV fails.
  static Result<RgbImage> Align(const RgbImage& image, const FivePoints& points);
  // The unit-length embeddings of aligned crops, in one forward pass. Errors: kInternal.
  Result<std::vector<Embedding>> Embed(const std::vector<RgbImage>& crops);

 private:
  struct Impl;
  explicit SfaceEmbedder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace facesearch
