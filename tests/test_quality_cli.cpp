// Detector retry, --min-face, probe quality signals and the corpus embedding mode (issue #7), end
// to end: the real binary and models on test photos scaled or blurred here with OpenCV.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// obama.jpg's face is 268 px wide; scaled by 1/scale_down it is about 268/scale_down px.
std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Scaled(const TempDir& dir, const std::string& name, double scale_down) {
  cv::Mat img = cv::imread(TestImage("obama.jpg").string());
  cv::Mat small;
  cv::resize(img, small, cv::Size(), 1 / scale_down, 1 / scale_down, cv::INTER_AREA);
  fs::path p = dir / name;
  cv::imwrite(p.string(), small);
  return p.string();
}

std::string Blurred(const TempDir& dir) {
  cv::Mat img = cv::imread(TestImage("obama.jpg").string());
  cv::Mat blurred;
  cv::GaussianBlur(img, blurred, cv::Size(0, 0), 8);
  fs::path p = dir / "obama_blurred.jpg";
  cv::imwrite(p.string(), blurred);
  return p.string();
}

std::vector<std::string> Corpus(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), {"--corpus", (dir / name).string()});
  return args;
}

}  // namespace

TEST_CASE("a face too small for the default pass is found by the upsample retry, and not with --retry none",
          "[quality][e2e]") {
  TempDir dir;
  const std::string tiny = Scaled(dir, "obama_tiny.jpg", 12);  // face about 22 px
  RunResult none = RunWithModels({"faces", "--jsonl", "--retry", "none", tiny});
  INFO(none.err);
  CHECK(none.exit_code == 1);
  CHECK(none.out.empty());
  RunResult retried = RunWithModels({"faces", "--jsonl", "--retry", "upsample", tiny});
  INFO(retried.err);
  REQUIRE(retried.exit_code == 0);
  Json face = ParseJson(retried.out);
  CHECK(face["size"].num() < 30);
  CHECK(face["low_quality"].boolean());
}

TEST_CASE("a steeply tilted face missed by the default pass is found by the default threshold retry",
          "[quality][e2e]") {
  TempDir dir;
  cv::Mat img = cv::imread(TestImage("obama.jpg").string());
  cv::Mat tilted;
  cv::warpAffine(img, tilted, cv::getRotationMatrix2D(cv::Point2f(img.cols / 2.f, img.rows / 2.f), 50, 1.0),
                 img.size());
  const std::string path = (dir / "obama_tilted.jpg").string();
  cv::imwrite(path, tilted);
  RunResult none = RunWithModels({"faces", "--jsonl", "--retry", "none", path});
  CHECK(none.exit_code == 1);
  RunResult retried = RunWithModels({"faces", "--jsonl", path});
  INFO(retried.err);
  REQUIRE(retried.exit_code == 0);
  Json face = ParseJson(retried.out.substr(0, retried.out.find('\n')));
  CHECK(face["size"].num() > 200);
  CHECK(face["det_score"].num() < 0);
  CHECK(face["quality_issues"][0].str() == "weak_detection");
  // Same person as another photo of him, found only thanks to the retry.
  RunResult same = RunWithModels({"compare", "--json", path, TestImage("obama2.jpg").string()});
  INFO(same.err);
  CHECK(same.exit_code == 0);
}

