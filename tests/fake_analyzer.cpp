#include "fake_analyzer.h"

#include <catch2/catch.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace facesearch::test {
namespace {

constexpr uint8_t kMarker = 255;  // the red value of a face's pixels

const uint8_t* Pixel(const RgbImage& image, int64_t x, int64_t y) {
  return &image.pixels[(static_cast<size_t>(y) * image.width + x) * 3];
}

// The face drawn in `box`: its colour at the centre decides who it is.
Face FaceIn(const RgbImage& image, const Box& box) {
  Face face;
  face.box = box;
  face.det_score = 1.0;
  const int64_t cx = std::clamp<int64_t>(box.x + box.w / 2, 0, image.width - 1);
  const int64_t cy = std::clamp<int64_t>(box.y + box.h / 2, 0, image.height - 1);
  const uint8_t* p = Pixel(image, cx, cy);
  const int person = p[1] % kEmbeddingDim;
  face.embedding[person] = 1.0f;
  face.embedding[kEmbeddingDim - 1 - person] += static_cast<float>(p[2]) / 2550.0f;
  // Eye corners at a third of the height, nose base at the centre, as a detector would place them.
  const int64_t eye_y = box.y + box.h / 3;
  face.landmarks = {Point{box.x + box.w * 3 / 4, eye_y}, Point{box.x + box.w * 5 / 8, eye_y},
                    Point{box.x + box.w / 4, eye_y}, Point{box.x + box.w * 3 / 8, eye_y},
                    Point{cx, cy}};
  return face;
}

}  // namespace

Result<std::vector<Face>> FakeAnalyzer::Analyze(const RgbImage& image) {
  // Each face is the bounding box of a 4-connected region of marker pixels, in scan order.
  std::vector<uint8_t> seen(static_cast<size_t>(image.width) * image.height, 0);
  std::vector<Face> faces;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      if (seen[static_cast<size_t>(y) * image.width + x] || Pixel(image, x, y)[0] != kMarker) continue;
      int64_t x0 = x, y0 = y, x1 = x, y1 = y;
      std::vector<std::pair<int, int>> stack = {{x, y}};
      seen[static_cast<size_t>(y) * image.width + x] = 1;
      while (!stack.empty()) {
        auto [px, py] = stack.back();
        stack.pop_back();
        x0 = std::min<int64_t>(x0, px), x1 = std::max<int64_t>(x1, px);
        y0 = std::min<int64_t>(y0, py), y1 = std::max<int64_t>(y1, py);
        for (auto [nx, ny] : {std::pair{px + 1, py}, {px - 1, py}, {px, py + 1}, {px, py - 1}}) {
          if (nx < 0 || ny < 0 || nx >= image.width || ny >= image.height) continue;
          uint8_t& s = seen[static_cast<size_t>(ny) * image.width + nx];
          if (s || Pixel(image, nx, ny)[0] != kMarker) continue;
          s = 1;
          stack.push_back({nx, ny});
        }
      }
      faces.push_back(FaceIn(image, Box{x0, y0, x1 - x0 + 1, y1 - y0 + 1}));
    }
  return faces;
}

Result<std::vector<Face>> FakeAnalyzer::AnalyzeBoxes(const RgbImage& image, const std::vector<Box>& boxes) {
  std::vector<Face> faces;
  for (const Box& box : boxes) {
    faces.push_back(FaceIn(image, box));
    faces.back().det_score = 0;
  }
  return faces;
}

Result<RgbImage> FakeAnalyzer::Chip(const RgbImage& image, const Face& face) {
  // 150x150 samples of the box (nearest pixel), as the aligner's chip has.
  RgbImage chip{150, 150, std::vector<uint8_t>(150 * 150 * 3)};
  for (int y = 0; y < 150; ++y)
    for (int x = 0; x < 150; ++x) {
      const int64_t sx = std::clamp<int64_t>(face.box.x + face.box.w * x / 150, 0, image.width - 1);
      const int64_t sy = std::clamp<int64_t>(face.box.y + face.box.h * y / 150, 0, image.height - 1);
      std::copy_n(Pixel(image, sx, sy), 3, &chip.pixels[(static_cast<size_t>(y) * 150 + x) * 3]);
    }
  return chip;
}

CorpusConfig WithFakeAnalyzer(CorpusConfig config) {
  config.analyzer_factory = [](const PipelineOptions&) -> Result<std::unique_ptr<FaceAnalyzer>> {
    return std::make_unique<FakeAnalyzer>();
  };
  return config;
}

void WriteFaceImage(const std::filesystem::path& path, const std::vector<DrawnFace>& faces, int width,
                    int height) {
  cv::Mat image(height, width, CV_8UC3, cv::Scalar(128, 128, 128));  // BGR grey
  for (const DrawnFace& f : faces)
    image(cv::Rect(f.x, f.y, f.w, f.h)) = cv::Scalar(f.shade, f.person, kMarker);
  std::filesystem::create_directories(path.parent_path());
  REQUIRE(cv::imwrite(path.string(), image));
}

}  // namespace facesearch::test
