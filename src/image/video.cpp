// Video decoding for untrusted files. See video.h for the contract and the threat it answers.
#include "image/video.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

namespace facesearch {
namespace {

// FFmpeg options OpenCV passes to avformat_open_input: only the file protocol (no http, pipe,
// data: or concat: reads), and only the demuxers of SniffVideo's containers (no HLS, ffconcat,
// image2 or other demuxer that opens files the video names). Set before main(), while the process
// has one thread: setenv is not safe while other threads read the environment. Verbose FFmpeg
// logs on hostile input are silenced unless the user asks for them.
const bool kFfmpegRestricted = [] {
  setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS",
         "protocol_whitelist;file|format_whitelist;mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi", 1);
  setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);
  return true;
}();

// How long FFmpeg may block in one open or read before OpenCV's interrupt callback stops it.
constexpr int kFfmpegTimeoutMs = 20'000;
constexpr double kMaxFps = 1000;

auto Refuse(const std::string& name, ErrorReason reason, const std::string& why) {
  return Fail(ErrorCode::kDecode, reason, "cannot read the video " + name + ": " + why);
}

}  // namespace

const char* SniffVideo(std::string_view head) {
  if (head.size() >= 4 && std::memcmp(head.data(), "\x1A\x45\xDF\xA3", 4) == 0) return "matroska";
  if (head.size() >= 12 && head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "AVI ") return "avi";
  if (head.size() >= 8) {
    // ISO base media / QuickTime: a top-level box; writers start with ftyp, old QuickTime with
    // moov, mdat, wide, free or skip.
    const std::string_view box = head.substr(4, 4);
    for (const char* t : {"ftyp", "moov", "mdat", "wide", "free", "skip"})
      if (box == t) return "mp4";
  }
  return nullptr;
}

bool HasVideoExtension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
    if (ext == e) return true;
  return false;
}

struct VideoReader::Capture {
  cv::VideoCapture cap;
};

VideoReader::VideoReader(std::unique_ptr<Capture> capture, std::string name, const VideoLimits& limits)
    : capture_(std::move(capture)), name_(std::move(name)), limits_(limits) {}
VideoReader::~VideoReader() = default;

Result<std::unique_ptr<VideoReader>> VideoReader::Open(int fd, const std::string& name, const VideoLimits& limits) {
  (void)kFfmpegRestricted;
  char head[16] = {};
  const ssize_t n = pread(fd, head, sizeof head, 0);
  if (n < 0) return Fail(ErrorCode::kIo, "cannot read " + name + ": " + std::strerror(errno));
  if (!SniffVideo(std::string_view(head, static_cast<size_t>(n))))
    return Refuse(name, ErrorReason::kNotVideo, "not a video (MP4/QuickTime, Matroska/WebM or AVI) by its first bytes");
  auto capture = std::make_unique<Capture>();
  try {
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, kFfmpegTimeoutMs,
                                     cv::CAP_PROP_READ_TIMEOUT_MSEC, kFfmpegTimeoutMs};
    if (!capture->cap.open(path, cv::CAP_FFMPEG, params))
      return Refuse(name, ErrorReason::kUnspecified, "FFmpeg cannot open it (a damaged or cut-short file, or a codec it lacks)");
  } catch (const std::exception& e) {
    return Refuse(name, ErrorReason::kUnspecified, std::string("FFmpeg failed to open it: ") + e.what());
  }
  std::unique_ptr<VideoReader> r(new VideoReader(std::move(capture), name, limits));
  cv::VideoCapture& cap = r->capture_->cap;
  const double w = cap.get(cv::CAP_PROP_FRAME_WIDTH), h = cap.get(cv::CAP_PROP_FRAME_HEIGHT);
  r->fps_ = cap.get(cv::CAP_PROP_FPS);
  const double frames = cap.get(cv::CAP_PROP_FRAME_COUNT);
  if (!(w >= 1 && h >= 1)) return Refuse(name, ErrorReason::kUnspecified, "it declares no frame size");
  if (w * h > static_cast<double>(limits.max_pixels))
    return Refuse(name, ErrorReason::kPixelCap, "its frames of " + std::to_string(static_cast<int64_t>(w)) + "x" +
                            std::to_string(static_cast<int64_t>(h)) + " exceed the pixel limit of " +
                            std::to_string(limits.max_pixels) + " (--max-pixels)");
  if (!(r->fps_ > 0 && r->fps_ <= kMaxFps))
    return Refuse(name, ErrorReason::kUnspecified, "it declares an implausible frame rate (" + std::to_string(r->fps_) + ")");
  r->width_ = static_cast<int>(w);
  r->height_ = static_cast<int>(h);
  r->declared_frames_ = std::isfinite(frames) && frames > 0 ? static_cast<int64_t>(std::min(frames, 9e15)) : 0;
  if (r->declared_seconds() > limits.max_seconds)
    return Refuse(name, ErrorReason::kTooLong, "it is longer than the limit of " + std::to_string(static_cast<int64_t>(limits.max_seconds)) +
                            " s (--video-max-seconds): its header declares " +
                            std::to_string(static_cast<int64_t>(r->declared_seconds())) + " s");
  return r;
}

