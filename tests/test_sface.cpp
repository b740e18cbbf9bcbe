// The SFace model (--model sface, issue #17): its embeddings through the analyzer, a corpus that
// keeps one model, and an sface corpus end to end with the real binary and the pinned models.
#include <catch2/catch.hpp>

#include <cmath>

#include "common/fs.h"
#include "engine/corpus.h"
#include "face/analyzer.h"
#include "face/models.h"
#include "facesearch/cluster.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

RgbImage Load(const std::string& name) { return test::DecodeTestImage(name); }

Face OnlyFace(FaceAnalyzer& analyzer, const std::string& name) {
  auto faces = analyzer.Analyze(Load(name));
  REQUIRE(faces);
  REQUIRE(faces->size() == 1);
  return faces->front();
}

struct SfaceCorpus : test::CorpusDir {
  test::Json Json(std::vector<std::string> rest) const {
    test::RunResult r = Run(std::move(rest));
    INFO(r.err);
    REQUIRE(r.exit_code <= 1);
    return test::ParseJson(r.out);
  }
  std::string Photo(const char* name) const { return (photos / name).string(); }
};

}  // namespace

TEST_CASE("sface is a mode of its own model: asked for in a dlib corpus it is refused as a model switch",
          "[sface]") {
  const EmbeddingMode sface{.model = EmbeddingModel::kSface};
  auto parsed = ParseEmbeddingMode("sface");
  REQUIRE(parsed);
  CHECK(*parsed == sface);
  CHECK(EmbeddingModeName(sface) == "sface");
  CHECK(ModelIdentity(EmbeddingModel::kSface) != ModelIdentity(EmbeddingModel::kDlib));

  PipelineOptions by_model;
  by_model.model = EmbeddingModel::kSface;
  CHECK(*ResolveEmbeddingMode(sface, by_model) == sface);
  CHECK(*ResolveEmbeddingMode(sface, PipelineOptions{}) == sface);  // unset: the corpus's
  auto in_dlib = ResolveEmbeddingMode(std::nullopt, by_model);
  REQUIRE_FALSE(in_dlib);
  CHECK(in_dlib.error().code == ErrorCode::kMismatch);
  CHECK(in_dlib.error().message.find("new corpus") != std::string::npos);
  PipelineOptions dlib;
  dlib.model = EmbeddingModel::kDlib;
  CHECK(ResolveEmbeddingMode(sface, dlib).error().code == ErrorCode::kMismatch);
  // --model sface with a dlib mode contradicts itself.
  by_model.embedding = EmbeddingMode{.flip = true};
  CHECK(RequestedEmbeddingMode(by_model).error().code == ErrorCode::kInvalidArgument);
  CHECK(SamePersonDistance(EmbeddingModel::kSface) == Approx(std::sqrt(2 - 2 * 0.363)).epsilon(1e-4));
}

TEST_CASE("SFace embeddings are unit length and put Obama's photos within its threshold and Biden beyond",
          "[analyzer][models][sface]") {
  AnalyzerOptions options;
  options.detector = DetectorKind::kYunet;
  options.embedding.model = EmbeddingModel::kSface;
  auto analyzer = LoadDlibAnalyzer(test::ModelsDir(), options);
  if (!analyzer) FAIL(analyzer.error().message);
  Face obama = OnlyFace(**analyzer, "obama.jpg");
  Face obama2 = OnlyFace(**analyzer, "obama2.jpg");
  Face biden = OnlyFace(**analyzer, "biden.jpg");
  double norm = 0;
  for (float v : obama.embedding) norm += static_cast<double>(v) * v;
  CHECK(std::sqrt(norm) == Approx(1.0).margin(1e-5));
  CHECK(EmbeddingDistance(obama.embedding, obama2.embedding) < kSfaceSamePersonDistance);
  CHECK(EmbeddingDistance(obama.embedding, biden.embedding) > kSfaceSamePersonDistance);
  // The landmarks are YuNet's (right eye first, on the viewer's left), inside the box.
  CHECK(obama.landmarks[0].x < obama.landmarks[1].x);
  CHECK(obama.landmarks[2].y > obama.landmarks[0].y);
  for (const Point& p : obama.landmarks) {
    CHECK((p.x > obama.box.x && p.x < obama.box.x + obama.box.w));
    CHECK((p.y > obama.box.y && p.y < obama.box.y + obama.box.h));
  }
  // The chip is SFace's 112x112 crop, and a bare box cannot be embedded (no landmarks to align).
  auto chip = (*analyzer)->Chip(Load("obama.jpg"), obama);
  REQUIRE(chip);
  CHECK(chip->width == 112);
  CHECK((*analyzer)->AnalyzeBoxes(Load("obama.jpg"), {obama.box}).error().code == ErrorCode::kInvalidArgument);
}