TEST_CASE("A minimum face size (--min-face) drops small faces at ingest, from probes and from matches", "[quality][e2e]") {
  TempDir dir;
  fs::create_directories(dir / "photos");
  const std::string small = Scaled(dir, "photos/obama_small.jpg", 6);  // face about 44 px
  CopyTestImage("obama2.jpg", dir / "photos");

  RunResult faces = RunWithModels({"faces", "--jsonl", "--min-face", "60", small});
  CHECK(faces.exit_code == 1);
  RunResult kept = RunWithModels({"faces", "--jsonl", "--min-face", "40", small});
  CHECK(kept.exit_code == 0);

  RunResult filtered = RunWithModels(Corpus(dir, "filtered", {"index", "--json", "--min-face", "60", (dir / "photos").string()}));
  INFO(filtered.err);
  REQUIRE(filtered.exit_code == 0);
  Json summary = ParseJson(filtered.out);
  CHECK(summary["noface"].num() == 1);
  CHECK(summary["faces"].num() == 1);

  RunResult all = RunWithModels(Corpus(dir, "all", {"index", (dir / "photos").string()}));
  REQUIRE(all.exit_code == 0);
  RunResult both = RunWithModels(Corpus(dir, "all", {"query", "--format", "json", TestImage("obama.jpg").string()}));
  INFO(both.err);
  REQUIRE(both.exit_code == 0);
  CHECK(ParseJson(both.out)["results"][0]["matches"].size() == 2);
  RunResult big_only =
      RunWithModels(Corpus(dir, "all", {"query", "--format", "json", "--min-face", "60", TestImage("obama.jpg").string()}));
  REQUIRE(big_only.exit_code == 0);
  Json matches = ParseJson(big_only.out)["results"][0]["matches"];
  REQUIRE(matches.size() == 1);
  CHECK(matches[0]["image"].str().find("obama2.jpg") != std::string::npos);
  RunResult small_probe = RunWithModels(Corpus(dir, "all", {"query", "--min-face", "60", small}));
  CHECK(small_probe.exit_code == 1);
  CHECK(small_probe.err.find("no face") != std::string::npos);
}

TEST_CASE("query flags a small or blurred probe as low quality in json, jsonl and on stderr", "[quality][e2e]") {
  TempDir dir;
  CopyTestImage("obama2.jpg", dir.path());
  RunResult index = RunWithModels(Corpus(dir, "c", {"index", dir.path().string()}));
  REQUIRE(index.exit_code == 0);

  RunResult sharp = RunWithModels(Corpus(dir, "c", {"query", "--format", "json", TestImage("obama.jpg").string()}));
  REQUIRE(sharp.exit_code == 0);
  Json q = ParseJson(sharp.out)["results"][0]["quality"];
  CHECK_FALSE(q["low"].boolean());
  CHECK(q["size"].num() > 200);
  CHECK(q["det_score"].num() > 0);
  CHECK(q["issues"].size() == 0);

  const std::string small = Scaled(dir, "obama_small.jpg", 7);  // face about 44 px
  RunResult json = RunWithModels(Corpus(dir, "c", {"query", "--format", "json", small}));
  INFO(json.err);
  REQUIRE(json.exit_code == 0);
  Json sq = ParseJson(json.out)["results"][0]["quality"];
  CHECK(sq["low"].boolean());
  CHECK(sq["issues"][0].str() == "small");
  RunResult jsonl = RunWithModels(Corpus(dir, "c", {"query", "--format", "jsonl", small}));
  REQUIRE(jsonl.exit_code == 0);
  CHECK(ParseJson(jsonl.out)["probe_low_quality"].boolean());
  CHECK(jsonl.err.find("low-quality") == std::string::npos);
  RunResult table = RunWithModels(Corpus(dir, "c", {"query", small}));
  CHECK(table.err.find("low-quality probe") != std::string::npos);
  CHECK(table.err.find("small") != std::string::npos);
  CHECK(sharp.err.find("low-quality") == std::string::npos);
  // The HTML report says so beside the probe face, and only for the low-quality probe.
  const std::string html = (dir.path() / "report.html").string();
  REQUIRE(RunWithModels(Corpus(dir, "c", {"query", "--html", html, small})).exit_code == 0);
  CHECK(ReadFileText(html).find("Low-quality probe (small)") != std::string::npos);
  REQUIRE(RunWithModels(Corpus(dir, "c", {"query", "--html", html, TestImage("obama.jpg").string()})).exit_code == 0);
  CHECK(ReadFileText(html).find("Low-quality probe") == std::string::npos);

  RunResult blurred = RunWithModels(Corpus(dir, "c", {"query", "--format", "json", Blurred(dir)}));
  INFO(blurred.err);
  REQUIRE(blurred.exit_code <= 1);
  Json bq = ParseJson(blurred.out)["results"][0]["quality"];
  CHECK(bq["low"].boolean());
  CHECK(bq["issues"][0].str() == "blurry");
  CHECK(bq["sharpness"].num() < q["sharpness"].num() / 4);
}

