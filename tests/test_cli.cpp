// End-to-end: the real facesearch binary on real photos, real models, a real corpus on disk.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <opencv2/imgcodecs.hpp>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// Distances as the csv/tsv/json writers print them: four decimals.
std::string FormatDistance(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", d);
  return buf;
}

// A corpus in a temp dir and the arguments that select it.
struct Corpus : CorpusDir {
  // photos/ holds obama.jpg, obama2.jpg and biden.jpg, indexed.
  void IndexThreePeople() { Index({"obama.jpg", "obama2.jpg", "biden.jpg"}); }
};

std::string FileName(const Json& match) { return fs::path(match["image"].str()).filename().string(); }

void WriteFile(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

fs::path BlankPhoto(const fs::path& dir) {
  fs::path p = dir / "wall.png";
  cv::imwrite(p.string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  return p;
}

}  // namespace

TEST_CASE("Query with obama3 ranks both Obama photos first within 0.6 and Biden is no match", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  RunResult r = c.Run({"query", "--format", "json", TestImage("obama3.jpg").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json doc = ParseJson(r.out);
  CHECK(doc["faces_detected"].num() >= 1);
  CHECK(doc["corpus_faces"].num() == 3);
  REQUIRE(doc["results"].size() == 1);
  const Json& matches = doc["results"][0]["matches"];
  REQUIRE(matches.size() == 2);
  std::set<std::string> names = {FileName(matches[0]), FileName(matches[1])};
  CHECK(names == std::set<std::string>{"obama.jpg", "obama2.jpg"});
  for (size_t i = 0; i < matches.size(); ++i) {
    CHECK(matches[i]["rank"].num() == double(i + 1));
    CHECK(matches[i]["distance"].num() <= 0.6);
    CHECK(matches[i]["sha256"].str().size() == 64);
    CHECK(matches[i]["box"]["w"].num() > 0);
  }
  CHECK(matches[0]["distance"].num() <= matches[1]["distance"].num());
}

TEST_CASE("Every output format carries the same ranked matches", "[cli][e2e][slow]") {
  Corpus c;
  c.IndexThreePeople();
  const std::string probe = TestImage("obama3.jpg").string();

  RunResult jsonl = c.Run({"query", "--format", "jsonl", probe});
  REQUIRE(jsonl.exit_code == 0);
  std::vector<Json> lines = ParseJsonLines(jsonl.out);
  REQUIRE(lines.size() == 2);
  for (const char* key : {"probe", "probe_face", "rank", "face_id", "distance", "fmr", "confidence", "image",
                          "sha256", "box"})
    CHECK(lines[0].has(key));

  RunResult csv = c.Run({"query", "--format", "csv", probe});
  REQUIRE(csv.exit_code == 0);
  CHECK(csv.out.rfind("probe,probe_face,rank,face_id,distance,fmr,confidence,image,x,y,w,h,"
                      "page_url,source,captured_at,licence,notes,taken_at,camera_make,camera_model,"
                      "gps_lat,gps_lon,copies,copy_of,video_first,video_last,video_frame\n", 0) == 0);
  CHECK(std::count(csv.out.begin(), csv.out.end(), '\n') == 3);
  CHECK(csv.out.find(lines[0]["image"].str()) != std::string::npos);

  // --fields picks the csv/tsv columns and their order; an unknown one is a usage error.
  RunResult tsv = c.Run({"query", "--format", "tsv", "--fields", "image,distance,sha256", probe});
  REQUIRE(tsv.exit_code == 0);
  CHECK(tsv.out == "image\tdistance\tsha256\n" + lines[0]["image"].str() + "\t" +
                       FormatDistance(lines[0]["distance"].num()) + "\t" + lines[0]["sha256"].str() + "\n" +
                       lines[1]["image"].str() + "\t" + FormatDistance(lines[1]["distance"].num()) + "\t" +
                       lines[1]["sha256"].str() + "\n");
  RunResult unknown = c.Run({"query", "--format", "csv", "--fields", "image,nope", probe});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("unknown --fields column 'nope'"));
  CHECK(c.Run({"query", "--fields", "image", probe}).exit_code == 2);  // not csv/tsv

  RunResult table = c.Run({"query", probe});
  REQUIRE(table.exit_code == 0);
  CHECK(table.out.find("DISTANCE") != std::string::npos);
  CHECK(table.out.find(lines[1]["image"].str()) != std::string::npos);
  CHECK(table.out.find("biden.jpg") == std::string::npos);
}

TEST_CASE("A probe read from stdin gives the same matches as the file", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  std::ifstream f(TestImage("obama2.jpg"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  RunResult from_file = c.Run({"query", "--format", "jsonl", TestImage("obama2.jpg").string()});
  RunResult from_stdin = c.Run({"query", "--format", "jsonl", "-"}, bytes);
  REQUIRE(from_stdin.exit_code == 0);
  auto a = ParseJsonLines(from_file.out), b = ParseJsonLines(from_stdin.out);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i]["face_id"].num() == b[i]["face_id"].num());
}

TEST_CASE("A probe with no face exits 1 with a message on stderr and nothing matched", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  RunResult r = c.Run({"query", "--format", "json", BlankPhoto(c.dir.path()).string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("no face") != std::string::npos);
  Json doc = ParseJson(r.out);
  CHECK(doc["faces_detected"].num() == 0);
  CHECK(doc["results"].size() == 0);
}

TEST_CASE("A face nobody in the corpus matches exits 1", "[cli][e2e]") {
  Corpus c;
  CopyTestImage("biden.jpg", c.photos);
  REQUIRE(c.Run({"index", c.photos.string()}).exit_code == 0);
  RunResult r = c.Run({"query", "--format", "jsonl", TestImage("obama2.jpg").string()});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
}

TEST_CASE("Corrupt and truncated files are recorded as errors while the rest of the run succeeds", "[cli][e2e]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos);
  fs::create_directories(c.photos);
  WriteFile(c.photos / "corrupt.jpg", "definitely not a jpeg");
  std::ifstream f(TestImage("obama2.jpg"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), {});
  WriteFile(c.photos / "truncated.jpg", bytes.substr(0, bytes.size() / 3));
  BlankPhoto(c.photos);

  RunResult r = c.Run({"index", "--json", c.photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json summary = ParseJson(r.out);
  CHECK(summary["files"].num() == 4);
  CHECK(summary["added"].num() == 1);
  CHECK(summary["noface"].num() == 1);
  CHECK(summary["errors"].num() == 2);
  CHECK(summary["faces"].num() == 1);
  CHECK(r.err.find("corrupt.jpg") != std::string::npos);
  CHECK(r.err.find("truncated") != std::string::npos);

  Json info = ParseJson(c.Run({"info", "--json"}).out);
  CHECK(info["images"].num() == 4);
  CHECK(info["images_error"].num() == 2);
  CHECK(info["faces"].num() == 1);
  CHECK(info["index_state"].str() == "fresh");
}

TEST_CASE("Indexing the same folder twice adds nothing the second time", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  RunResult again = c.Run({"index", "--json", c.photos.string()});
  REQUIRE(again.exit_code == 0);
  Json s = ParseJson(again.out);
  CHECK(s["added"].num() == 0);
  CHECK(s["duplicates"].num() == 3);
  CHECK(s["faces"].num() == 0);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 3);
}

TEST_CASE("A deleted index file is rebuilt from SQLite and queries still find every match", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  fs::path index_file = c.corpus / "index" / "faces.faiss";
  REQUIRE(fs::exists(index_file));
  fs::remove(index_file);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["index_state"].str() == "missing");

  RunResult r = c.Run({"query", "--format", "jsonl", TestImage("obama3.jpg").string()});
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJsonLines(r.out).size() == 2);
  CHECK(fs::exists(index_file));
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["index_state"].str() == "fresh");
}

TEST_CASE("A corrupted index file is detected by checksum and rebuilt", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  fs::path index_file = c.corpus / "index" / "faces.faiss";
  {
    std::fstream f(index_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(index_file) / 2));
    f.write("\x13\x37\x13\x37", 4);
  }
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["index_state"].str() == "corrupt");
  RunResult r = c.Run({"query", "--format", "jsonl", TestImage("obama3.jpg").string()});
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJsonLines(r.out).size() == 2);
}

