// The dlib pipeline with the real pinned models on real photos.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "face/analyzer.h"
#include "face/hog_detector.h"
#include "face/models.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

RgbImage Load(const std::string& name) { return test::DecodeTestImage(name); }

std::unique_ptr<FaceAnalyzer> Analyzer(AnalyzerOptions options = {}) {
  auto a = LoadDlibAnalyzer(test::ModelsDir(), options);
  if (!a) FAIL(a.error().message);
  return std::move(*a);
}

Face OnlyFace(FaceAnalyzer& analyzer, const std::string& name) {
  auto faces = analyzer.Analyze(Load(name));
  REQUIRE(faces);
  REQUIRE(faces->size() == 1);
  return faces->front();
}

}  // namespace

TEST_CASE("Embeddings put two photos of Obama within 0.6 and Obama and Biden beyond it", "[analyzer][models]") {
  auto analyzer = Analyzer();
  Face obama = OnlyFace(*analyzer, "obama.jpg");
  Face obama2 = OnlyFace(*analyzer, "obama2.jpg");
  Face biden = OnlyFace(*analyzer, "biden.jpg");
  CHECK(EmbeddingDistance(obama.embedding, obama2.embedding) < 0.6f);
  CHECK(EmbeddingDistance(obama.embedding, biden.embedding) > 0.6f);
  CHECK(EmbeddingDistance(obama2.embedding, biden.embedding) > 0.6f);

  // Landmarks lie inside (or on the edge of) the detected box, and the box has a sane size.
  CHECK(obama.box.w > 50);
  for (const Point& p : obama.landmarks) {
    CHECK(p.x >= obama.box.x - obama.box.w / 4);
    CHECK(p.x <= obama.box.x + obama.box.w + obama.box.w / 4);
    CHECK(p.y >= obama.box.y - obama.box.h / 4);
    CHECK(p.y <= obama.box.y + obama.box.h + obama.box.h / 4);
  }
}

TEST_CASE("A cloned analyzer computes bit-identical embeddings", "[analyzer][models]") {
  auto analyzer = Analyzer();
  auto clone = analyzer->Clone();
  Face a = OnlyFace(*analyzer, "obama2.jpg");
  Face b = OnlyFace(*clone, "obama2.jpg");
  CHECK(a.embedding == b.embedding);
  CHECK((a.box.x == b.box.x && a.box.y == b.box.y && a.box.w == b.box.w));
}

TEST_CASE("An image without a face yields no faces and no error", "[analyzer][models]") {
  auto analyzer = Analyzer();
  RgbImage blank{200, 160, std::vector<uint8_t>(200 * 160 * 3, 128)};
  auto faces = analyzer->Analyze(blank);
  REQUIRE(faces);
  CHECK(faces->empty());
}

TEST_CASE("The CNN detector finds the same face as HOG", "[analyzer][models]") {
  auto hog = Analyzer();
  AnalyzerOptions cnn_options;
  cnn_options.detector = DetectorKind::kCnn;
  cnn_options.upsample = 0;
  auto cnn = Analyzer(cnn_options);
  Face h = OnlyFace(*hog, "obama2.jpg");
  Face c = OnlyFace(*cnn, "obama2.jpg");
  // Centres agree within a quarter of the box size, and the embeddings agree on identity.
  CHECK(std::abs((h.box.x + h.box.w / 2) - (c.box.x + c.box.w / 2)) < h.box.w / 4);
  CHECK(std::abs((h.box.y + h.box.h / 2) - (c.box.y + c.box.h / 2)) < h.box.h / 4);
  CHECK(EmbeddingDistance(h.embedding, c.embedding) < 0.3f);
}

TEST_CASE("A missing or altered model file is refused with the command that fixes it", "[analyzer][models]") {
  test::TempDir dir;
  auto missing = LoadDlibAnalyzer(dir.path(), AnalyzerOptions{});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kModel);
  CHECK_THAT(missing.error().message, Catch::Contains("missing") && Catch::Contains("fetch-models.sh"));

  for (ModelId id : {ModelId::kShape5, ModelId::kResnet})
    fs::copy_file(test::ModelsDir() / ModelFileName(id), dir / ModelFileName(id));
  {
    std::fstream f(dir / ModelFileName(ModelId::kResnet), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(1000);
    char c = static_cast<char>(f.get());
    f.seekp(1000);
    f.put(static_cast<char>(c ^ 0xFF));
  }
  auto altered = LoadDlibAnalyzer(dir.path(), AnalyzerOptions{});
  REQUIRE_FALSE(altered);
  CHECK(altered.error().code == ErrorCode::kModel);
  CHECK_THAT(altered.error().message, Catch::Contains("expected") && Catch::Contains(ModelSha256(ModelId::kResnet)));
}

