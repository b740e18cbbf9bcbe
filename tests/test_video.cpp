// Videos (issue #20): the tracker's rules, the refusal of hostile and broken videos, and the real
// binary indexing and querying small videos built here from the test photos with OpenCV's
// VideoWriter (Debian's FFmpeg backend).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "engine/track.h"
#include "image/video.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// What a test video shows for a while: nothing (a grey frame), Obama alone in the middle, or
// Obama (left) and Biden (right) side by side.
enum class Scene { kBlank, kObama, kBoth };
struct Segment {
  double seconds;
  Scene scene;
};

// The face region of a test photo, 2.2 times the box `facesearch faces` finds there.
cv::Mat FaceCrop(const std::string& name, cv::Rect box) {
  cv::Mat m = cv::imread(TestImage(name).string());
  REQUIRE_FALSE(m.empty());
  const int side = box.width * 11 / 5;
  cv::Rect r(box.x + box.width / 2 - side / 2, box.y + box.height / 2 - side / 2, side, side);
  return m(r & cv::Rect(0, 0, m.cols, m.rows)).clone();
}

void Paste(const cv::Mat& face, cv::Mat& canvas, cv::Rect slot) {
  const double k = std::min(slot.width / double(face.cols), slot.height / double(face.rows));
  cv::Mat scaled;
  cv::resize(face, scaled, cv::Size(), k, k, cv::INTER_AREA);
  scaled.copyTo(canvas(cv::Rect(slot.x, slot.y, scaled.cols, scaled.rows)));
}