TEST_CASE("Export prints every face with its box, landmarks and 128 floats", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  RunResult r = c.Run({"export"});
  REQUIRE(r.exit_code == 0);
  std::vector<Json> faces = ParseJsonLines(r.out);
  REQUIRE(faces.size() == 3);
  for (const Json& f : faces) {
    CHECK(f["embedding"].size() == 128);
    CHECK(f["landmarks"].size() == 5);
    CHECK(f["sha256"].str().size() == 64);
    CHECK(fs::path(f["image"].str()).is_absolute());
  }
}

TEST_CASE("Corpus files holding biometric data are private to their owner", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  auto mode = [](const fs::path& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  CHECK(mode(c.corpus) == 0700);
  CHECK(mode(c.corpus / "index") == 0700);
  CHECK(mode(c.corpus / "corpus.sqlite") == 0600);
  CHECK(mode(c.corpus / "index" / "faces.faiss") == 0600);
}

TEST_CASE("A --corpus directory that is not a corpus is refused when it holds other files or is shared, and no existing directory's mode changes silently",
          "[cli][e2e][hostile][privacy]") {
  auto mode = [](const fs::path& p) {
    struct stat st {};
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  TempDir dir;
  const std::string image = TestImage("obama.jpg").string();
  auto index_into = [&](const fs::path& corpus) {
    return RunFacesearch({"--corpus", corpus.string(), "--models", ModelsDir().string(), "index", image});
  };

  // A shared, sticky directory like /tmp holding other people's files.
  const fs::path shared = dir / "shared";
  fs::create_directory(shared);
  std::ofstream(shared / "someone-elses.txt") << "x";
  fs::permissions(shared, fs::perms(01777));
  RunResult refused = index_into(shared);
  INFO(refused.err);
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("not a facesearch corpus"));
  CHECK(mode(shared) == 01777);
  CHECK_FALSE(fs::exists(shared / "corpus.sqlite"));
  CHECK_FALSE(fs::exists(shared / "write.lock"));

  // An empty directory shared with others is refused too: making it private would take it away
  // from them.
  const fs::path empty_shared = dir / "empty-shared";
  fs::create_directory(empty_shared);
  fs::permissions(empty_shared, fs::perms(01777));
  CHECK(index_into(empty_shared).exit_code == 2);
  CHECK(mode(empty_shared) == 01777);

  // An empty directory of the user's own becomes the corpus, made private with a message; so does
  // one holding only the ledger state a cluster replica records before its first import, kept.
  const fs::path fresh = dir / "fresh";
  fs::create_directory(fresh);
  fs::permissions(fresh, fs::perms(0755));
  std::ofstream(fresh / "cluster-ledger-applied.json") << R"({"seq": 1, "hash": "x"})";
  RunResult made = index_into(fresh);
  INFO(made.err);
  CHECK(made.exit_code == 0);
  CHECK(mode(fresh) == 0700);
  CHECK_THAT(made.err, Catch::Contains("0755") && Catch::Contains("0700"));
  CHECK(fs::exists(fresh / "cluster-ledger-applied.json"));

  // An existing corpus keeps the mode its owner gave it; the permission check warns about it.
  fs::permissions(fresh, fs::perms(0750));
  RunResult again = index_into(fresh);
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK(mode(fresh) == 0750);
  CHECK_THAT(again.err, Catch::Contains("chmod 700"));
}

TEST_CASE("Errors exit 2 and say what to do next", "[cli]") {
  TempDir dir;
  RunResult no_corpus = RunFacesearch({"--corpus", (dir / "nothing").string(), "info"});
  CHECK(no_corpus.exit_code == 2);
  CHECK(no_corpus.err.find("facesearch index") != std::string::npos);

  RunResult no_models = RunFacesearch({"--corpus", (dir / "c").string(), "--models",
                                       (dir / "no-models").string(), "index", dir.path().string()});
  CHECK(no_models.exit_code == 2);
  CHECK(no_models.err.find("fetch-models.sh") != std::string::npos);

  RunResult bad_flag = RunFacesearch({"query", "--format", "xml", "x.jpg"});
  CHECK(bad_flag.exit_code == 2);
  RunResult no_sub = RunFacesearch({});
  CHECK(no_sub.exit_code == 2);
}

TEST_CASE("Help teaches each subcommand with an example and --version prints the version", "[cli]") {
  RunResult top = RunFacesearch({"--help"});
  CHECK(top.exit_code == 0);
  for (const char* sub : {"index", "query", "info", "export"}) {
    INFO(sub);
    CHECK(top.out.find(sub) != std::string::npos);
    RunResult help = RunFacesearch({sub, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("Examples:") != std::string::npos);
    CHECK(help.out.find(std::string("facesearch ")) != std::string::npos);
  }
  RunResult version = RunFacesearch({"--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("facesearch 0.") != std::string::npos);
}

TEST_CASE("Several probes in one run: every row names its probe and json is an array", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  const std::string obama3 = TestImage("obama3.jpg").string(), biden = TestImage("biden.jpg").string();
  RunResult tsv = c.Run({"query", "--format", "tsv", obama3, biden});
  REQUIRE(tsv.exit_code == 0);
  CHECK(tsv.out.rfind("probe\tprobe_face\trank\tface_id\tdistance\tfmr\tconfidence\timage\tx\ty\tw\th\t"
                      "page_url\tsource\tcaptured_at\tlicence\tnotes\ttaken_at\tcamera_make\tcamera_model\t"
                      "gps_lat\tgps_lon\tcopies\tcopy_of\tvideo_first\tvideo_last\tvideo_frame\n", 0) == 0);
  CHECK(std::count(tsv.out.begin(), tsv.out.end(), '\n') == 1 + 2 + 1);  // header, 2 Obama rows, Biden
  CHECK(tsv.out.find(biden + "\t0\t1\t") != std::string::npos);

  Json many = ParseJson(c.Run({"query", "--format", "json", obama3, biden}).out);
  REQUIRE(many.size() == 2);
  CHECK(many[0]["probe"].str() == obama3);
  CHECK(many[1]["results"][0]["matches"].size() == 1);
}

TEST_CASE("An unreadable probe among good ones exits 2 while the others are still answered", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  std::ofstream(c.dir / "broken.jpg") << "not a photo";
  RunResult r = c.Run({"query", "--format", "json", (c.dir / "broken.jpg").string(), TestImage("obama3.jpg").string()});
  CHECK(r.exit_code == 2);
  Json doc = ParseJson(r.out);
  REQUIRE(doc.size() == 2);
  CHECK(doc[0].has("error"));
  CHECK(doc[1]["results"][0]["matches"].size() == 2);
}

TEST_CASE("Paths-only output feeds xargs: each matching image once, NUL-separated with -0", "[cli][e2e][slow]") {
  Corpus c;
  c.IndexThreePeople();
  const std::string obama3 = TestImage("obama3.jpg").string(), obama2 = TestImage("obama2.jpg").string();
  RunResult r = c.Run({"query", "--paths-only", obama3, obama2});
  REQUIRE(r.exit_code == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);  // obama.jpg and obama2.jpg, once each
  CHECK(r.out.find("biden.jpg") == std::string::npos);
  RunResult nul = c.Run({"query", "--paths-only", "-0", obama3});
  CHECK(std::count(nul.out.begin(), nul.out.end(), '\0') == 2);
  CHECK(nul.out.find('\n') == std::string::npos);
}

TEST_CASE("Probe lists come from --from-file, newline- or NUL-separated, and --face picks one face", "[cli][e2e]") {
  Corpus c;
  c.IndexThreePeople();
  const std::string list = TestImage("obama3.jpg").string() + std::string(1, '\0') + TestImage("biden.jpg").string();
  RunResult r = c.Run({"query", "--from-file", "-", "-0", "--format", "jsonl"}, list);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJsonLines(r.out).size() == 3);
  RunResult face0 = c.Run({"query", "--face", "0", "--format", "json", TestImage("biden.jpg").string()});
  REQUIRE(face0.exit_code == 0);
  CHECK(ParseJson(face0.out)["results"][0]["probe_face"].num() == 0);
  RunResult missing = c.Run({"query", "--face", "7", TestImage("biden.jpg").string()});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("--face 7 does not exist") != std::string::npos);
}

TEST_CASE("Every floating-point option refuses nan and infinities before anything runs", "[hostile][cli]") {
  TempDir dir;
  const std::string corpus = (dir / "corpus").string();
  const std::vector<std::vector<std::string>> commands = {
      {"query", "-t", "nan", "x.jpg"},
      {"query", "--threshold=inf", "x.jpg"},
      {"query", "-t", "1e999", "x.jpg"},
      {"query", "--max-fmr", "NaN", "x.jpg"},
      {"query", "--retry-threshold", "-inf", "x.jpg"},
      {"compare", "-t", "nan", "a.jpg", "b.jpg"},
      {"compare", "--max-fmr", "nan", "a.jpg", "b.jpg"},
      {"cluster", "-t", "nan"},
      {"forget", "--like", "x.jpg", "-t", "nan"},
      {"optout", "add", "x.jpg", "-t", "nan"},
      {"index", "--fetch-timeout", "nan", "x.jpg"},
      {"index", "--backoff", "infinity", "x.jpg"},
      {"index", "--host-rate", "inf", "x.jpg"},
      {"--lock-wait", "nan", "info"},
  };
  for (const auto& args : commands) {
    std::vector<std::string> full = {"--corpus", corpus};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = RunFacesearch(full);
    INFO(args[0] << " " << args[1] << " " << args[2] << "\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("Run with --help") != std::string::npos);  // a usage error, refused while parsing
    const bool nan = std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "nan"; });
    if (nan) CHECK(r.err.find("must be a finite number, not nan") != std::string::npos);
  }
  RunResult env = RunProgram({"env", "FACESEARCH_LOCK_WAIT=nan", FacesearchBinary(), "--corpus", corpus, "info"});
  CHECK(env.err.find("finite") != std::string::npos);
  CHECK_FALSE(fs::exists(corpus));  // refused at parse time: nothing was created
}

TEST_CASE("Messages on stderr show control characters in file names escaped", "[hostile][cli]") {
  TempDir dir;
  const std::string name = (dir / "x\x1b]0;owned\x07\x1b[2J.jpg").string();
  RunResult r = RunFacesearch({"--models", ModelsDir().string(), "faces", name});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find('\x1b') == std::string::npos);
  CHECK(r.err.find("x\\x1b]0;owned\\x07\\x1b[2J.jpg") != std::string::npos);
}

