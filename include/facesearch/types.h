// facesearch — plain value types shared by every module. No third-party types here.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace facesearch {

inline constexpr int kEmbeddingDim = 128;
using Embedding = std::array<float, kEmbeddingDim>;

// kYunet: YuNet (OpenCV model zoo, through cv::dnn): faces scoring at least kYunetScore, and, when
// an image has none, at least kYunetRetryScore (--retry threshold); dlib's 5-point predictor then
// places the landmarks in its box, as in the HOG and CNN pipelines.
enum class DetectorKind { kHog, kCnn, kYunet };
inline constexpr double kYunetScore = 0.9;       // FaceDetectorYN's default score threshold
inline constexpr double kYunetRetryScore = 0.5;  // the issue #17 study's second pass

// How a face chip becomes an embedding. Plain is dlib's single forward pass (what the reference
// implementation computes). Flip: the mean of the chip's and its mirror image's descriptors.
// Jitter N: the mean over N randomly jittered copies (dlib::jitter_image, as dlib's example and
// face_recognition's num_jitters do; seeded per face, so deterministic). dlib's descriptors are not
// unit length and dlib does not renormalise its jittered mean, so neither do we.
// Alignment: the landmark model whose points align the chip — the 5-point one (what
// face_recognition uses by default), the 68-point one (face_recognition's "large" model, the
// alignment dlib's ResNet was trained on), or both: the mean of the descriptors of both chips.
// Model: the embedder. kDlib is dlib's ResNet (every mode above); kSface is OpenCV's SFace
// (model zoo, through cv::dnn) on the 112×112 crop aligned on YuNet's 5 landmarks, its vector
// L2-normalised; it has no flip, jitter or alignment variants ("sface" is its only mode).
enum class Alignment { k5, k68, kBoth };
enum class EmbeddingModel { kDlib, kSface };
struct EmbeddingMode {
  bool flip = false;
  int jitter = 0;  // 0: none; otherwise >= 2 copies
  Alignment alignment = Alignment::k5;
  EmbeddingModel model = EmbeddingModel::kDlib;
  bool operator==(const EmbeddingMode&) const = default;
};

// The distance at which two faces count as the same person unless the user or the corpus size
// says otherwise: dlib's 0.6 on LFW; for SFace, OpenCV's cosine-similarity threshold 0.363 as the
// Euclidean distance between unit vectors, sqrt(2 - 2 × 0.363).
inline constexpr float kDlibSamePersonDistance = 0.6f;
inline constexpr float kSfaceSamePersonDistance = 1.1287f;
inline float SamePersonDistance(EmbeddingModel model) {
  return model == EmbeddingModel::kSface ? kSfaceSamePersonDistance : kDlibSamePersonDistance;
}

// A face rectangle in pixels of the decoded (EXIF-oriented) image. May extend past the image
// border: dlib's detector reports boxes partly outside the frame and the aligner relies on them.
struct Box {
  int64_t x = 0, y = 0, w = 0, h = 0;
};

struct Point {
  int64_t x = 0, y = 0;
  bool operator==(const Point&) const = default;
};

// Where in a video a face was seen: the frame stored for its track (the track's best face) and
// the first and last sampled times the track was seen, in seconds from the start.
struct VideoSpan {
  int64_t frame = 0;
  double at_s = 0;
  double first_s = 0, last_s = 0;
};

// One detected and embedded face.
struct Face {
  Box box;
  std::array<Point, 5> landmarks{};  // dlib 5-point order: eye corners (2 per eye), nose base
  // Detector confidence, larger is surer; each detector has its own scale. HOG: the SVM margin
  // (>= 0 on the first pass, unbounded above); CNN: the MMOD confidence; YuNet: sqrt(cls x obj)
  // in [0, 1].
  double det_score = 0.0;
  Embedding embedding{};
  std::optional<VideoSpan> video;  // set for a face found in a video, absent for a still image
};

// dlib's face distance: Euclidean distance between embeddings (same person below ~0.6).
inline float EmbeddingDistance(const Embedding& a, const Embedding& b) {
  float s = 0;
  for (int i = 0; i < kEmbeddingDim; ++i) {
    float d = a[i] - b[i];
    s += d * d;
  }
  return std::sqrt(s);
}

// Where an image came from, as given in an ingest manifest (all optional, empty when unknown).
struct Provenance {
  std::string page_url;     // the web page the image was found on
  std::string source;       // a name for the collection or site, e.g. "city-archive"
  std::string captured_at;  // when it was captured or published (free text, ISO-8601 advised)
  std::string licence;      // licence or terms, e.g. "CC-BY-4.0"
  std::string notes;        // free-form
  bool empty() const {
    return page_url.empty() && source.empty() && captured_at.empty() && licence.empty() && notes.empty();
  }
};

// When, where and with what a photo was taken, as its own EXIF says (schema v7; src/image/exif.h).
// Empty when the file has none. A camera's clock and GPS can be wrong, unset or edited: these are
// the file's claims, not facts. GPS is personal data, erased with the image like everything else.
struct PhotoMetadata {
  std::string taken_at;      // DateTimeOriginal as ISO-8601 "2024-05-01T14:03:22", with the
                             // "+02:00" of OffsetTimeOriginal when present (otherwise local time)
  std::string camera_make;   // Make, e.g. "Canon"
  std::string camera_model;  // Model, e.g. "Canon EOS 5D"
  std::optional<double> latitude, longitude;  // WGS-84 degrees, north and east positive
  bool empty() const {
    return taken_at.empty() && camera_make.empty() && camera_model.empty() && !latitude;
  }
};

// A face row joined with its image, as returned to queries and exports.
struct FaceRecord {
  int64_t face_id = 0;
  int64_t image_id = 0;
  std::string image_path;  // the file path, or the URL for fetched images
  std::string image_sha256;
  int image_width = 0, image_height = 0;  // decoded, EXIF orientation applied
  int64_t image_size = 0;                 // the file's bytes
  Face face;
  Provenance provenance;
  PhotoMetadata photo;               // the image's EXIF (schema v7)
  std::optional<uint64_t> phash;     // the image's perceptual hash; absent for images indexed
                                     // before schema v7 until `index` reads them again
  std::string exif_problem;          // why EXIF was not (all) read: malformed, "" when fine
};

struct CorpusCounts {
  int64_t images = 0, images_ok = 0, images_noface = 0, images_error = 0;
  int64_t faces = 0;
  int64_t inputs_skipped = 0;  // inputs refused without content (robots, noimageindex, ...)
};

// One input that did not end in the corpus as an image with or without faces: an image row with
// status error, or an input refused before any content was read (input_issues table, schema v3).
struct InputIssue {
  std::string location;  // file path or URL (or "MANIFEST:LINE" for a malformed manifest row)
  std::string outcome;   // "error" or "skipped"
  std::string reason;    // short code: unreadable, not_image, truncated, pixel_cap, too_large,
                         // decoder_error, http_status, timeout, fetch_error, redirect, scheme,
                         // content_type, manifest, robots, noimageindex, ...
  std::string detail;    // the full message
  std::string at;        // ISO-8601 UTC
  Provenance provenance;
};

}  // namespace facesearch
