// `facesearch compare` and `facesearch faces` end to end: the real binary, models and photos.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

std::string Blank(const TempDir& dir) {
  fs::path p = dir / "wall.png";
  cv::imwrite(p.string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  return p.string();
}

}  // namespace

TEST_CASE("compare says same person for two Obama photos and exits 0", "[compare][e2e]") {
  RunResult r = RunWithModels({"compare", "--json", TestImage("obama.jpg").string(), TestImage("obama2.jpg").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json doc = ParseJson(r.out);
  CHECK(doc["same"].boolean());
  CHECK(doc["distance"].num() < 0.6);
  CHECK(doc["fmr"].num() < 1e-3);
  CHECK(doc["a"]["faces_detected"].num() == 1);
  CHECK(doc["b"]["box"]["w"].num() > 0);
}

TEST_CASE("compare says different people for Obama and Biden and exits 1", "[compare][e2e]") {
  RunResult r = RunWithModels({"compare", TestImage("obama.jpg").string(), TestImage("biden.jpg").string()});
  CHECK(r.exit_code == 1);
  CHECK(r.out.rfind("different people: distance ", 0) == 0);
}

TEST_CASE("compare with a faceless photo exits 1 with no distance, and a missing --face exits 2", "[compare][e2e]") {
  TempDir dir;
  RunResult none = RunWithModels({"compare", "--json", TestImage("obama.jpg").string(), Blank(dir)});
  CHECK(none.exit_code == 1);
  CHECK(ParseJson(none.out)["distance"].is_null());
  CHECK(none.err.find("no face") != std::string::npos);

  RunResult bad = RunWithModels({"compare", "--face-a", "3", TestImage("obama.jpg").string(), TestImage("obama2.jpg").string()});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--face 3 does not exist") != std::string::npos);
}

TEST_CASE("compare reads one photo from stdin", "[compare][e2e]") {
  std::ifstream f(TestImage("obama2.jpg"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  RunResult r = RunWithModels({"compare", "--json", TestImage("obama.jpg").string(), "-"}, bytes);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJson(r.out)["b"]["path"].str() == "-");
}

TEST_CASE("faces lists each face with landmarks and writes private 150x150 chips", "[faces][e2e]") {
  TempDir dir;
  RunResult r = RunWithModels({"faces", "--jsonl", "--crop", (dir / "chips").string(), TestImage("obama.jpg").string(),
                     TestImage("biden.jpg").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<Json> faces = ParseJsonLines(r.out);
  REQUIRE(faces.size() == 2);
  for (const Json& f : faces) {
    CHECK(f["landmarks"].size() == 5);
    CHECK(f["size"].num() > 50);
    fs::path chip = f["chip"].str();
    cv::Mat m = cv::imread(chip.string());
    CHECK((m.cols == 150 && m.rows == 150));
    struct stat st {};
    REQUIRE(stat(chip.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("faces exits 1 when no image has a face and 2 when one cannot be read", "[faces][e2e]") {
  TempDir dir;
  CHECK(RunWithModels({"faces", Blank(dir)}).exit_code == 1);
  std::ofstream(dir / "bad.jpg") << "not an image";
  RunResult bad = RunWithModels({"faces", TestImage("obama.jpg").string(), (dir / "bad.jpg").string()});
  CHECK(bad.exit_code == 2);
  CHECK(bad.out.find("obama.jpg") != std::string::npos);  // the readable image was still reported
}

TEST_CASE("compare is recorded in the corpus audit log with both probes' SHA-256", "[compare][e2e]") {
  TempDir dir;
  const std::string corpus = (dir / "corpus").string();
  CopyTestImage("biden.jpg", dir / "photos");
  REQUIRE(RunWithModels({"--corpus", corpus, "index", (dir / "photos").string()}).exit_code == 0);
  RunResult r = RunWithModels({"--corpus", corpus, "--case", "C-7", "compare", TestImage("obama.jpg").string(),
                     TestImage("obama2.jpg").string()});
  REQUIRE(r.exit_code == 0);
  RunResult log = RunWithModels({"--corpus", corpus, "audit", "--format", "jsonl"});
  REQUIRE(log.exit_code == 0);
  std::vector<Json> records = ParseJsonLines(log.out);
  REQUIRE_FALSE(records.empty());
  const Json& last = records.back();
  CHECK(last["action"].str() == "compare");
  CHECK(last["case"].str() == "C-7");
  CHECK(RunWithModels({"--corpus", corpus, "audit", "verify"}).exit_code == 0);
}

TEST_CASE("faces --crop refuses a directory other users can write and never writes through a link",
          "[hostile][faces][e2e]") {
  TempDir dir;
  const fs::path shared = dir / "shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::all);
  RunResult refused = RunWithModels({"faces", "--crop", shared.string(), TestImage("obama.jpg").string()});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("other users") != std::string::npos);
  CHECK(fs::is_empty(shared));
  CHECK(fs::status(shared).permissions() == fs::perms::all);  // not silently chmod-ed

  const fs::path chips = dir / "chips";
  fs::create_directories(chips);
  fs::permissions(chips, fs::perms::owner_all);
  { std::ofstream(dir / "victim.txt") << "keep me"; }
  fs::create_symlink(dir / "victim.txt", chips / "obama_face0.png");
  RunResult link = RunWithModels({"faces", "--crop", chips.string(), TestImage("obama.jpg").string()});
  CHECK(link.exit_code == 2);
  CHECK(fs::is_symlink(chips / "obama_face0.png"));
  std::ifstream victim(dir / "victim.txt");
  CHECK(std::string((std::istreambuf_iterator<char>(victim)), {}) == "keep me");
}
