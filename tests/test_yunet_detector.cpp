// YuNet through cv::dnn (src/face/yunet_detector.cpp) on the real pinned model and real photos. Its
// parity with opencv-python's FaceDetectorYN is measured by scripts/check/yunet_parity.py; these tests
// pin down what a user sees: each photo's faces are found, where dlib's HOG finds them.
#include <catch2/catch.hpp>
#include <dlib/image_transforms.h>

#include <cmath>

#include "common/fs.h"
#include "face/dlib_convert.h"
#include "face/hog_detector.h"
#include "face/models.h"
#include "face/yunet_detector.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

RgbImage Load(const std::string& name) {
  auto bytes = ReadFile(test::TestImage(name), size_t{1} << 30);
  REQUIRE(bytes);
  auto img = DecodeImage(*bytes, DecodeLimits{});
  REQUIRE(img);
  return std::move(*img);
}

// Fails (not skips) with the fetch command when the model is missing: CI fetches it.
std::unique_ptr<YunetDetector> Yunet() {
  auto d = YunetDetector::Load(test::ModelsDir());
  if (!d) FAIL(d.error().message);
  return std::move(*d);
}

}  // namespace

TEST_CASE("YuNet finds the one face of each test photo where HOG finds it, with its landmarks inside the box",
          "[models][yunet]") {
  auto yunet = Yunet();
  dlib::frontal_face_detector hog = LoadFrontalFaceDetector();
  for (const char* name : {"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg",
                           "obama_partial_face2.jpg"}) {
    INFO(name);
    const RgbImage image = Load(name);
    auto faces = yunet->Detect(image);
    REQUIRE(faces);
    REQUIRE(faces->size() == 1);
    const YunetFace& f = faces->front();
    CHECK(f.score >= 0.9f);
    CHECK(f.score <= 1.0f);
    auto hog_faces = DetectHog(hog, ToDlib(image), 1);
    REQUIRE(hog_faces.size() == 1);
    const Box& h = hog_faces.front().box;
    // Same face: centres within a third of HOG's box, sizes within a factor of two (YuNet's box
    // runs from the hairline to the chin, HOG's is a tighter square).
    CHECK(std::abs((f.x + f.w / 2) - (h.x + h.w / 2.0)) < h.w / 3.0);
    CHECK(std::abs((f.y + f.h / 2) - (h.y + h.h / 2.0)) < h.h / 3.0);
    CHECK(f.w > h.w / 2.0);
    CHECK(f.w < h.w * 2.0);
    for (int n = 0; n < 5; ++n) {
      CHECK(f.landmarks[2 * n] >= f.x);
      CHECK(f.landmarks[2 * n] <= f.x + f.w);
      CHECK(f.landmarks[2 * n + 1] >= f.y);
      CHECK(f.landmarks[2 * n + 1] <= f.y + f.h);
    }
    // Upright faces: the subject's right eye is on the viewer's left, the eyes above the nose,
    // the nose above the mouth.
    CHECK(f.landmarks[0] < f.landmarks[2]);
    CHECK(std::max(f.landmarks[1], f.landmarks[3]) < f.landmarks[5]);
    CHECK(f.landmarks[5] < std::min(f.landmarks[7], f.landmarks[9]));
  }
}

TEST_CASE("YuNet's score threshold and a clone give the same faces, and an image of no face gives none",
          "[models][yunet]") {
  auto yunet = Yunet();
  const RgbImage image = Load("obama.jpg");
  auto strict = yunet->Detect(image);
  YunetOptions low;
  low.score_threshold = 0.5f;
  auto relaxed = yunet->Detect(image, low);
  REQUIRE(strict);
  REQUIRE(relaxed);
  REQUIRE(relaxed->size() >= strict->size());
  auto clone = yunet->Clone();
  REQUIRE(clone);
  auto again = (*clone)->Detect(image);
  REQUIRE(again);
  REQUIRE(again->size() == strict->size());
  CHECK(again->front().x == strict->front().x);
  CHECK(again->front().score == strict->front().score);

  RgbImage grey{97, 61, std::vector<uint8_t>(97 * 61 * 3, 128)};  // odd sizes: padded to 128x64
  auto none = yunet->Detect(grey);
  REQUIRE(none);
  CHECK(none->empty());
  auto empty = yunet->Detect(RgbImage{});
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("A missing or altered YuNet model is refused with the fetch-models.sh --with-opencv hint",
          "[models][yunet]") {
  test::TempDir dir;
  auto missing = YunetDetector::Load(dir.path());
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kModel);
  CHECK_THAT(missing.error().message, Catch::Contains("face_detection_yunet_2023mar.onnx") &&
                                          Catch::Contains("missing") &&
                                          Catch::Contains("fetch-models.sh --with-opencv"));
  const fs::path copy = dir / ModelFileName(ModelId::kYunet);
  fs::copy_file(test::ModelsDir() / ModelFileName(ModelId::kYunet), copy);
  fs::resize_file(copy, fs::file_size(copy) - 1);
  auto altered = YunetDetector::Load(dir.path());
  REQUIRE_FALSE(altered);
  CHECK(altered.error().code == ErrorCode::kModel);
  CHECK_THAT(altered.error().message, Catch::Contains("8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4") &&
                                          Catch::Contains("fetch-models.sh --with-opencv"));
}