TEST_CASE("facesearch --cluster FILE runs facesearch-cluster with the mapped arguments and its exit status, and refuses what it cannot map",
          "[cli]") {
  auto cluster = [](std::vector<std::string> args) {
    args.insert(args.begin(), {"env", "FACESEARCH_CLUSTER=/bin/echo", FacesearchBinary(), "--cluster", "c.json"});
    return RunProgram(args);
  };
  RunResult q = cluster({"query", "probe.jpg", "-f", "json"});
  CHECK(q.exit_code == 0);
  CHECK(q.out == "query --cluster c.json probe.jpg -f json\n");
  CHECK(cluster({"optout", "add", "p.jpg", "--reason", "r"}).out == "optout --cluster c.json p.jpg --reason r\n");
  CHECK(cluster({"audit", "verify", "--json"}).out == "audit --cluster c.json verify --json\n");
  CHECK(cluster({"compare", "a.jpg", "b.jpg"}).out == "compare --cluster c.json a.jpg b.jpg\n");
  CHECK(cluster({"verify", "--full"}).out == "verify --cluster c.json --full\n");
  CHECK(cluster({"optout", "list", "--json"}).out == "optout-list --cluster c.json --json\n");
  CHECK(cluster({"optout", "remove", "7f3a"}).out == "optout-remove --cluster c.json 7f3a\n");
  RunResult unmapped = cluster({"optout", "purge"});
  CHECK(unmapped.exit_code == 2);
  CHECK(unmapped.err.find("optout takes add PHOTO, list, or remove REQUEST_ID") != std::string::npos);
  CHECK(cluster({"optout"}).exit_code == 2);
  CHECK(cluster({"index", "photos/"}).exit_code == 2);
  RunResult failing = RunProgram({"env", "FACESEARCH_CLUSTER=/bin/false", FacesearchBinary(), "--cluster", "c.json", "info"});
  CHECK(failing.exit_code == 1);  // the runner's own status
  RunResult missing = RunProgram({"env", "FACESEARCH_CLUSTER=/nonexistent/runner", FacesearchBinary(), "--cluster", "c.json", "info"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("scripts/setup-ray.sh") != std::string::npos);
  RunResult late = RunFacesearch({"--case", "1", "--cluster", "c.json", "info"});
  CHECK(late.exit_code == 2);
  CHECK(late.err.find("--cluster must be the first argument") != std::string::npos);
}