TEST_CASE("a corpus keeps its first embedding mode and refuses another at index and query", "[quality][e2e]") {
  TempDir dir;
  CopyTestImage("obama2.jpg", dir.path());
  RunResult flip = RunWithModels(Corpus(dir, "flip", {"index", "--embedding", "flip", dir.path().string()}));
  INFO(flip.err);
  REQUIRE(flip.exit_code == 0);
  RunResult plain = RunWithModels(Corpus(dir, "plain", {"index", dir.path().string()}));
  REQUIRE(plain.exit_code == 0);
  CHECK(ParseJson(RunWithModels(Corpus(dir, "flip", {"info", "--json"})).out)["embedding_mode"].str() == "flip");
  CHECK(ParseJson(RunWithModels(Corpus(dir, "plain", {"info", "--json"})).out)["embedding_mode"].str() == "plain");

  // The query embeds the probe the corpus's way without being told: a photo finds itself at ~0.
  RunResult self = RunWithModels(Corpus(dir, "flip", {"query", "--format", "json", (dir / "obama2.jpg").string()}));
  REQUIRE(self.exit_code == 0);
  CHECK(ParseJson(self.out)["results"][0]["matches"][0]["distance"].num() < 1e-4);

  RunResult mixed_query =
      RunWithModels(Corpus(dir, "flip", {"query", "--embedding", "plain", (dir / "obama2.jpg").string()}));
  CHECK(mixed_query.exit_code == 2);
  CHECK(mixed_query.err.find("'flip' embeddings") != std::string::npos);
  CopyTestImage("obama.jpg", dir / "more");
  RunResult mixed_index = RunWithModels(Corpus(dir, "plain", {"index", "--embedding", "flip", (dir / "more").string()}));
  CHECK(mixed_index.exit_code == 2);
  CHECK(mixed_index.err.find("'plain' embeddings") != std::string::npos);
  RunResult bad = RunWithModels(Corpus(dir, "x", {"index", "--embedding", "jitter:1", (dir / "more").string()}));
  CHECK(bad.exit_code != 0);

  // Flip averaging moves an embedding a little, not across identities.
  auto first_embedding = [&](const std::string& corpus) {
    RunResult e = RunWithModels(Corpus(dir, corpus, {"export"}));
    REQUIRE(e.exit_code == 0);
    Json row = ParseJson(e.out.substr(0, e.out.find('\n')));
    std::vector<double> v;
    for (size_t i = 0; i < row["embedding"].size(); ++i) v.push_back(row["embedding"][i].num());
    return v;
  };
  std::vector<double> a = first_embedding("flip"), b = first_embedding("plain");
  REQUIRE(a.size() == 128);
  REQUIRE(b.size() == 128);
  double d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (a[i] - b[i]) * (a[i] - b[i]);
  CHECK(std::sqrt(d2) > 1e-3);
  CHECK(std::sqrt(d2) < 0.2);
}

TEST_CASE("A corpus indexed with 68-point alignment records plain+lm68 and embeds probes that way",
          "[quality][e2e]") {
  TempDir dir;
  CopyTestImage("obama2.jpg", dir.path());
  RunResult index = RunWithModels(Corpus(dir, "c", {"index", "--embedding", "plain+lm68", dir.path().string()}));
  INFO(index.err);
  REQUIRE(index.exit_code == 0);
  CHECK(ParseJson(RunWithModels(Corpus(dir, "c", {"info", "--json"})).out)["embedding_mode"].str() == "plain+lm68");
  // Without --embedding the probe is aligned the corpus's way: the photo finds itself at ~0.
  RunResult self = RunWithModels(Corpus(dir, "c", {"query", "--format", "json", (dir / "obama2.jpg").string()}));
  REQUIRE(self.exit_code == 0);
  CHECK(ParseJson(self.out)["results"][0]["matches"][0]["distance"].num() < 1e-4);
  RunResult five = RunWithModels(Corpus(dir, "c", {"query", "--embedding", "plain", (dir / "obama2.jpg").string()}));
  CHECK(five.exit_code == 2);
  CHECK(five.err.find("'plain+lm68' embeddings") != std::string::npos);
  RunResult bad = RunWithModels(Corpus(dir, "x", {"index", "--embedding", "plain+lm5", dir.path().string()}));
  CHECK(bad.exit_code == 2);
}
