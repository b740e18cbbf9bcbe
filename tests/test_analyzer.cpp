// The dlib pipeline with the real pinned models on real photos.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "common/fs.h"
#include "face/analyzer.h"
#include "face/models.h"
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
