// facesearch's library API, part 1: where a corpus is and how images are analysed (CorpusConfig,
// PipelineOptions, the embedding modes and detectors, a probe face's quality). The other parts:
// ingest.h (index), query.h (search), maintenance.h (info, export, reindex, compact); engine.h
// includes them all. Functions here never print; they report through return values and the
// optional callbacks, and log through spdlog's default logger, whose sinks the caller chooses.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"

namespace facesearch {

// Who is acting and why: recorded in the audit log with every search, export and erasure
// (facesearch/privacy.h). Empty fields are recorded as absent.
struct AuditContext {
  std::string case_id;  // --case
  std::string purpose;  // --purpose
  // The API user a server acts for (facesearch/users.h): recorded as the audit record's user,
  // "api:NAME", instead of the OS user. Empty on the command line.
  std::string actor;
  // --request-id: one operation's id across many corpora (a cluster ledger entry, docs/scale.md),
  // recorded in the audit record's params as "request_id". Empty: none.
  std::string request_id;
};

class FaceAnalyzer;     // the seam between the engine and the models (src/face/analyzer.h)
struct PipelineOptions;

// Makes the face analyzer for a pipeline (its embedding mode resolved).
using AnalyzerFactory = std::function<Result<std::unique_ptr<FaceAnalyzer>>(const PipelineOptions&)>;

struct CorpusConfig {
  std::filesystem::path corpus_dir;
  std::optional<std::filesystem::path> models_dir;  // unset: $FACESEARCH_MODELS, then the cache
  // Unset: the dlib models of models_dir. Set: every pipeline (index, query, compare, faces,
  // forget) analyzes with what it makes, and no model file is read: tests inject a deterministic
  // fake (tests/fake_analyzer.h) to exercise the pipelines without the models.
  AnalyzerFactory analyzer_factory;
  AuditContext audit;
  // Refuse (kInvalidArgument) rather than warn when the corpus directory or its files are
  // accessible to group or others (CheckCorpusPermissions in facesearch/privacy.h).
  bool strict_permissions = false;
  // How long a command that changes the corpus waits for another writer to finish: negative
  // waits as long as it takes, 0 fails at once, otherwise seconds (then kBusy).
  double lock_wait_s = -1;
};

// $FACESEARCH_CORPUS, else ${XDG_DATA_HOME:-~/.local/share}/facesearch/corpus.
std::filesystem::path DefaultCorpusDir();

const char* DetectorName(DetectorKind d);  // "hog", "cnn", "yunet"

// What to try when the detector finds no face in an image (docs/benchmarks.md, detector-miss
// study). Only images with no face pay for it; every other image is analysed exactly as with kNone.
enum class RetryStrategy {
  kNone,
  kUpsample,   // the detector again on the image doubled once more (upsample + 1); not YuNet
  kThreshold,  // HOG again with dlib's adjust_threshold lowered to retry_threshold; YuNet again
               // keeping scores down to kYunetRetryScore; nothing for CNN
  kCnn,        // after HOG only: dlib's CNN (MMOD) detector, same upsampling
};
inline constexpr RetryStrategy kDefaultRetry = RetryStrategy::kThreshold;
const char* RetryStrategyName(RetryStrategy r);  // "none", "upsample", "threshold", "cnn"

// "plain", "flip", "jitter:N", each optionally followed by "+lm68" (chips aligned with the
// 68-point landmark model instead of the 5-point one) or "+lm5+lm68" (the mean over both
// alignments); "sface" for the SFace model. Parse errors: kInvalidArgument.
const char* EmbeddingModelName(EmbeddingModel model);  // "dlib", "sface"
std::string EmbeddingModeName(const EmbeddingMode& mode);
Result<EmbeddingMode> ParseEmbeddingMode(const std::string& text);

inline constexpr int kDefaultDetectMaxSide = 1600;  // as the reference face_recognition CLI shrinks

// How videos (.mp4 .m4v .mov .mkv .webm .avi; MP4/QuickTime, Matroska/WebM and AVI containers
// read by FFmpeg) are sampled and bounded, at ingest and as query probes. Each sample is analysed
// like a photo; faces are tracked across samples and each track is stored as its best face with
// its frame number and the first and last times it was seen (docs/usage.md, "Videos").
struct VideoOptions {
  double sample_fps = 2.0;                  // frames analysed per second of video
  double max_seconds = 4 * 3600.0;          // refuse longer videos (declared or decoded)
  double budget_s = 1800;                   // wall-clock seconds one video may take, then refused
  int64_t max_bytes = int64_t{16} << 30;    // refuse larger video files without reading them
};

struct PipelineOptions {
  DetectorKind detector = DetectorKind::kHog;
  int upsample = 1;                           // detector upsampling (dlib's default for HOG); not YuNet
  RetryStrategy retry = kDefaultRetry;        // only for images where the detector finds no face
  double retry_threshold = -0.5;              // HOG adjust_threshold for RetryStrategy::kThreshold
  // YuNet's first pass keeps faces scoring at least this (docs/benchmarks.md, "Ingest by model and
  // detector"): 0.9 is FaceDetectorYN's default; lower finds more of the small, blurred and
  // turned faces HOG finds, and more false ones.
  double yunet_score = kYunetScore;
  // Unset: the corpus's mode (meta key "embedding_mode"; plain for a corpus without one, and when
  // there is no corpus). A corpus holds embeddings of one mode only: asking for another is refused.
  std::optional<EmbeddingMode> embedding;
  // Unset: the corpus's model (dlib for a new corpus). kSface asks for the mode "sface"; another
  // model than the corpus's is refused (a corpus has one model: switching means re-indexing).
  std::optional<EmbeddingModel> model;
  int min_face = 0;  // ignore faces whose box is smaller than this many pixels (width or height)
  // Images whose longer side exceeds this are detected on a copy scaled down to it (area
  // averaging) and the boxes mapped back; landmarks, chips and embeddings use the full image.
  // 0: always detect at full size. The smallest face found is then about 40 px * side / this.
  int detect_max_side = kDefaultDetectMaxSide;
  int64_t max_file_bytes = int64_t{256} << 20;
  int64_t max_pixels = 80'000'000;  // per image, and per video frame
  VideoOptions video;
};

// The mode query, forget --like and optout embed probes with on the corpus at config.corpus_dir:
// the corpus's recorded mode (plain when it has none), or options.embedding where there is no
// corpus yet. The calibration of a distance depends on it (facesearch/eval.h). Errors:
// kInvalidArgument when options.embedding asks for another mode than the corpus holds.
Result<EmbeddingMode> ResolvedEmbeddingMode(const CorpusConfig& config, const PipelineOptions& options);

// How far a detected face can be trusted as a probe: the calibration (data/calibration.tsv) was
// measured on LFW faces, so a face outside what LFW holds gives less reliable distances
// (docs/benchmarks.md, quality signals).
struct FaceQuality {
  int64_t size = 0;       // the box's smaller side, in pixels
  double det_score = 0;   // detector confidence (Face::det_score: each detector has its scale)
  double sharpness = 0;   // variance of the Laplacian of the aligned 150x150 grey chip
  // "small", "blurry", "weak_detection"; empty when nothing is in doubt.
  std::vector<std::string> issues;
  bool low() const { return !issues.empty(); }
};
// "small": fewer pixels than this across (the embedder's 150 px chip is then upscaled 3x or more).
inline constexpr int64_t kSmallFacePixels = 50;
// "blurry": sharpness below this; fewer than 1% of LFW's faces (sharpness median 28) score lower.
inline constexpr double kBlurrySharpness = 8.0;

}  // namespace facesearch
