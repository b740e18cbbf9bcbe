// Calibration lookups, and `facesearch eval` end to end on a miniature LFW built from real photos.
#include <catch2/catch.hpp>
#include <fstream>

#include "common/sha256.h"
#include "face/models.h"
#include "facesearch/eval.h"
#include "json.h"
#include "store/store.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {
EmbeddingMode Mode(const std::string& name) {
  auto m = ParseEmbeddingMode(name);
  REQUIRE(m);
  return *m;
}

// facesearch on the corpus DIR/corpus with the test models.
test::RunResult RunOnCorpus(const test::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"--corpus", (dir / "corpus").string(), "--models", test::ModelsDir().string()});
  return test::RunFacesearch(args);
}
}  // namespace

TEST_CASE("Each shipped calibration is monotonic: FMR rises and FNMR falls with distance", "[eval]") {
  for (const char* name : {"plain", "flip", "sface"}) {
    INFO(name);
    const Calibration cal = Calibration::For(Mode(name));
    CHECK(cal.exact());
    CHECK(cal.mode() == name);
    double last_fmr = -1, last_fnmr = 2;
    for (float d = 0; d <= 2.0f; d += 0.005f) {
      double fmr = cal.Fmr(d), fnmr = cal.Fnmr(d);
      CHECK(fmr >= last_fmr);
      CHECK(fnmr <= last_fnmr);
      CHECK((fmr >= 0 && fmr <= 1 && fnmr >= 0 && fnmr <= 1));
      last_fmr = fmr;
      last_fnmr = fnmr;
    }
    // Measured on LFW, not assumed: the model's same-person distance (dlib's 0.6, OpenCV's cosine
    // 0.363 for SFace) lies where both error rates are around 1%.
    const float same = cal.same_person_distance();
    CHECK(cal.Fmr(same) > 1e-4);
    CHECK(cal.Fmr(same) < 5e-2);
    CHECK(cal.Fnmr(same) < 5e-2);
  }
}

TEST_CASE("Averaging views pulls distances in so the flip table gives a distance a higher FMR than plain's", "[eval]") {
  const Calibration plain = Calibration::For(Mode("plain")), flip = Calibration::For(Mode("flip"));
  CHECK(plain.source() == "data/calibration.tsv");
  CHECK(flip.source() == "data/calibration-flip.tsv");
  for (float d : {0.4f, 0.45f, 0.5f, 0.55f}) {
    INFO(d);
    CHECK(flip.Fmr(d) > plain.Fmr(d));
  }
  CHECK(flip.ThresholdForFmr(1e-3) < plain.ThresholdForFmr(1e-3));
}

TEST_CASE("A mode without a measured calibration falls back to plain's table and says it is approximate", "[eval]") {
  for (const char* name : {"jitter:10", "plain+lm68", "flip+lm5+lm68"}) {
    INFO(name);
    const Calibration cal = Calibration::For(Mode(name));
    CHECK_FALSE(cal.exact());
    CHECK(cal.mode() == "plain");
    CHECK(cal.Fmr(0.5f) == Calibration::For(Mode("plain")).Fmr(0.5f));
  }
}

TEST_CASE("ThresholdForFmr returns the largest tabulated distance within the requested FMR", "[eval]") {
  for (const char* name : {"plain", "flip"}) {
    INFO(name);
    const Calibration cal = Calibration::For(Mode(name));
    for (double target : {1e-2, 1e-3, 1e-4}) {
      float t = cal.ThresholdForFmr(target);
      CHECK(t > 0.2f);
      CHECK(cal.Fmr(t) <= target);
      CHECK(cal.Fmr(t + 0.01f) > target);
    }
    CHECK(cal.ThresholdForFmr(1e-3) < cal.ThresholdForFmr(1e-2));
  }
}

TEST_CASE("The default threshold is 0.6 in a small corpus and shrinks with its size to keep about one expected stranger",
          "[eval]") {
  for (const char* name : {"plain", "flip"}) {
    INFO(name);
    const Calibration cal = Calibration::For(Mode(name));
    CHECK(cal.DefaultThreshold(0) == kDefaultThreshold);
    CHECK(cal.DefaultThreshold(100) == kDefaultThreshold);
    float previous = kDefaultThreshold;
    for (int64_t n : {int64_t{1000}, int64_t{10'000}, int64_t{1'000'000}, int64_t{10'000'000}, int64_t{1'000'000'000}}) {
      INFO(n << " faces");
      const float t = cal.DefaultThreshold(n);
      CHECK(t <= previous);
      CHECK(t > 0.f);
      // Where the table resolves it, FMR(t) x N is at most one stranger and the next step would exceed it.
      if (cal.Fmr(t) > 0) {
        CHECK(cal.Fmr(t) * static_cast<double>(n) <= kDefaultExpectedStrangers);
        CHECK(cal.Fmr(t + 0.011f) * static_cast<double>(n) > kDefaultExpectedStrangers);
      }
      previous = t;
    }
    CHECK(cal.DefaultThreshold(1000) < kDefaultThreshold);  // FMR(0.6) x 1,000 is about 6 strangers
  }
}

