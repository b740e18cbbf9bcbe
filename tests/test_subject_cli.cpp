// Subjects end to end: the real binary on the test photos and a real corpus. Life cycle with its
// audit trail, searching with a subject, co-appearance on a group photo made from two test
// photos, erasure of a subject's faces, opt-outs winning, and bad input changing nothing.
#include <catch2/catch.hpp>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// obama3.jpg and biden.jpg side by side, each 400 px high: two people in one photo.
void WriteGroupPhoto(const fs::path& path) {
  std::vector<cv::Mat> parts;
  for (const char* name : {"obama3.jpg", "biden.jpg"}) {
    cv::Mat img = cv::imread(TestImage(name).string());
    REQUIRE_FALSE(img.empty());
    cv::Mat scaled;
    cv::resize(img, scaled, cv::Size(img.cols * 400 / img.rows, 400), 0, 0, cv::INTER_AREA);
    parts.push_back(scaled);
  }
  cv::Mat group;
  cv::hconcat(parts, group);
  REQUIRE(cv::imwrite(path.string(), group));
}

// obama.jpg, obama2.jpg, biden.jpg and group.jpg (obama3 beside biden) indexed.
struct SubjectCorpus : CorpusDir {
  SubjectCorpus() {
    fs::create_directories(photos);
    WriteGroupPhoto(photos / "group.jpg");
    Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  }
  RunResult Must(std::vector<std::string> args) const {
    RunResult r = Run(std::move(args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r;
  }
  std::vector<Json> Audit() const { return ParseJsonLines(Must({"audit", "--format", "jsonl"}).out); }
  // Matching image file names, nearest first.
  std::vector<std::string> Images(const Json& result) const {
    std::vector<std::string> names;
    const Json& matches = result["results"][0]["matches"];
    for (size_t i = 0; i < matches.size(); ++i) names.push_back(fs::path(matches[i]["image"].str()).filename());
    return names;
  }
  // Face id by image file name (one face each), from one export.
  std::map<std::string, int64_t> FaceIds() const {
    std::map<std::string, int64_t> ids;
    for (const Json& line : ParseJsonLines(Must({"export"}).out))
      ids[fs::path(line["image"].str()).filename()] = static_cast<int64_t>(line["face_id"].num());
    return ids;
  }
};

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

TEST_CASE("A subject is added from a photo and a corpus face, searched with, told 'not this person', renamed and "
          "removed, each step audited",
          "[subject][e2e][models]") {
  SubjectCorpus c;
  const std::map<std::string, int64_t> ids = c.FaceIds();
  const int64_t obama_face = ids.at("obama.jpg");
  c.Must({"--case", "C-1", "subject", "add", "obama", "--photo", TestImage("obama3.jpg").string(), "--face-id",
          std::to_string(obama_face)});

  const Json shown = ParseJson(c.Must({"subject", "show", "obama", "--format", "json"}).out);
  REQUIRE(shown["references"].size() == 2);
  const Json& photo_ref = shown["references"][0];
  CHECK(photo_ref["source"].str() == TestImage("obama3.jpg").string());
  CHECK(photo_ref["face_id"].is_null());
  CHECK(photo_ref["case"].str() == "C-1");
  CHECK_FALSE(photo_ref["added_by"].str().empty());
  CHECK(shown["references"][1]["face_id"].num() == obama_face);
  CHECK(c.Must({"subject", "show", "obama", "--format", "json"}).out.find("embedding") == std::string::npos);

  const Json found =
      ParseJson(c.Must({"query", "--subject", "obama", "--format", "json", "--html", (c.dir / "r.html").string()}).out);
  const std::string html = ReadText(c.dir / "r.html");
  CHECK(html.find("Subject <b>obama</b>: 2 reference face(s)") != std::string::npos);
  CHECK(html.find("plain refs=2 table") != std::string::npos);
  CHECK(found["subject"].str() == "obama");
  CHECK(found["references"].num() == 2);
  CHECK(found["calibration"]["mode"].str() == "plain refs=2");
  const std::vector<std::string> images = c.Images(found);
  CHECK(Has(images, "obama.jpg"));
  CHECK(Has(images, "obama2.jpg"));
  CHECK(Has(images, "group.jpg"));
  CHECK_FALSE(Has(images, "biden.jpg"));

  c.Must({"--case", "C-1", "subject", "exclude", "obama", "--face-id", std::to_string(ids.at("obama2.jpg"))});
  const std::vector<std::string> after = c.Images(ParseJson(c.Must({"query", "--subject", "obama", "-f", "json"}).out));
  CHECK_FALSE(Has(after, "obama2.jpg"));
  CHECK(Has(after, "obama.jpg"));
  const Json marked = ParseJson(c.Must({"subject", "show", "obama", "--format", "json"}).out);
  REQUIRE(marked["not_this_person"].size() == 1);
  CHECK(marked["not_this_person"][0]["face_id"].num() == ids.at("obama2.jpg"));
  CHECK(marked["not_this_person"][0]["case"].str() == "C-1");
  RunResult own_reference = c.Run({"subject", "exclude", "obama", "--face-id", std::to_string(obama_face)});
  CHECK(own_reference.exit_code == 2);
  CHECK(own_reference.err.find("one of subject 'obama''s references") != std::string::npos);

  c.Must({"subject", "rename", "obama", "barack"});
  CHECK(c.Must({"subject", "list"}).out.find("barack") != std::string::npos);
  RunResult old_name = c.Run({"query", "--subject", "obama"});
  CHECK(old_name.exit_code == 2);
  CHECK(old_name.err.find("no subject named 'obama'") != std::string::npos);
  c.Must({"--case", "C-1", "subject", "remove", "barack"});
  CHECK(c.Run({"subject", "list"}).exit_code == 1);

  std::vector<std::string> trail;
  for (const Json& r : c.Audit()) trail.push_back(r["action"].str() + (r["params"].has("op") ? " " + r["params"]["op"].str() : ""));
  CHECK(trail == std::vector<std::string>{"export", "subject add", "query", "subject exclude", "query", "subject rename",
                                          "subject remove"});
  const Json add = c.Audit()[1];
  CHECK(add["case"].str() == "C-1");
  CHECK(add["seq"].num() == shown["references"][0]["audit_seq"].num());
  CHECK(add["probe_sha256"].size() == 2);
}

TEST_CASE("Bad subject input fails with a clear message and changes neither the subjects nor the audit log",
          "[subject][e2e][models]") {
  SubjectCorpus c;
  c.Must({"subject", "add", "A", "--photo", TestImage("obama3.jpg").string()});
  const size_t records = c.Audit().size();
  cv::imwrite((c.dir / "wall.jpg").string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));

  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Bad& bad : {Bad{{"subject", "add", "A", "--photo", TestImage("biden.jpg").string()}, "exists already"},
                         Bad{{"subject", "add", "B", "--photo", (c.dir / "wall.jpg").string()}, "no face found in"},
                         Bad{{"subject", "add", "A", "--append", "--photo", (c.dir / "wall.jpg").string()},
                             "no face found in"},
                         Bad{{"subject", "add", "B", "--face-id", "999999"}, "names no face"},
                         Bad{{"subject", "add", "B"}, "--photo FILE or --face-id N"},
                         Bad{{"subject", "rename", "nobody", "B"}, "no subject named 'nobody'"},
                         Bad{{"subject", "remove", "nobody"}, "no subject named 'nobody'"},
                         Bad{{"forget", "--subject", "nobody"}, "no subject named 'nobody'"},
                         Bad{{"query", "--subject", "nobody"}, "no subject named 'nobody'"}}) {
    RunResult r = c.Run(bad.args);
    INFO(bad.args[0] + " " + bad.args[1] + ": " + r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(bad.message) != std::string::npos);
  }
  const Json all = ParseJson(c.Must({"subject", "list", "--format", "json"}).out);
  REQUIRE(all.size() == 1);
  CHECK(all[0]["name"].str() == "A");
  CHECK(all[0]["references"].size() == 1);
  CHECK(c.Audit().size() == records);
}

