// Video decoding for untrusted files: OpenCV's FFmpeg backend, restricted to local files and to
// the MP4/QuickTime, Matroska/WebM and AVI demuxers, with caps on the frame size, the duration
// and the time spent.
//
// Why the restrictions: FFmpeg picks its demuxer from the content, and some demuxers open other
// files or URLs named inside the file (an HLS playlist, an ffconcat list). A file named ".mp4"
// holding "#EXTM3U ... /etc/shadow" would otherwise be read through the playlist. So the first
// bytes must be one of the allowed containers (SniffVideo), and FFmpeg itself is told, through
// OPENCV_FFMPEG_CAPTURE_OPTIONS (set for the whole process when this library loads, overriding
// the environment), to use the file protocol and the allowed demuxers only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "facesearch/error.h"
#include "image/decode.h"

namespace facesearch {

// "mp4" (MP4, QuickTime .mov, 3GP: the ISO base media format), "matroska" (also WebM) or "avi"
// when the first bytes are such a container; nullptr for anything else.
const char* SniffVideo(std::string_view head);
// .mp4 .m4v .mov .mkv .webm .avi (any case): the files a directory walk takes as videos.
bool HasVideoExtension(const std::filesystem::path& path);

struct VideoLimits {
  int64_t max_pixels = 80'000'000;  // per frame, as for images
  double max_seconds = 4 * 3600.0;  // declared or decoded duration
};

struct VideoFrame {
  RgbImage image;
  int64_t number = 0;  // 0-based frame number
  double at_s = 0;     // number / frame rate
};

class VideoReader {
 public:
  // Opens the regular file behind `fd` (through /proc/self/fd, so the file decoded is the one
  // the caller opened and hashed, whatever happens to its path). `name` is for messages. Refuses
  // (kDecode) what is not an allowed container, cannot be opened, declares a frame larger than
  // limits.max_pixels ("pixel limit"), an implausible frame rate, or a duration over
  // limits.max_seconds ("longer than").
  static Result<std::unique_ptr<VideoReader>> Open(int fd, const std::string& name, const VideoLimits& limits);
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  int width() const { return width_; }
  int height() const { return height_; }
  double fps() const { return fps_; }
  int64_t declared_frames() const { return declared_frames_; }
  double declared_seconds() const { return static_cast<double>(declared_frames_) / fps_; }
  int64_t frames_read() const { return frames_read_; }

  // The next frame at or after `not_before_s`, as RGB; the frames before it are decoded but not
  // converted. nullopt at the end of the stream. Errors (kDecode): a frame over the pixel cap, a
  // stream longer than max_seconds, `deadline` passed ("time budget"), and at the end, a stream
  // that stopped well short of the frames its header declares ("truncated") or held no frame
  // ("no frames").
  Result<std::optional<VideoFrame>> Next(double not_before_s, std::chrono::steady_clock::time_point deadline);

 private:
  struct Capture;
  VideoReader(std::unique_ptr<Capture> capture, std::string name, const VideoLimits& limits);
  Status AtEnd() const;
  std::unique_ptr<Capture> capture_;
  std::string name_;
  VideoLimits limits_;
  int width_ = 0, height_ = 0;
  double fps_ = 0;
  int64_t declared_frames_ = 0;
  int64_t frames_read_ = 0;
};

}  // namespace facesearch
