// Photo analysis without a corpus: 1:1 comparison of two photos, and face detection only.
// Neither needs a corpus; both need the model files.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

// The faces found in one photo, in detector order.
struct PhotoFaces {
  std::string path;  // ProbeImage::name: as given, "-" for stdin
  std::string sha256;
  int width = 0, height = 0;
  std::vector<Face> faces;
  std::vector<FaceQuality> quality;     // one per face
  std::vector<std::string> chip_paths;  // when chips were requested, one per face
  bool video = false;  // a video: each face is the best face of one track (Face::video)
};

// Loads the models once and analyzes any number of photos with them. One thread at a time.
class PhotoAnalyzer {
 public:
  // Errors: kModel when the model files are missing or not the pinned ones.
  static Result<std::unique_ptr<PhotoAnalyzer>> Load(const CorpusConfig& config,
                                                     const PipelineOptions& options);
  ~PhotoAnalyzer();
  // Reads (a file, or a stream: ReadProbeBytes), decodes and analyzes one photo. When chip_dir is
  // given, also writes each face's aligned 150x150 chip (what the embedder sees) there as
  // <stem>_face<N>.png ("stdin" for a stream), mode 0600: a face crop is biometric data.
  // Errors: unreadable or undecodable input, I/O errors writing chips.
  Result<PhotoFaces> Analyze(const ProbeImage& photo,
                             const std::filesystem::path* chip_dir = nullptr);
  // The same for image bytes already read; `name` stands for the photo in results and messages.
  // Errors: bytes over the size limit, undecodable input.
  Result<PhotoFaces> AnalyzeBytes(const std::string& name, std::string_view bytes);
  // The faces of a local video file (facesearch/engine.h, VideoOptions): one per track, in order of
  // first appearance, each with its VideoSpan and the quality of its stored frame. Errors: those
  // of indexing a video (unreadable, refused, over a cap).
  Result<PhotoFaces> AnalyzeVideo(const std::string& path, const VideoOptions& video);

 private:
  struct Impl;
  explicit PhotoAnalyzer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Index of the face to use: `face` when set (0-based, detector order), else the largest by box
// area. Errors: kNotFound when the photo has no face or fewer than face+1 faces.
Result<int> ChooseFace(const PhotoFaces& photo, std::optional<int> face);

struct CompareOptions {
  PipelineOptions pipeline;
  float threshold = 0.6f;
  std::optional<int> face_a, face_b;  // unset: the largest face
};

struct CompareResult {
  PhotoFaces a, b;
  int face_a = -1, face_b = -1;  // chosen faces; -1 when the photo has none
  std::optional<float> distance;  // absent when either photo has no usable face
  bool same = false;              // distance <= threshold
};

// 1:1 verification: the distance between one face of each photo. A photo without a face is a
// normal result (no distance, not the same person). Errors: unreadable input, models, a --face
// index beyond the faces found, or both photos read from one stream (kInvalidArgument).
Result<CompareResult> ComparePhotos(const CorpusConfig& config, const ProbeImage& a,
                                    const ProbeImage& b, const CompareOptions& options);

// Face crops for visual reports (`query --html`): decodes `image_bytes` once (EXIF-oriented, the
// frame boxes are given in) and returns, per box, a JPEG of the box widened by a quarter of its size
// on each side, scaled down so its longer side is at most max_side pixels. A box wholly outside the
// image gets an empty string. Errors: kDecode for bytes that are not a readable image.
Result<std::vector<std::string>> FaceThumbnails(std::string_view image_bytes, const std::vector<Box>& boxes,
                                                const PipelineOptions& limits, int max_side = 160);

// The same crop for a face stored from a video: the video at `path` is hashed (it must still be
// `expected_sha256`, the content that was indexed), opened under the same container whitelist and
// caps as at ingest (options.max_pixels, options.video), decoded up to the face's frame
// (`video.at_s`) within the video time budget, and `box` is cut from that frame. Errors: kNotFound,
// kIo, kDecode (another content than indexed, a refused or undecodable video, the frame not
// reached), kInvalidArgument for a box outside the frame.
Result<std::string> VideoFaceThumbnail(const std::string& path, const std::string& expected_sha256,
                                       const VideoSpan& video, const Box& box, const PipelineOptions& options,
                                       int max_side = 160);

}  // namespace facesearch