TEST_CASE("query --together returns only the group photo in which both people appear, for photos and subjects alike",
          "[subject][e2e][models]") {
  SubjectCorpus c;
  const Json photos = ParseJson(c.Must({"query", "--together", "--format", "json", TestImage("obama2.jpg").string(),
                                        TestImage("biden.jpg").string()}).out);
  REQUIRE(photos["together"].size() == 1);
  const Json& group = photos["together"][0];
  CHECK(fs::path(group["image"].str()).filename() == "group.jpg");
  REQUIRE(group["matches"].size() == 2);
  CHECK(group["matches"][0]["face_id"].num() != group["matches"][1]["face_id"].num());

  c.Must({"subject", "add", "obama", "--photo", TestImage("obama3.jpg").string()});
  RunResult mixed = c.Run({"query", "--together", "--subject", "obama", "--paths-only", TestImage("biden.jpg").string()});
  CHECK(mixed.exit_code == 0);
  CHECK(mixed.out == (c.photos / "group.jpg").string() + "\n");
  RunResult csv = c.Must({"query", "--together", "--subject", "obama", "--format", "csv", TestImage("biden.jpg").string()});
  CHECK(csv.out.rfind("image,sha256,probe,face_id,distance,fmr,confidence\n", 0) == 0);
  CHECK(csv.out.find(",subject:obama,") != std::string::npos);
  RunResult alone = c.Run({"query", "--together", TestImage("biden.jpg").string()});
  CHECK(alone.exit_code == 2);
  CHECK(alone.err.find("two or more probes") != std::string::npos);
}