TEST_CASE("AnalyzeBoxes at the detected box reproduces Analyze's landmarks and embedding", "[analyzer][models]") {
  auto analyzer = Analyzer();
  RgbImage image = Load("obama2.jpg");
  Face detected = OnlyFace(*analyzer, "obama2.jpg");
  auto again = analyzer->AnalyzeBoxes(image, {detected.box});
  REQUIRE(again);
  REQUIRE(again->size() == 1);
  CHECK(again->front().embedding == detected.embedding);
  CHECK(again->front().landmarks == detected.landmarks);
}

TEST_CASE("68-point alignment changes the embedding a little and keeps identities apart", "[analyzer][models]") {
  AnalyzerOptions lm68;
  lm68.embedding.alignment = Alignment::k68;
  auto a68 = Analyzer(lm68);
  auto a5 = Analyzer();
  Face obama = OnlyFace(*a68, "obama.jpg");
  Face obama2 = OnlyFace(*a68, "obama2.jpg");
  Face biden = OnlyFace(*a68, "biden.jpg");
  CHECK(EmbeddingDistance(obama.embedding, obama2.embedding) < 0.6f);
  CHECK(EmbeddingDistance(obama.embedding, biden.embedding) > 0.6f);
  // Same detection, another aligner: a different vector of the same person.
  Face obama5 = OnlyFace(*a5, "obama.jpg");
  CHECK((obama.box.x == obama5.box.x && obama.box.w == obama5.box.w));
  const float moved = EmbeddingDistance(obama.embedding, obama5.embedding);
  CHECK(moved > 1e-3f);
  CHECK(moved < 0.3f);
  // The stored landmarks are the 68-point model's eye corners and nose base, in the 5-point
  // model's order: each lies within a few pixels of the 5-point model's own.
  for (size_t k = 0; k < obama.landmarks.size(); ++k) {
    INFO("landmark " << k);
    CHECK(std::hypot(obama.landmarks[k].x - obama5.landmarks[k].x, obama.landmarks[k].y - obama5.landmarks[k].y) <
          obama.box.w / 10.0);
  }
}

TEST_CASE("Both alignments give the mean of the 5-point and the 68-point descriptors", "[analyzer][models]") {
  AnalyzerOptions o68, both;
  o68.embedding.alignment = Alignment::k68;
  both.embedding.alignment = Alignment::kBoth;
  Face f5 = OnlyFace(*Analyzer(), "obama2.jpg");
  Face f68 = OnlyFace(*Analyzer(o68), "obama2.jpg");
  Face fb = OnlyFace(*Analyzer(both), "obama2.jpg");
  for (int k = 0; k < kEmbeddingDim; ++k) CHECK(fb.embedding[k] == Approx((f5.embedding[k] + f68.embedding[k]) / 2).margin(1e-4));
  CHECK(fb.landmarks == f5.landmarks);  // the stored landmarks stay the 5-point model's
}

TEST_CASE("A missing 68-point model is refused with the fetch-models.sh --with-68 hint", "[analyzer][models]") {
  test::TempDir dir;
  AnalyzerOptions o68;
  o68.embedding.alignment = Alignment::k68;
  auto missing = LoadDlibAnalyzer(dir.path(), o68);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kModel);
  CHECK_THAT(missing.error().message, Catch::Contains("shape_predictor_68_face_landmarks.dat") &&
                                          Catch::Contains("fetch-models.sh --with-68"));
}

namespace {

double IoU(const Box& a, const Box& b) {
  const double x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const double x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  const double inter = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
  return inter / (static_cast<double>(a.w) * a.h + static_cast<double>(b.w) * b.h - inter);
}

// obama.jpg, obama2.jpg and biden.jpg side by side, each scaled to 500 px high: three faces.
RgbImage ThreeFaces() {
  std::vector<RgbImage> parts;
  for (const char* name : {"obama.jpg", "obama2.jpg", "biden.jpg"}) {
    RgbImage img = Load(name);
    const int side = std::max(img.width, img.height);
    parts.push_back(ResizeToMaxSide(img, side * 500 / img.height));
  }
  RgbImage out;
  out.height = 500;
  for (const auto& p : parts) out.width += p.width;
  out.pixels.assign(static_cast<size_t>(out.width) * out.height * 3, 0);
  int x0 = 0;
  for (const auto& p : parts) {
    for (int y = 0; y < std::min(p.height, out.height); ++y)
      std::copy_n(p.pixels.begin() + static_cast<ptrdiff_t>(y) * p.width * 3, p.width * 3,
                  out.pixels.begin() + (static_cast<ptrdiff_t>(y) * out.width + x0) * 3);
    x0 += p.width;
  }
  return out;
}

}  // namespace