// Writes a 320x240 video at 10 frames per second (faces about 70 px across).
void WriteVideo(const fs::path& path, const char* fourcc, const std::vector<Segment>& segments) {
  static const cv::Mat obama = FaceCrop("obama.jpg", {349, 142, 269, 268});
  static const cv::Mat biden = FaceCrop("biden.jpg", {434, 230, 309, 309});
  const int w = 320, h = 240;
  const double fps = 10;
  cv::VideoWriter out(path.string(), cv::CAP_FFMPEG, cv::VideoWriter::fourcc(fourcc[0], fourcc[1], fourcc[2], fourcc[3]),
                      fps, cv::Size(w, h));
  REQUIRE(out.isOpened());
  for (const Segment& s : segments)
    for (int i = 0; i < static_cast<int>(s.seconds * fps + 0.5); ++i) {
      cv::Mat frame(h, w, CV_8UC3, cv::Scalar(90, 90, 90));
      if (s.scene == Scene::kObama) Paste(obama, frame, {w / 4, 0, w / 2, h});
      if (s.scene == Scene::kBoth) {
        Paste(obama, frame, {0, 0, w / 2, h});
        Paste(biden, frame, {w / 2, 0, w / 2, h});
      }
      out.write(frame);
    }
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void WriteAll(const fs::path& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }

// A face with a distinct embedding (one axis per person) at a box.
Face PersonAt(int person, Box box) {
  Face f;
  f.box = box;
  f.embedding[person] = 1.0f;
  return f;
}

// location -> reason, from `info --errors --format json`.
std::map<std::string, std::string> ErrorReasons(const CorpusDir& c) {
  RunResult r = c.Run({"info", "--errors", "--format", "json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json j = ParseJson(r.out);
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < j["issues"].size(); ++i)
    out[fs::path(j["issues"][i]["location"].str()).filename().string()] = j["issues"][i]["reason"].str();
  return out;
}

}  // namespace

TEST_CASE("The tracker makes one track per appearance: a face gone longer than one sample, or a cut, starts another",
          "[video][track]") {
  FaceTracker t;
  const Box left{10, 10, 60, 60}, right{200, 10, 60, 60};
  t.Add(0, 0, 0.0, {PersonAt(0, left), PersonAt(1, right)});        // two people: two tracks
  t.Add(1, 5, 0.5, {PersonAt(0, {14, 12, 64, 64})});                  // person 1 missed once: kept open
  t.Add(2, 10, 1.0, {PersonAt(0, left), PersonAt(1, right)});
  t.Add(5, 25, 2.5, {PersonAt(0, left)});                             // gone for two samples: a new track
  t.Cut();
  t.Add(6, 30, 3.0, {PersonAt(0, left)});                             // across a scene cut: a new track
  std::vector<Face> tracks = t.Finish();
  REQUIRE(tracks.size() == 4);
  auto span = [&](size_t i) { return *tracks[i].video; };
  CHECK((span(0).first_s == 0.0 && span(0).last_s == 1.0));
  CHECK((span(0).frame == 5 && tracks[0].box.w == 64));  // the best face: the largest box
  CHECK((span(1).first_s == 0.0 && span(1).last_s == 1.0 && tracks[1].embedding[1] == 1.0f));
  CHECK((span(2).first_s == 2.5 && span(2).last_s == 2.5));
  CHECK((span(3).first_s == 3.0 && span(3).frame == 30));
}

TEST_CASE("The tracker pairs by embedding: overlapping boxes of different people, or one person far away",
          "[video][track]") {
  FaceTracker t;
  t.Add(0, 0, 0.0, {PersonAt(0, {10, 10, 60, 60})});
  // Another person in the same place is not the same track; the same person across the frame is.
  t.Add(1, 5, 0.5, {PersonAt(1, {12, 10, 60, 60}), PersonAt(0, {250, 10, 60, 60})});
  std::vector<Face> tracks = t.Finish();
  REQUIRE(tracks.size() == 2);
  CHECK(tracks[0].video->last_s == 0.5);
  CHECK(tracks[1].video->first_s == 0.5);
  CHECK(tracks[1].embedding[1] == 1.0f);
  CHECK(BoxIou({0, 0, 10, 10}, {5, 0, 10, 10}) == Approx(1.0 / 3));
  CHECK(BoxIou({0, 0, 10, 10}, {20, 0, 10, 10}) == 0);
}

TEST_CASE("Only the allowed containers are videos, and FFmpeg in this process refuses playlists that name other files",
          "[video][hostile]") {
  TempDir dir;
  WriteVideo(dir / "real.avi", "MJPG", {{0.3, Scene::kBlank}});
  CHECK(std::string(SniffVideo(ReadAll(dir / "real.avi"))) == "avi");
  CHECK(SniffVideo(std::string("\x1A\x45\xDF\xA3", 4) + "webm") != nullptr);
  CHECK(SniffVideo(std::string("\0\0\0\x20" "ftypisom", 12)) != nullptr);
  // An HLS playlist and an ffconcat list, each naming the real video: FFmpeg would read them
  // (and through them any file) if its demuxers were not restricted.
  const std::string hls = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n" + (dir / "real.avi").string() +
                          "\n#EXT-X-ENDLIST\n";
  const std::string concat = "ffconcat version 1.0\nfile '" + (dir / "real.avi").string() + "'\n";
  CHECK(SniffVideo(hls) == nullptr);
  CHECK(SniffVideo(concat) == nullptr);
  WriteAll(dir / "playlist.m3u8", hls);
  WriteAll(dir / "list.ffconcat", concat);
  REQUIRE(cv::VideoCapture((dir / "real.avi").string(), cv::CAP_FFMPEG).isOpened());
  CHECK_FALSE(cv::VideoCapture((dir / "playlist.m3u8").string(), cv::CAP_FFMPEG).isOpened());
  CHECK_FALSE(cv::VideoCapture((dir / "list.ffconcat").string(), cv::CAP_FFMPEG).isOpened());
  CHECK(HasVideoExtension("a/B.MKV"));
  CHECK_FALSE(HasVideoExtension("a/b.m3u8"));
}

TEST_CASE("Every container Debian's FFmpeg writes is indexed as a video with its tracks and times",
          "[video][e2e]") {
  CorpusDir c;
  fs::create_directories(c.photos);
  // MJPG in AVI and Matroska, MPEG-4 part 2 in MP4 and QuickTime, VP8 in WebM.
  const std::vector<std::pair<std::string, const char*>> files = {
      {"clip.avi", "MJPG"}, {"clip.mkv", "MJPG"}, {"clip.mp4", "mp4v"}, {"clip.mov", "mp4v"}, {"clip.webm", "VP80"}};
  for (size_t i = 0; i < files.size(); ++i)  // each its own content: a different length
    WriteVideo(c.photos / files[i].first, files[i].second, {{0.6 + 0.1 * i, Scene::kObama}});
  RunResult r = c.Run({"index", "--json", c.photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json summary = ParseJson(r.out);
  CHECK(summary["added"].num() == 5);
  CHECK(summary["faces"].num() == 5);  // one appearance each, not one face per sample
  std::vector<Json> faces = ParseJsonLines(c.Run({"export"}).out);
  REQUIRE(faces.size() == 5);
  for (const Json& f : faces) {
    INFO(f["image"].str());
    CHECK(f["video"]["first"].num() == 0);
    CHECK(f["video"]["last"].num() == 0.5);
  }
}

TEST_CASE("A person who leaves and comes back is two appearances, two people are two tracks, and a photo finds each at its time and its face crop",
          "[video][e2e]") {
  CorpusDir c;
  fs::create_directories(c.photos);
  const fs::path video = c.photos / "street.mkv";
  // Obama 0-2 s, gone, back 3.5-5 s, gone, then with Biden 6.5-8 s; sampled every 0.5 s.
  WriteVideo(video, "MJPG", {{2, Scene::kObama}, {1.5, Scene::kBlank}, {1.5, Scene::kObama},
                             {1.5, Scene::kBlank}, {1.5, Scene::kBoth}});
  RunResult r = c.Run({"index", "--json", video.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJson(r.out)["faces"].num() == 4);

  // A still photo of Obama (not the one in the video) finds his three appearances, each within one
  // sampling step (0.5 s) of when it began and ended.
  RunResult q = c.Run({"query", "--format", "jsonl", TestImage("obama2.jpg").string()});
  REQUIRE(q.exit_code == 0);
  std::map<double, double> spans;
  for (const Json& m : ParseJsonLines(q.out)) spans[m["video"]["first"].num()] = m["video"]["last"].num();
  const std::vector<std::pair<double, double>> expected = {{0, 2}, {3.5, 5}, {6.5, 8}};
  REQUIRE(spans.size() == 3);
  size_t i = 0;
  for (const auto& [first, last] : spans) {
    CHECK(first == Approx(expected[i].first).margin(0.5));
    CHECK(last == Approx(expected[i].second).margin(0.5));
    ++i;
  }
  RunResult b = c.Run({"query", "--format", "csv", "--fields", "image,video_first,video_last",
                       TestImage("biden.jpg").string()});
  REQUIRE(b.exit_code == 0);
  CHECK(b.out == "image,video_first,video_last\n" + video.string() + ",6.500,7.500\n");
  const fs::path report = c.dir / "report.html";
  RunResult table = c.Run({"query", "--html", report.string(), TestImage("biden.jpg").string()});
  CHECK(table.out.find("street.mkv @ 00:00:06.500-00:00:07.500 (frame 65)") != std::string::npos);
  const std::string html = ReadAll(report);
  CHECK(html.find("00:00:06.500 &ndash; 00:00:07.500 (frame 65)") != std::string::npos);
  // The matched face is cut from its frame of the video, as a photo's face is from the photo.
  CHECK(html.find("alt=\"matched face") != std::string::npos);
  CHECK(html.find("video frame unavailable") == std::string::npos);
  // The video is one file: printed once however many of its faces match.
  CHECK(c.Run({"query", "--paths-only", TestImage("obama2.jpg").string()}).out == video.string() + "\n");

  // The video as the probe: every track is searched; --face N picks one.
  RunResult probe = c.Run({"query", "--format", "json", video.string()});
  REQUIRE(probe.exit_code == 0);
  Json result = ParseJson(probe.out);
  CHECK(result["faces_detected"].num() == 4);
  REQUIRE(result["results"].size() == 4);
  CHECK(result["results"][3]["video"]["first"].num() == 6.5);
  RunResult one = c.Run({"query", "--format", "json", "--face", "3", "--threshold", "0.3", video.string()});
  Json picked = ParseJson(one.out);
  REQUIRE(picked["results"].size() == 1);
  REQUIRE(picked["results"][0]["matches"].size() == 1);  // Biden's own track, no Obama
  CHECK(picked["results"][0]["matches"][0]["video"]["frame"].num() == 65);
}

TEST_CASE("Broken and hostile videos are each refused with their reason, and nothing of them is stored",
          "[video][hostile][e2e]") {
  CorpusDir c;
  fs::create_directories(c.photos);
  const fs::path good = c.photos / "good.avi";
  WriteVideo(good, "MJPG", {{1, Scene::kObama}, {1, Scene::kBlank}});
  const std::string bytes = ReadAll(good);
  WriteAll(c.photos / "truncated.avi", bytes.substr(0, bytes.size() * 4 / 10));
  WriteAll(c.photos / "empty.mp4", "");
  { cv::VideoWriter none((c.photos / "noframes.avi").string(), cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, cv::Size(160, 120)); }
  // A huge declared frame: every JPEG frame header (big-endian 16-bit height, width) and the AVI
  // headers (avih dwWidth, dwHeight; strf biWidth, biHeight: little-endian 32-bit) say 12000x12000.
  std::string huge = bytes;
  auto put = [&](size_t at, uint32_t v, int n, bool big) {
    for (int i = 0; i < n; ++i) huge[at + i] = char(v >> (8 * (big ? n - 1 - i : i)));
  };
  for (size_t at = huge.find("\xFF\xC0"); at != std::string::npos; at = huge.find("\xFF\xC0", at + 2)) {
    put(at + 5, 12000, 2, true);
    put(at + 7, 12000, 2, true);
  }
  for (const auto& [chunk, offset] : {std::pair{"avih", 40}, std::pair{"strf", 12}}) {
    const size_t at = huge.find(chunk);
    REQUIRE(at != std::string::npos);
    put(at + offset, 12000, 4, false);
    put(at + offset + 4, 12000, 4, false);
  }
  WriteAll(c.photos / "huge.avi", huge);
  WriteAll(c.photos / "playlist.mp4", "#EXTM3U\n#EXTINF:1.0,\n" + good.string() + "\n#EXT-X-ENDLIST\n");
  // An MP4 cut after its first box: no movie header, nothing FFmpeg can open.
  WriteAll(c.photos / "cut.mp4", std::string("\0\0\0\x14" "ftypisom\0\0\0\0isom", 20));

  RunResult r = c.Run({"index", "--json", "--max-pixels", "50000000", c.photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json summary = ParseJson(r.out);
  CHECK(summary["added"].num() == 1);
  CHECK(summary["errors"].num() == 6);
  const std::map<std::string, std::string> expected = {
      {"truncated.avi", "truncated"}, {"empty.mp4", "empty"},       {"noframes.avi", "no_frames"},
      {"huge.avi", "pixel_cap"},      {"playlist.mp4", "not_video"}, {"cut.mp4", "decoder_error"}};
  CHECK(ErrorReasons(c) == expected);
  Json info = ParseJson(c.Run({"info", "--json"}).out);
  CHECK(info["faces"].num() == 1);  // good.avi's only

  // A time budget that runs out stores nothing either, and says so.
  CorpusDir slow;
  RunResult budget = slow.Run({"index", "--json", "--video-budget", "0.000001", good.string()});
  REQUIRE(budget.exit_code == 0);
  CHECK(ParseJson(budget.out)["errors"].num() == 1);
  CHECK(ErrorReasons(slow) == std::map<std::string, std::string>{{"good.avi", "time_budget"}});
  CHECK(ParseJson(slow.Run({"info", "--json"}).out)["faces"].num() == 0);
}

TEST_CASE("forget of a video erases all of its faces, and an opt-out keeps a person's tracks out of a video",
          "[video][privacy][e2e]") {
  CorpusDir c;
  c.Index({"obama.jpg"});
  const fs::path video = c.dir / "pair.avi";
  WriteVideo(video, "MJPG", {{1, Scene::kObama}, {1.5, Scene::kBlank}, {1, Scene::kBoth}});
  RunResult add = c.Run({"optout", "add", TestImage("biden.jpg").string(), "--reason", "ticket 20"});
  INFO(add.err);
  REQUIRE(add.exit_code == 0);
  Json indexed = ParseJson(c.Run({"index", "--json", video.string()}).out);
  CHECK(indexed["faces"].num() == 2);  // Obama twice; Biden's track dropped
  CHECK(indexed["optout_faces"].num() == 1);

  RunResult f = c.Run({"forget", "--json", "--image", video.string()});
  INFO(f.err);
  REQUIRE(f.exit_code == 0);
  CHECK(ParseJson(f.out)["faces_erased"].num() == 2);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 1);
  RunResult q = c.Run({"query", "--paths-only", TestImage("obama2.jpg").string()});
  CHECK(q.out == (c.photos / "obama.jpg").string() + "\n");
}
