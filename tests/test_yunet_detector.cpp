// YuNet through cv::dnn (src/face/yunet_detector.cpp) on the real pinned model and real photos. Its
// parity with opencv-python's FaceDetectorYN is measured by scripts/check/yunet_parity.py; these tests
// pin down what a user sees: each photo's faces are found, where dlib's HOG finds them.
#include <catch2/catch.hpp>
#include <dlib/image_transforms.h>

#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/fs.h"
#include "face/dlib_convert.h"
#include "face/hog_detector.h"
#include "face/models.h"
#include "face/yunet_detector.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

RgbImage Load(const std::string& name) { return test::DecodeTestImage(name); }

// Fails (not skips) with the fetch command when the model is missing: CI fetches it.
std::unique_ptr<YunetDetector> Yunet() {
  auto d = YunetDetector::Load(test::ModelsDir());
  if (!d) FAIL(d.error().message);
  return std::move(*d);
}

test::RunResult Run(std::vector<std::string> args, const fs::path& models = test::ModelsDir()) {
  args.insert(args.begin(), {"--models", models.string()});
  return test::RunFacesearch(args);
}

std::vector<test::Json> JsonLines(const std::string& out) {
  std::vector<test::Json> lines;
  size_t start = 0;
  for (size_t end; (end = out.find('\n', start)) != std::string::npos; start = end + 1)
    if (end > start) lines.push_back(test::ParseJson(out.substr(start, end - start)));
  return lines;
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


// --detector yunet through the real binary: YuNet's boxes, dlib's 5-point landmarks and embeddings.

TEST_CASE("faces --detector yunet finds the one face of each test photo near HOG's box, scored in [0.9, 1]",
          "[models][yunet][faces]") {
  std::vector<std::string> photos;
  for (const char* name : {"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg",
                           "obama_partial_face2.jpg"})
    photos.push_back(test::TestImage(name).string());
  std::vector<std::string> args = {"faces", "--jsonl"};
  args.insert(args.end(), photos.begin(), photos.end());
  test::RunResult hog = Run(args);
  args.insert(args.begin() + 1, {"--detector", "yunet"});
  test::RunResult yunet = Run(args);
  INFO(yunet.err);
  REQUIRE(hog.exit_code == 0);
  REQUIRE(yunet.exit_code == 0);
  std::vector<test::Json> h = JsonLines(hog.out), y = JsonLines(yunet.out);
  REQUIRE(h.size() == photos.size());
  REQUIRE(y.size() == photos.size());
  for (size_t i = 0; i < photos.size(); ++i) {
    INFO(photos[i]);
    REQUIRE(y[i]["image"].str() == h[i]["image"].str());
    CHECK(y[i]["det_score"].num() >= kYunetScore);
    CHECK(y[i]["det_score"].num() <= 1.0);
    CHECK(y[i]["quality_issues"].size() == 0);
    test::Json hb = h[i]["box"], yb = y[i]["box"];
    const double hw = hb["w"].num(), hh = hb["h"].num();
    CHECK(std::abs(yb["x"].num() + yb["w"].num() / 2 - (hb["x"].num() + hw / 2)) < hw / 4);
    CHECK(std::abs(yb["y"].num() + yb["h"].num() / 2 - (hb["y"].num() + hh / 2)) < hh / 3);
    // dlib's 5 points, placed in YuNet's box, land where they land in HOG's: within 5% of the face.
    for (size_t k = 0; k < 5; ++k)
      for (size_t c = 0; c < 2; ++c)
        CHECK(std::abs(y[i]["landmarks"][k][c].num() - h[i]["landmarks"][k][c].num()) < 0.05 * hw);
  }
}

TEST_CASE("faces --detector yunet finds a face turned 60 degrees only on its retry at score 0.5 or with --yunet-score 0.5, flagged weak",
          "[models][yunet][faces]") {
  test::TempDir dir;
  cv::Mat img = cv::imread(test::TestImage("obama.jpg").string());
  cv::Mat turned;
  cv::warpAffine(img, turned, cv::getRotationMatrix2D(cv::Point2f(img.cols / 2.f, img.rows / 2.f), 60, 1.0),
                 img.size());
  const std::string path = (dir / "turned.png").string();
  cv::imwrite(path, turned);
  test::RunResult none = Run({"faces", "--jsonl", "--detector", "yunet", "--retry", "none", path});
  CHECK(none.exit_code == 1);
  test::RunResult retried = Run({"faces", "--jsonl", "--detector", "yunet", path});
  INFO(retried.err);
  REQUIRE(retried.exit_code == 0);
  std::vector<test::Json> faces = JsonLines(retried.out);
  REQUIRE(faces.size() == 1);
  CHECK(faces[0]["det_score"].num() >= kYunetRetryScore);
  CHECK(faces[0]["det_score"].num() < kYunetScore);
  REQUIRE(faces[0]["quality_issues"].size() == 1);
  CHECK(faces[0]["quality_issues"][0].str() == "weak_detection");
  // --yunet-score lowers the first pass's cut: the same face, without a retry.
  test::RunResult lowered = Run({"faces", "--jsonl", "--detector", "yunet", "--retry", "none", "--yunet-score", "0.5", path});
  INFO(lowered.err);
  REQUIRE(lowered.exit_code == 0);
  REQUIRE(JsonLines(lowered.out).size() == 1);
  CHECK(JsonLines(lowered.out)[0]["det_score"].num() == faces[0]["det_score"].num());

  const std::string blank = (dir / "wall.png").string();
  cv::imwrite(blank, cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  test::RunResult wall = Run({"faces", "--detector", "yunet", blank});
  CHECK(wall.exit_code == 1);
}

TEST_CASE("index and query --detector yunet find the right person, and a faceless photo is indexed as noface",
          "[models][yunet][e2e]") {
  test::TempDir dir;
  const fs::path photos = dir / "photos";
  fs::create_directories(photos);
  for (const char* name : {"obama.jpg", "biden.jpg"}) test::CopyTestImage(name, photos);
  cv::imwrite((photos / "wall.png").string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  const std::string corpus = (dir / "corpus").string();
  test::RunResult index = Run({"--corpus", corpus, "index", "--detector", "yunet", photos.string()});
  INFO(index.err);
  REQUIRE(index.exit_code == 0);
  test::RunResult info = Run({"--corpus", corpus, "info", "--json"});
  REQUIRE(info.exit_code == 0);
  test::Json counts = test::ParseJson(info.out);
  CHECK(counts["images_without_face"].num() == 1);
  CHECK(counts["faces"].num() == 2);

  for (const auto& [probe, person] : {std::pair{"obama2.jpg", "obama.jpg"}, std::pair{"obama3.jpg", "obama.jpg"}}) {
    INFO(probe);
    test::RunResult q = Run({"--corpus", corpus, "query", "--format", "json", "--detector", "yunet",
                             test::TestImage(probe).string()});
    INFO(q.err);
    REQUIRE(q.exit_code == 0);
    test::Json doc = test::ParseJson(q.out);
    REQUIRE(doc["results"].size() == 1);
    const test::Json& matches = doc["results"][0]["matches"];
    REQUIRE(matches.size() == 1);  // Biden is no match
    CHECK(fs::path(matches[0]["image"].str()).filename() == person);
    CHECK(matches[0]["distance"].num() < 0.6);
  }
}

TEST_CASE("Without the YuNet model --detector yunet fails with the fetch-models.sh --with-opencv command, and verify checks an altered one",
          "[models][yunet][faces]") {
  test::TempDir dir;  // the dlib models, not YuNet's
  for (ModelId id : {ModelId::kResnet, ModelId::kShape5})
    fs::create_symlink(test::ModelsDir() / ModelFileName(id), dir / ModelFileName(id));
  test::RunResult r = Run({"faces", "--detector", "yunet", test::TestImage("obama.jpg").string()}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("face_detection_yunet_2023mar.onnx") && Catch::Contains("missing") &&
                        Catch::Contains("fetch-models.sh --with-opencv"));
  test::RunResult hog = Run({"faces", test::TestImage("obama.jpg").string()}, dir.path());
  CHECK(hog.exit_code == 0);

  // Absent, it is optional; present, verify holds it to its pin like the other models.
  const std::string corpus = (dir / "corpus").string();
  REQUIRE(Run({"--corpus", corpus, "index", test::TestImage("obama.jpg").string()}, dir.path()).exit_code == 0);
  CHECK(Run({"--corpus", corpus, "verify"}, dir.path()).exit_code == 0);
  const fs::path altered = dir / ModelFileName(ModelId::kYunet);
  fs::copy_file(test::ModelsDir() / ModelFileName(ModelId::kYunet), altered);
  fs::resize_file(altered, fs::file_size(altered) - 1);
  test::RunResult verify = Run({"--corpus", corpus, "verify"}, dir.path());
  CHECK(verify.exit_code == 2);
  CHECK_THAT(verify.out + verify.err, Catch::Contains("face_detection_yunet_2023mar.onnx"));
}