TEST_CASE("Detection on a reduced copy maps the box back onto the full-size face", "[analyzer][models]") {
  RgbImage img = Load("obama.jpg");  // 910x1137
  REQUIRE(std::max(img.width, img.height) > 600);
  auto full = Analyzer();
  AnalyzerOptions reduced_options;
  reduced_options.detect_max_side = 600;
  auto reduced = Analyzer(reduced_options);
  auto a = full->Analyze(img);
  auto b = reduced->Analyze(img);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a->size() == 1);
  REQUIRE(b->size() == 1);
  const Box& fa = a->front().box;
  const Box& fb = b->front().box;
  INFO("full " << fa.x << "," << fa.y << " " << fa.w << "x" << fa.h << "; reduced " << fb.x << ","
               << fb.y << " " << fb.w << "x" << fb.h);
  CHECK(IoU(fa, fb) >= 0.8);
  // Landmarks and the embedding come from the full image: the same person, nearly the same vector.
  CHECK(EmbeddingDistance(a->front().embedding, b->front().embedding) < 0.2f);
  // The detector's time is counted, and the other stages too.
  CHECK(reduced->Seconds().detect > 0);
  CHECK(reduced->Seconds().embed > 0);
  CHECK(reduced->Seconds().landmarks > 0);
  // An image already within the limit is analysed exactly as at full size.
  RgbImage small = ResizeToMaxSide(img, 600);
  auto c = full->Analyze(small);
  auto d = reduced->Analyze(small);
  REQUIRE(c);
  REQUIRE(d);
  REQUIRE(c->size() == d->size());
  for (size_t i = 0; i < c->size(); ++i) CHECK((*c)[i].embedding == (*d)[i].embedding);
}

TEST_CASE("Embedding faces in one batch gives the descriptors of one face at a time within 1e-5", "[analyzer][models]") {
  RgbImage img = ThreeFaces();
  AnalyzerOptions single_options;
  single_options.embed_batch = 1;
  auto single = Analyzer(single_options);
  auto batched = Analyzer();  // batches of 16
  auto a = single->Analyze(img);
  auto b = batched->Analyze(img);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a->size() == 3);
  REQUIRE(b->size() == 3);
  for (size_t i = 0; i < a->size(); ++i) {
    INFO("face " << i);
    CHECK(EmbeddingDistance((*a)[i].embedding, (*b)[i].embedding) <= 1e-5f);
  }
}

// Not a test: a measurement, run by hand (hidden from ctest):
//   build/tests/facesearch_tests '[.embed-batch-timing]' -s
// It embeds the 9 faces of three stacked ThreeFaces() images with batches of 1 and of 16 chips
// and prints the ResNet's CPU seconds for each; docs/benchmarks.md has the figures.
TEST_CASE("Embedding batch size timing", "[.embed-batch-timing]") {
  RgbImage three = ThreeFaces();
  RgbImage nine{three.width, three.height * 3, {}};
  for (int i = 0; i < 3; ++i) nine.pixels.insert(nine.pixels.end(), three.pixels.begin(), three.pixels.end());
  for (int batch : {1, 16, 1, 16}) {
    AnalyzerOptions options;
    options.embed_batch = batch;
    auto analyzer = Analyzer(options);
    size_t faces = 0;
    for (int run = 0; run < 3; ++run) {
      auto found = analyzer->Analyze(nine);
      REQUIRE(found);
      faces += found->size();
    }
    const AnalyzerSeconds s = analyzer->Seconds();
    WARN("embed_batch " << batch << ": " << faces << " faces embedded in " << s.embed_cpu << " s CPU ("
                        << s.embed << " s wall), " << s.embed_cpu / faces * 1000 << " ms CPU per face");
  }
}

TEST_CASE("The HOG detector embedded at build time is byte for byte dlib's frontal face detector", "[analyzer]") {
  std::ostringstream ours, dlibs;
  dlib::serialize(LoadFrontalFaceDetector(), ours);
  dlib::serialize(dlib::get_frontal_face_detector(), dlibs);
  CHECK(ours.str().size() == dlibs.str().size());
  CHECK(ours.str() == dlibs.str());
  // Each call hands out its own copy (worker threads never share a detector).
  dlib::frontal_face_detector a = LoadFrontalFaceDetector(), b = LoadFrontalFaceDetector();
  CHECK(&a != &b);
  CHECK(a.num_detectors() == b.num_detectors());
}