TEST_CASE("A corpus keeps one model: another is refused at index and query, and the error says to re-index",
          "[e2e][models][sface]") {
  SfaceCorpus c;
  c.Index({"obama2.jpg"});  // dlib, the default
  test::CopyTestImage("obama.jpg", c.dir / "more");
  test::RunResult index = c.Run({"index", "--model", "sface", (c.dir / "more").string()});
  CHECK(index.exit_code == 2);
  CHECK(index.err.find("dlib model") != std::string::npos);
  CHECK(index.err.find("indexing the photos again into a new corpus") != std::string::npos);
  test::RunResult query = c.Run({"query", "--model", "sface", test::TestImage("obama.jpg").string()});
  CHECK(query.exit_code == 2);
  CHECK(query.err.find("a corpus has one model") != std::string::npos);
  // --model and --embedding cannot both be given; --model dlib is the corpus's own.
  CHECK(c.Run({"query", "--model", "dlib", "--embedding", "flip", c.Photo("obama2.jpg")}).exit_code == 2);
  CHECK(c.Run({"query", "--model", "dlib", c.Photo("obama2.jpg")}).exit_code == 0);
  CHECK(c.Json({"info", "--json"})["model"].str() == "dlib");
}

TEST_CASE("An sface corpus end to end: index, info, query, compare, reindex int8 and ivfpq, cluster, forget, verify",
          "[e2e][models][sface]") {
  SfaceCorpus c;
  for (const char* name : {"obama.jpg", "obama2.jpg", "biden.jpg"}) test::CopyTestImage(name, c.photos);
  test::RunResult index = c.Run({"index", "--model", "sface", c.photos.string()});
  INFO(index.err);
  REQUIRE(index.exit_code == 0);
  test::Json info = c.Json({"info", "--json"});
  CHECK(info["model"].str() == "sface");
  CHECK(info["embedding_mode"].str() == "sface");
  CHECK(info["model_identity"].str().rfind("sface_2021dec@", 0) == 0);
  CHECK(info["faces"].num() == 3);

  // Without --model: the corpus's model embeds the probe; its calibration and threshold rate it.
  const std::string probe = test::TestImage("obama3.jpg").string();
  auto query = [&] { return c.Json({"query", "--format", "json", probe}); };
  test::Json q = query();
  CHECK(q["model"].str() == "sface");
  CHECK(q["calibration"]["mode"].str() == "sface");
  CHECK(q["calibration"]["exact"].boolean());
  CHECK(q["threshold"].num() == Approx(kSfaceSamePersonDistance));
  const test::Json& matches = q["results"][0]["matches"];
  REQUIRE(matches.size() == 2);  // both Obama photos, not Biden
  for (size_t i = 0; i < matches.size(); ++i) CHECK(matches[i]["image"].str().find("obama") != std::string::npos);
  const double best = matches[0]["distance"].num();
  CHECK(matches[0]["fmr"].num() < 1e-3);

  test::Json same = c.Json({"compare", "--model", "sface", "--json", c.Photo("obama.jpg"), c.Photo("obama2.jpg")});
  CHECK(same["same"].boolean());
  CHECK(same["model"].str() == "sface");
  CHECK(c.Run({"compare", "--model", "sface", c.Photo("obama.jpg"), c.Photo("biden.jpg")}).exit_code == 1);

  // The unit vectors go through the int8 codes and IVF-PQ (exact below its training size) alike.
  for (const char* kind : {"int8", "ivfpq"}) {
    INFO(kind);
    REQUIRE(c.Run({"reindex", "--index", kind}).exit_code == 0);
    test::Json again = query();
    REQUIRE(again["results"][0]["matches"].size() == 2);
    CHECK(again["results"][0]["matches"][0]["distance"].num() == Approx(best).margin(1e-3));
  }

  // cluster links at SFace's own default distance: the two Obama photos, not Biden.
  test::Json clusters = c.Json({"cluster", "--format", "json"});
  CHECK(clusters["threshold"].num() == Approx(kSfaceClusterDistance));
  REQUIRE(clusters["clusters"].size() == 1);
  CHECK(clusters["clusters"][0]["size"].num() == 2);

  // forget --like uses SFace's threshold by default: Biden's face goes, Obama's stay.
  test::RunResult forget = c.Run({"forget", "--like", test::TestImage("biden.jpg").string()});
  INFO(forget.err);
  REQUIRE(forget.exit_code == 0);
  CHECK(c.Json({"info", "--json"})["faces"].num() == 2);
  CHECK(c.Run({"verify"}).exit_code == 0);
}