TEST_CASE("Confidence bands follow the documented FMR boundaries", "[eval]") {
  CHECK(std::string(ConfidenceBand(1e-6)) == "very strong");
  CHECK(std::string(ConfidenceBand(1e-5)) == "very strong");
  CHECK(std::string(ConfidenceBand(5e-5)) == "strong");
  CHECK(std::string(ConfidenceBand(5e-4)) == "moderate");
  CHECK(std::string(ConfidenceBand(5e-3)) == "weak");
  CHECK(std::string(ConfidenceBand(0.2)) == "very weak");
}

TEST_CASE("eval lfw scores a miniature LFW of real photos perfectly and counts a missing face", "[eval][e2e]") {
  test::TempDir dir;
  fs::path images = dir / "images";
  test::CopyTestImage("obama.jpg", images / "Barack_Obama", "Barack_Obama_0001.jpg");
  test::CopyTestImage("obama2.jpg", images / "Barack_Obama", "Barack_Obama_0002.jpg");
  test::CopyTestImage("biden.jpg", images / "Joe_Biden", "Joe_Biden_0001.jpg");
  {
    std::ofstream pairs(dir / "pairs.txt");
    pairs << "2\t1\nBarack_Obama\t1\t2\nBarack_Obama\t1\tJoe_Biden\t1\n"
          << "Barack_Obama\t2\t1\nJoe_Biden\t1\tBarack_Obama\t2\n";
  }
  std::vector<std::string> base = {"--corpus", (dir / "corpus").string(), "--models", test::ModelsDir().string()};
  auto run = [&](std::vector<std::string> rest) {
    std::vector<std::string> args = base;
    args.insert(args.end(), rest.begin(), rest.end());
    return test::RunFacesearch(args);
  };
  REQUIRE(run({"index", images.string()}).exit_code == 0);
  test::RunResult r = run({"eval", "lfw", "--images", images.string(), "--pairs", (dir / "pairs.txt").string(),
                           "--roc", (dir / "roc.csv").string(), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  test::Json doc = test::ParseJson(r.out);
  CHECK(doc["verification"]["pairs"].num() == 4);
  CHECK(doc["verification"]["pairs_missed"].num() == 0);
  CHECK(doc["verification"]["mean_accuracy"].num() == 1.0);
  CHECK(doc["identification"]["gallery"].num() == 2);  // Obama enrolled, Biden a distractor
  CHECK(doc["identification"]["rank1"].num() == 1.0);
  CHECK(fs::file_size(dir / "roc.csv") > 100);

  // A pairs file naming an image that is not in the corpus counts that pair as an error.
  {
    std::ofstream pairs(dir / "pairs2.txt");
    pairs << "1\t1\nBarack_Obama\t1\t3\nBarack_Obama\t1\tJoe_Biden\t1\n";
  }
  test::RunResult missing = run({"eval", "lfw", "--images", images.string(), "--pairs",
                                 (dir / "pairs2.txt").string(), "--json"});
  REQUIRE(missing.exit_code == 0);
  test::Json m = test::ParseJson(missing.out);
  CHECK(m["verification"]["pairs_missed"].num() == 1);
  CHECK(m["verification"]["mean_accuracy"].num() == 0.5);

  test::RunResult cal = run({"eval", "calibrate", "--images", images.string()});
  REQUIRE(cal.exit_code == 0);
  CHECK(cal.out.find("1 same-person pairs, 2 different-person pairs") != std::string::npos);
}

TEST_CASE("query --max-fmr derives its threshold from the calibration and excludes --threshold", "[eval][cli][e2e]") {
  test::TempDir dir;
  test::CopyTestImage("obama.jpg", dir / "photos");
  auto run = [&](std::vector<std::string> args) { return RunOnCorpus(dir, std::move(args)); };
  REQUIRE(run({"index", (dir / "photos").string()}).exit_code == 0);
  test::RunResult r = run({"query", "--max-fmr", "1e-3", "--format", "json", test::TestImage("obama2.jpg").string()});
  REQUIRE(r.exit_code <= 1);
  test::Json doc = test::ParseJson(r.out);
  const Calibration plain = Calibration::For(EmbeddingMode{});
  CHECK(doc["threshold"].num() == Approx(plain.ThresholdForFmr(1e-3)));
  CHECK(doc["threshold_fmr"].num() <= 1e-3);
  CHECK(doc["calibration"]["mode"].str() == "plain");
  CHECK(doc["calibration"]["exact"].boolean());
  CHECK(run({"query", "--max-fmr", "1e-3", "--threshold", "0.5", test::TestImage("obama2.jpg").string()}).exit_code == 2);
}

TEST_CASE("query on a flip corpus rates distances and --max-fmr with the flip calibration", "[eval][cli][e2e]") {
  test::TempDir dir;
  test::CopyTestImage("obama.jpg", dir / "photos");
  auto run = [&](std::vector<std::string> args) { return RunOnCorpus(dir, std::move(args)); };
  REQUIRE(run({"index", "--embedding", "flip", (dir / "photos").string()}).exit_code == 0);
  test::RunResult r = run({"query", "--max-fmr", "1e-3", "--format", "json", test::TestImage("obama2.jpg").string()});
  REQUIRE(r.exit_code == 0);
  test::Json doc = test::ParseJson(r.out);
  const Calibration flip = Calibration::For(*ParseEmbeddingMode("flip"));
  CHECK(doc["calibration"]["mode"].str() == "flip");
  CHECK(doc["calibration"]["exact"].boolean());
  CHECK(doc["threshold"].num() == Approx(flip.ThresholdForFmr(1e-3)));
  const test::Json& match = doc["results"][0]["matches"][0];
  CHECK(match["fmr"].num() == Approx(flip.Fmr(static_cast<float>(match["distance"].num()))).epsilon(0.05));
}

TEST_CASE("query on a jitter corpus warns that its false-match rates come from the plain table", "[eval][cli][e2e]") {
  test::TempDir dir;
  test::CopyTestImage("obama.jpg", dir / "photos");
  REQUIRE(RunOnCorpus(dir, {"index", "--embedding", "jitter:2", (dir / "photos").string()}).exit_code == 0);
  test::RunResult r = RunOnCorpus(dir, {"query", test::TestImage("obama2.jpg").string()});
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("no calibration was measured for 'jitter:2'") != std::string::npos);
  CHECK(r.out.find("approximate for this corpus's embedding mode") != std::string::npos);
}

TEST_CASE("compare --max-fmr derives its threshold from the calibration and excludes --threshold", "[eval][cli][e2e]") {
  test::TempDir dir;  // no corpus there: nothing is audited
  auto run = [&](std::vector<std::string> rest) {
    rest.insert(rest.begin(), {"--corpus", (dir / "none").string(), "--models", test::ModelsDir().string(), "compare"});
    return test::RunFacesearch(rest);
  };
  const std::string a = test::TestImage("obama.jpg").string(), b = test::TestImage("obama2.jpg").string(),
                    other = test::TestImage("biden.jpg").string();
  const Calibration plain = Calibration::For(EmbeddingMode{});
  test::RunResult same = run({"--json", "--max-fmr", "1e-3", a, b});
  REQUIRE(same.exit_code == 0);
  test::Json doc = test::ParseJson(same.out);
  CHECK(doc["threshold"].num() == Approx(plain.ThresholdForFmr(1e-3)));
  CHECK(doc["calibration"]["mode"].str() == "plain");
  CHECK(run({"--max-fmr", "1e-3", a, other}).exit_code == 1);
  CHECK(run({"--max-fmr", "1e-3", "--threshold", "0.5", a, b}).exit_code == 2);
}

TEST_CASE("query's default threshold follows the corpus size and says so, and --threshold keeps 0.6", "[eval][cli][e2e]") {
  test::TempDir dir;
  test::CopyTestImage("obama.jpg", dir / "photos");
  auto run = [&](std::vector<std::string> args) { return RunOnCorpus(dir, std::move(args)); };
  REQUIRE(run({"index", (dir / "photos").string()}).exit_code == 0);
  const std::string probe = test::TestImage("obama2.jpg").string();
  test::RunResult small = run({"query", "--format", "json", probe});
  REQUIRE(small.exit_code == 0);
  CHECK(test::ParseJson(small.out)["threshold"].num() == Approx(kDefaultThreshold));

  // Grow the corpus past 1,000 faces with faces far from any real one (the Store, as ingest writes).
  {
    auto store = Store::Open(dir / "corpus" / "corpus.sqlite", ModelIdentity()).value();
    std::vector<std::pair<ImageRecord, std::vector<Face>>> batch;
    for (int i = 0; i < 1500; ++i) {
      ImageRecord image;
      image.sha256 = Sha256Hex("far-" + std::to_string(i));
      image.path = "/elsewhere/" + std::to_string(i) + ".jpg";
      Face face;
      face.box = {0, 0, 100, 100};
      face.embedding.fill(0.f);
      face.embedding[static_cast<size_t>(i % kEmbeddingDim)] = 5.f + static_cast<float>(i / kEmbeddingDim);
      batch.push_back({image, {face}});
    }
    REQUIRE(store->AddImages(batch));
  }
  const Calibration plain = Calibration::For(EmbeddingMode{});
  test::RunResult large = run({"query", "--format", "json", probe});
  REQUIRE(large.exit_code == 0);  // Obama's own photo is still well within the lowered threshold
  test::Json doc = test::ParseJson(large.out);
  CHECK(doc["corpus_faces"].num() == 1501);
  CHECK(doc["threshold"].num() == Approx(plain.DefaultThreshold(1501)));
  CHECK(doc["threshold"].num() < kDefaultThreshold);
  CHECK(doc["expected_false_matches"].num() <= kDefaultExpectedStrangers);
  CHECK_THAT(large.err, Catch::Contains("instead of 0.60") && Catch::Contains("1501 faces"));

  test::RunResult fixed = run({"query", "--threshold", "0.6", "--format", "json", probe});
  REQUIRE(fixed.exit_code == 0);
  CHECK(test::ParseJson(fixed.out)["threshold"].num() == Approx(0.6));
  CHECK(fixed.err.find("instead of") == std::string::npos);
}
