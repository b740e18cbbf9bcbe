// Builds the benchmark video of docs/benchmarks.md ("Faces in video"): 60 s of a grey scene in
// which the test photos' faces appear 8 times (alone, side by side, one sliding across the frame),
// with a known schedule, so that stored faces can be compared with appearances.
//
//   build/make_video OUT.mp4 WIDTH HEIGHT [FOURCC]      (default avc1: H.264, what cameras write)
//
// Faces come from ${FACESEARCH_TEST_IMAGES:-~/.cache/facesearch/test-images} (scripts/fetch-test-images.sh).
#include <cstdio>
#include <cstdlib>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <string>

namespace {

// The face region of a test photo: 2.2 times the box `facesearch faces` finds there.
cv::Mat FaceCrop(const std::string& dir, const char* name, cv::Rect box) {
  cv::Mat m = cv::imread(dir + "/" + name);
  if (m.empty()) {
    std::fprintf(stderr, "cannot read %s/%s: run scripts/fetch-test-images.sh\n", dir.c_str(), name);
    std::exit(2);
  }
  const int side = box.width * 11 / 5;
  cv::Rect r(box.x + box.width / 2 - side / 2, box.y + box.height / 2 - side / 2, side, side);
  return m(r & cv::Rect(0, 0, m.cols, m.rows)).clone();
}

void Paste(const cv::Mat& face, cv::Mat& canvas, int x, int side) {
  cv::Mat scaled;
  cv::resize(face, scaled, cv::Size(side, side), 0, 0, cv::INTER_AREA);
  cv::Rect dst(x, (canvas.rows - side) / 2, side, side);
  dst &= cv::Rect(0, 0, canvas.cols, canvas.rows);
  scaled(cv::Rect(0, 0, dst.width, dst.height)).copyTo(canvas(dst));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s OUT WIDTH HEIGHT [FOURCC]\n", argv[0]);
    return 2;
  }
  const char* env = std::getenv("FACESEARCH_TEST_IMAGES");
  const std::string dir = env ? env : std::string(std::getenv("HOME")) + "/.cache/facesearch/test-images";
  const cv::Mat obama = FaceCrop(dir, "obama.jpg", {349, 142, 269, 268});
  const cv::Mat biden = FaceCrop(dir, "biden.jpg", {434, 230, 309, 309});
  const int w = std::atoi(argv[2]), h = std::atoi(argv[3]);
  const std::string cc = argc > 4 ? argv[4] : "avc1";
  const double fps = 25;
  cv::VideoWriter out(argv[1], cv::CAP_FFMPEG, cv::VideoWriter::fourcc(cc[0], cc[1], cc[2], cc[3]), fps, cv::Size(w, h));
  if (!out.isOpened()) {
    std::fprintf(stderr, "cannot write %s with %s\n", argv[1], cc.c_str());
    return 2;
  }
  const int side = h / 2;  // the crop; the face is about side / 2.2 across
  // Every 10 s: 5 s of faces, then 5 s of nothing. 8 appearances in all.
  for (int f = 0; f < static_cast<int>(60 * fps); ++f) {
    const double t = f / fps;
    const int slot = static_cast<int>(t / 10);
    cv::Mat frame(h, w, CV_8UC3, cv::Scalar(90, 90, 90));
    if (t - slot * 10 < 5) {
      const int drift = static_cast<int>((t - slot * 10) * w / 40);  // slow movement, every slot
      switch (slot) {
        case 0: case 3: Paste(obama, frame, w / 2 - side / 2 + drift, side); break;
        case 1: Paste(biden, frame, w / 2 - side / 2 - drift, side); break;
        case 4: Paste(obama, frame, drift * 4, side); break;  // sliding across the frame
        default:
          Paste(obama, frame, w / 4 - side / 2 + drift, side);
          Paste(biden, frame, 3 * w / 4 - side / 2 - drift, side);
      }
    }
    out.write(frame);
  }
  std::printf("%s: 60 s, %dx%d, %s, 8 appearances (0-5 s Obama, 10-15 Biden, 20-25 both, 30-35 Obama, "
              "40-45 Obama sliding, 50-55 both)\n", argv[1], w, h, cc.c_str());
  return 0;
}