Status VideoReader::AtEnd() const {
  if (frames_read_ == 0) return Refuse(name_, ErrorReason::kNoFrames, "no frames could be decoded");
  // Container frame counts are exact (MP4, AVI) or estimated from the duration (Matroska): a
  // stream a tenth short of its header was cut off, not rounded.
  if (declared_frames_ > 0 && static_cast<double>(frames_read_) < 0.9 * static_cast<double>(declared_frames_) - 1)
    return Refuse(name_, ErrorReason::kTruncated, "truncated: " + std::to_string(frames_read_) + " of the " + std::to_string(declared_frames_) +
                             " frames its header declares could be decoded (to index what is there, remux it: "
                             "ffmpeg -i IN -c copy OUT.mkv)");
  return Ok();
}

Result<std::optional<VideoFrame>> VideoReader::Next(double not_before_s, std::chrono::steady_clock::time_point deadline) {
  cv::VideoCapture& cap = capture_->cap;
  try {
    while (true) {
      if (std::chrono::steady_clock::now() > deadline)
        return Refuse(name_, ErrorReason::kTimeBudget, "its time budget ran out after " + std::to_string(frames_read_) +
                                 " frames (--video-budget)");
      if (!cap.grab()) {
        FS_TRY(AtEnd());
        return std::optional<VideoFrame>();
      }
      const int64_t number = frames_read_++;
      // The frame's own timestamp where the stream has one (variable frame rates), else its number.
      const double pos_ms = cap.get(cv::CAP_PROP_POS_MSEC);
      const double at = std::isfinite(pos_ms) && pos_ms >= 0 && number > 0 ? pos_ms / 1000 : number / fps_;
      if (at > limits_.max_seconds)
        return Refuse(name_, ErrorReason::kTooLong, "it is longer than the limit of " +
                                 std::to_string(static_cast<int64_t>(limits_.max_seconds)) + " s (--video-max-seconds)");
      if (at < not_before_s) continue;
      cv::Mat bgr;
      {
        ScopedPixelCap pixel_cap(limits_.max_pixels);
        try {
          cap.retrieve(bgr);
        } catch (const cv::Exception&) {
          if (!pixel_cap.refused()) throw;
          return Refuse(name_, ErrorReason::kPixelCap, "frame " + std::to_string(number) + " exceeds the pixel limit (--max-pixels)");
        }
      }
      if (bgr.empty() || bgr.type() != CV_8UC3) continue;  // undecodable frame: the next one is tried
      if (static_cast<int64_t>(bgr.cols) * bgr.rows > limits_.max_pixels)
        return Refuse(name_, ErrorReason::kPixelCap, "frame " + std::to_string(number) + " exceeds the pixel limit (--max-pixels)");
      VideoFrame frame;
      frame.number = number;
      frame.at_s = at;
      frame.image.width = bgr.cols;
      frame.image.height = bgr.rows;
      frame.image.pixels.resize(static_cast<size_t>(bgr.cols) * bgr.rows * 3);
      cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, frame.image.pixels.data());
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      return std::optional<VideoFrame>(std::move(frame));
    }
  } catch (const std::exception& e) {
    return Refuse(name_, ErrorReason::kUnspecified, std::string("FFmpeg failed while decoding it: ") + e.what());
  }
}

}  // namespace facesearch