TEST_CASE("export --subject writes, and forget --subject erases, the subject's faces and references with audit "
          "records, and an opt-out keeps a face from ever being a reference",
          "[subject][e2e][models]") {
  SubjectCorpus c;
  c.Must({"subject", "add", "obama", "--photo", TestImage("obama3.jpg").string()});
  const std::vector<Json> exported = ParseJsonLines(c.Must({"export", "--subject", "obama"}).out);
  REQUIRE(exported.size() == 3);
  CHECK(exported[0]["subject"].str() == "obama");
  CHECK(exported[0]["subject_distance"].num() <= exported[2]["subject_distance"].num());
  CHECK(exported[0]["embedding"].size() == 128);
  const Json erased = ParseJson(c.Must({"--case", "C-2", "forget", "--subject", "obama", "--json"}).out);
  CHECK(erased["faces_erased"].num() == 3);  // obama.jpg, obama2.jpg and the group photo's obama
  CHECK(c.Run({"subject", "list"}).exit_code == 1);
  std::vector<std::string> left;
  for (const Json& line : ParseJsonLines(c.Must({"export"}).out)) left.push_back(fs::path(line["image"].str()).filename());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"biden.jpg", "group.jpg"});
  const std::vector<Json> audit = c.Audit();
  const auto forget_it = std::find_if(audit.begin(), audit.end(), [](const Json& r) { return r["action"].str() == "forget"; });
  REQUIRE(forget_it != audit.end());
  const Json& forget = *forget_it;
  CHECK(forget["case"].str() == "C-2");
  CHECK(forget["params"]["subject"].str() == "obama");

  c.Must({"optout", "add", TestImage("biden.jpg").string()});
  RunResult refused = c.Run({"subject", "add", "biden", "--photo", TestImage("biden.jpg").string()});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("matches an opt-out") != std::string::npos);
  CHECK(c.Run({"subject", "list"}).exit_code == 1);
}
