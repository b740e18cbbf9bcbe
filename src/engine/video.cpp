// Videos in the engine. See video.h.
#include "engine/video.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/cpu_time.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "engine/track.h"
#include "image/video.h"

namespace facesearch {
namespace {

using Clock = std::chrono::steady_clock;

// A scene cut: the mean absolute difference of two consecutive samples shrunk to 32 px (RGB, 0 to
// 255) above this. A face that moves or turns changes a few percent of such a thumbnail; a cut to
// another shot changes most of it.
constexpr int kCutThumbSide = 32;
constexpr double kSceneCutDifference = 40;

double MeanAbsDifference(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height || a.pixels.empty()) return 255;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int{a.pixels[i]} - int{b.pixels[i]});
  return sum / static_cast<double>(a.pixels.size());
}

}  // namespace

bool IsVideoFile(const std::string& path) {
  if (HasVideoExtension(path)) return true;
  auto fd = OpenRegularFile(path);
  if (!fd) return false;
  char head[16];
  const ssize_t n = pread(*fd, head, sizeof head, 0);
  ::close(*fd);
  return n > 0 && SniffVideo(std::string_view(head, static_cast<size_t>(n))) != nullptr;
}

Result<VideoFile> VideoFile::Open(const std::string& path, int64_t max_bytes) {
  FS_ASSIGN(const int fd, OpenRegularFile(path));
  VideoFile file(fd, path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Fail(ErrorCode::kIo, "cannot stat " + path + ": " + std::strerror(errno));
  if (st.st_size > max_bytes)
    return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, path + " is larger than the video limit of " + std::to_string(max_bytes) +
                                        " bytes (--video-max-bytes)");
  Sha256 hash;
  std::vector<char> buf(1 << 20);
  for (int64_t offset = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorCode::kIo, "cannot read " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    // A file growing while it is read is hashed up to the cap, and refused past it.
    if ((offset += n) > max_bytes)
      return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, path + " is larger than the video limit of " + std::to_string(max_bytes) +
                                          " bytes (--video-max-bytes)");
    hash.Update(buf.data(), static_cast<size_t>(n));
    file.size_ = offset;
  }
  file.sha256_ = hash.FinishHex();
  return file;
}

VideoFile::VideoFile(VideoFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), sha256_(std::move(other.sha256_)),
      size_(other.size_) {}

VideoFile::~VideoFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<VideoFaces> AnalyzeVideo(FaceAnalyzer& analyzer, const VideoFile& file, const PipelineOptions& options,
                                const std::atomic<bool>* stop, const SampleObserver& observer) {
  const VideoOptions& v = options.video;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(v.budget_s));
  VideoFaces out;
  auto decode_start = Clock::now();
  double decode_cpu_start = ThreadCpuSeconds();
  auto lap_decode = [&] {
    out.decode_s += std::chrono::duration<double>(Clock::now() - decode_start).count();
    out.decode_cpu_s += ThreadCpuSeconds() - decode_cpu_start;
  };
  FS_ASSIGN(auto reader, VideoReader::Open(file.fd(), file.path(), {options.max_pixels, v.max_seconds}));
  out.width = reader->width();
  out.height = reader->height();
  const double step = 1.0 / v.sample_fps;
  FaceTracker tracker;
  RgbImage previous;
  double next_s = 0;
  while (true) {
    if (stop && stop->load()) return Fail(ErrorCode::kInternal, ErrorReason::kInterrupted, kVideoInterrupted);
    decode_start = Clock::now();
    decode_cpu_start = ThreadCpuSeconds();
    FS_ASSIGN(auto frame, reader->Next(next_s, deadline));
    if (!frame) {
      lap_decode();
      break;
    }
    RgbImage thumb = ResizeToMaxSide(frame->image, kCutThumbSide);
    lap_decode();
    if (out.samples > 0 && MeanAbsDifference(thumb, previous) > kSceneCutDifference) tracker.Cut();
    previous = std::move(thumb);
    FS_ASSIGN(std::vector<Face> faces, analyzer.Analyze(frame->image));
    out.detections += static_cast<int64_t>(faces.size());
    spdlog::debug("{}: frame {} at {:.3f} s, {} face(s)", file.path(), frame->number, frame->at_s, faces.size());
    if (observer) FS_TRY(observer(frame->image, frame->number, faces));
    tracker.Add(out.samples++, frame->number, frame->at_s, faces);
    out.duration_s = frame->at_s;
    // The next sample on the grid of `step`, whatever the frame rate (1e-6: a frame exactly on
    // the grid is not skipped by rounding).
    next_s = step * (std::floor(frame->at_s / step + 1e-6) + 1);
  }
  out.frames = reader->frames_read();
  out.duration_s = std::max(out.duration_s, static_cast<double>(out.frames) / reader->fps());
  out.faces = tracker.Finish();
  return out;
}

}  // namespace facesearch
