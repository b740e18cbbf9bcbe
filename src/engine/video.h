// Videos in the engine: a local video file opened and hashed, then sampled, analysed and tracked
// into one face per appearance (track.h). Shared by ingest and by query probes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "face/analyzer.h"
#include "facesearch/engine.h"

namespace facesearch {

// True when `path` names a video: a video extension (HasVideoExtension), or a file whose first
// bytes are a video container (SniffVideo). A file that cannot be read is not a video here: the
// image path reports why it cannot be read.
bool IsVideoFile(const std::string& path);

// A local video file, open (the descriptor closes with it) and hashed.
class VideoFile {
 public:
  // Opens a regular file (OpenRegularFile) and hashes it by streaming. Errors: kNotFound, kIo,
  // kDecode when it is larger than max_bytes ("larger than").
  static Result<VideoFile> Open(const std::string& path, int64_t max_bytes);
  VideoFile(VideoFile&& other) noexcept;
  VideoFile& operator=(VideoFile&&) = delete;
  ~VideoFile();
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }
  int64_t size() const { return size_; }

 private:
  VideoFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_, sha256_;
  int64_t size_ = 0;
};

struct VideoFaces {
  int width = 0, height = 0;
  double duration_s = 0;     // of the frames decoded
  int64_t frames = 0;        // decoded
  int64_t samples = 0;       // analysed
  int64_t detections = 0;    // faces found over all samples, before tracking
  std::vector<Face> faces;   // one per track, in order of first appearance, each with its VideoSpan
  double decode_s = 0, decode_cpu_s = 0;  // wall and thread CPU seconds spent decoding
};

// The error AnalyzeVideo returns when `stop` became true: the video is abandoned, not failed.
inline constexpr const char* kVideoInterrupted = "video analysis interrupted";

// Called with each analysed sample: the frame, its number and the faces found in it.
using SampleObserver = std::function<Status(const RgbImage& frame, int64_t number, const std::vector<Face>& faces)>;

// Samples `file` at options.video.sample_fps (and ends every track at a scene cut), analyses each
// sample with `analyzer` and tracks the faces. Errors (kDecode, messages VideoReader's): refused or
// undecodable videos, the pixel, duration and time caps (options.max_pixels, options.video);
// kInternal from the analyzer, or kInternal with ErrorReason::kInterrupted when `stop` is set; an
// error of `observer` ends it too.
Result<VideoFaces> AnalyzeVideo(FaceAnalyzer& analyzer, const VideoFile& file, const PipelineOptions& options,
                                const std::atomic<bool>* stop = nullptr, const SampleObserver& observer = {});

}  // namespace facesearch
