// Ingest inputs end to end (the real binary): manifests with provenance, path lists, every input
// accounted for in `info --errors`, Ctrl-C, and URL fetching against a local HTTP server
// (tests/http_fixture.py) that this test starts on 127.0.0.1.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "engine/manifest.h"
#include "facesearch/version.h"
#include "fetch/fetcher.h"
#include "json.h"
#include "support.h"

extern char** environ;

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

using Corpus = CorpusDir;

void WriteFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// reason -> locations, from `info --errors --format json`.
std::multimap<std::string, std::string> IssuesByReason(const Corpus& c) {
  RunResult r = c.Run({"info", "--errors", "--format", "json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json j = ParseJson(r.out);
  std::multimap<std::string, std::string> out;
  for (size_t i = 0; i < j["issues"].size(); ++i)
    out.emplace(j["issues"][i]["reason"].str(), j["issues"][i]["location"].str());
  return out;
}

bool HasIssue(const std::multimap<std::string, std::string>& issues, const std::string& reason,
              const std::string& location_part) {
  auto [lo, hi] = issues.equal_range(reason);
  for (auto it = lo; it != hi; ++it)
    if (it->second.find(location_part) != std::string::npos) return true;
  return false;
}

// A child process whose stderr the test reads while it runs.
class Child {
 public:
  Child(const std::vector<std::string>& argv_in, const std::string& program) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    std::vector<std::string> storage = argv_in;
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    signal(SIGPIPE, SIG_IGN);
    int rc = posix_spawnp(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_ = out_pipe[0];
    err_ = err_pipe[0];
    if (rc != 0) throw std::runtime_error("posix_spawn " + program);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(err_);
  }
  // Reads stdout until a full line is there (or EOF); returns it without the newline.
  std::string ReadOutLine() {
    std::string line;
    char c;
    while (read(out_, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }
  // Reads stderr until `needle` appears or `seconds` pass; true when it appeared.
  bool WaitForErr(const std::string& needle, double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (err_text_.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{err_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = read(err_, buf, sizeof buf);
      if (n <= 0) return err_text_.find(needle) != std::string::npos;
      err_text_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  void Signal(int sig) { kill(pid_, sig); }
  // Drains both pipes and waits; returns the exit code (128 + signal when killed).
  int Wait(std::string& out, std::string& err) {
    char buf[4096];
    for (ssize_t n; (n = read(out_, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    for (ssize_t n; (n = read(err_, buf, sizeof buf)) > 0;) err_text_.append(buf, static_cast<size_t>(n));
    err = err_text_;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  std::string err_text_;
};

}  // namespace

TEST_CASE("Manifest rows in JSONL and CSV keep their provenance in every query format and export, and malformed rows are named by file and line",
          "[ingest][e2e][slow]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos);
  CopyTestImage("biden.jpg", c.photos);
  const fs::path jsonl = c.dir / "rows.jsonl";
  WriteFile(jsonl,
            "{\"path\": \"photos/obama.jpg\", \"page_url\": \"https://example.org/obama\", \"source\": \"press\", "
            "\"captured_at\": \"2009-01-20\", \"licence\": \"public domain\", \"notes\": \"official, \\\"portrait\\\"\"}\n"
            "{\"path\": \"photos/obama.jpg\"\n"
            "{\"page_url\": \"https://example.org/none\"}\n"
            "{\"path\": 5}\n");
  const fs::path csv = c.dir / "rows.csv";
  WriteFile(csv,
            "path,source,license,notes\n"
            "photos/biden.jpg,agency,CC-BY-4.0,\"a, b\"\n"
            "photos/y.jpg,only-two\n"
            "photos/z.jpg,so\"urce,x,y\n");
  RunResult r = c.Run({"index", "--json", "--manifest", jsonl.string(), "--manifest", csv.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["added"].num() == 2);
  CHECK(s["errors"].num() == 5);
  for (const char* where : {"rows.jsonl:2", "rows.jsonl:3", "rows.jsonl:4", "rows.csv:3", "rows.csv:4"})
    CHECK_THAT(r.err, Catch::Contains(where));
  auto issues = IssuesByReason(c);
  CHECK(issues.count("manifest") == 5);
  CHECK(HasIssue(issues, "manifest", "rows.csv:4"));

  const std::string probe = TestImage("obama3.jpg").string();
  Json q = ParseJson(c.Run({"query", "--format", "json", probe}).out);
  const Json& m = q["results"][0]["matches"][0];
  CHECK(fs::path(m["image"].str()).filename() == "obama.jpg");
  CHECK(m["page_url"].str() == "https://example.org/obama");
  CHECK(m["source"].str() == "press");
  CHECK(m["captured_at"].str() == "2009-01-20");
  CHECK(m["licence"].str() == "public domain");
  CHECK(m["notes"].str() == "official, \"portrait\"");

  auto lines = ParseJsonLines(c.Run({"query", "--format", "jsonl", probe}).out);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["source"].str() == "press");

  RunResult csv_out = c.Run({"query", "--format", "csv", probe});
  CHECK_THAT(csv_out.out, Catch::StartsWith("probe,probe_face,rank,face_id,distance,fmr,confidence,image,x,y,w,h,"
                                            "page_url,source,captured_at,licence,notes,taken_at,camera_make,"
                                            "camera_model,gps_lat,gps_lon,copies,copy_of,video_first,"
                                            "video_last,video_frame\n"));
  CHECK_THAT(csv_out.out, Catch::Contains(",https://example.org/obama,press,2009-01-20,public domain,"
                                          "\"official, \"\"portrait\"\"\",2012-12-06T15:46:01,Canon,"
                                          "Canon EOS 5D Mark III,,,0,,,,\n"));  // obama.jpg's own EXIF
  RunResult tsv_out = c.Run({"query", "--format", "tsv", probe});
  CHECK_THAT(tsv_out.out, Catch::Contains("\thttps://example.org/obama\tpress\t2009-01-20\tpublic domain\t"));
  RunResult table = c.Run({"query", probe});
  CHECK_THAT(table.out, Catch::Contains("from https://example.org/obama; source press; captured 2009-01-20; "
                                        "licence public domain"));
  // The HTML report's card shows the same provenance, escaped.
  const fs::path html = c.dir / "report.html";
  REQUIRE(c.Run({"query", "--html", html.string(), probe}).exit_code == 0);
  const std::string page = ReadAll(html);
  CHECK_THAT(page, Catch::Contains("<dt>source</dt><dd class=\"path\">press</dd>"));
  CHECK_THAT(page, Catch::Contains("https://example.org/obama"));
  CHECK_THAT(page, Catch::Contains("official, &quot;portrait&quot;"));

  // Biden's row came from the CSV ("license" is accepted for "licence"); export carries both.
  std::map<std::string, Json> exported;
  for (const Json& line : ParseJsonLines(c.Run({"export"}).out))
    exported[fs::path(line["image"].str()).filename().string()] = line;
  REQUIRE(exported.size() == 2);
  CHECK(exported["biden.jpg"]["source"].str() == "agency");
  CHECK(exported["biden.jpg"]["licence"].str() == "CC-BY-4.0");
  CHECK(exported["biden.jpg"]["notes"].str() == "a, b");
  CHECK(exported["biden.jpg"]["page_url"].is_null());
  CHECK(exported["obama.jpg"]["page_url"].str() == "https://example.org/obama");
}

TEST_CASE("index reads path lists from --from-file and stdin, newline- or NUL-separated", "[ingest][e2e]") {
  Corpus c;
  const fs::path a = CopyTestImage("obama.jpg", c.photos);
  const fs::path b = CopyTestImage("biden.jpg", c.photos);
  const fs::path d = CopyTestImage("obama2.jpg", c.photos);
  WriteFile(c.dir / "list.txt", a.string() + "\r\n\n");
  RunResult r = c.Run({"index", "--json", "--from-file", (c.dir / "list.txt").string(), "-"}, b.string() + "\n");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJson(r.out)["added"].num() == 2);
  r = c.Run({"index", "--json", "-0", "--from-file", "-"}, d.string() + std::string(1, '\0') + a.string() + std::string(1, '\0'));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["added"].num() == 1);
  CHECK(s["duplicates"].num() == 1);
  CHECK(c.Run({"index"}).exit_code == 2);  // nothing to index
}

TEST_CASE("Every broken input is listed by info --errors with its reason while the good ones are indexed",
          "[ingest][e2e]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos, "ok.jpg");
  // A non-UTF-8 file name, indexed like any other.
  CopyTestImage("biden.jpg", c.photos, std::string("b\xff\xfe-biden.jpg"));
  WriteFile(c.photos / "corrupt.jpg", "definitely not a jpeg");
  const std::string bytes = ReadAll(TestImage("obama2.jpg"));
  WriteFile(c.photos / "truncated.jpg", bytes.substr(0, bytes.size() / 3));
  cv::imwrite((c.photos / "huge.png").string(), cv::Mat(2000, 2000, CV_8UC3, cv::Scalar(9, 9, 9)));
  fs::create_symlink("loop2.jpg", c.photos / "loop1.jpg");
  fs::create_symlink("loop1.jpg", c.photos / "loop2.jpg");
  fs::create_directory_symlink(c.photos, c.photos / "again");  // a directory link: not followed
  const fs::path locked = c.photos / "locked";
  CopyTestImage("obama3.jpg", locked);
  fs::permissions(locked, fs::perms::none);
  WriteFile(c.dir / "list.txt", (c.dir / "vanished.jpg").string() + "\n");

  RunResult r = c.Run({"index", "--json", "--max-pixels", "3500000", c.photos.string(), "--from-file",
                       (c.dir / "list.txt").string()});
  fs::permissions(locked, fs::perms::owner_all);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  const bool root = geteuid() == 0;  // root reads the locked directory anyway
  CHECK(s["added"].num() == (root ? 3 : 2));
  auto issues = IssuesByReason(c);
  CHECK(HasIssue(issues, "not_image", "corrupt.jpg"));
  CHECK(HasIssue(issues, "truncated", "truncated.jpg"));
  CHECK(HasIssue(issues, "pixel_cap", "huge.png"));
  CHECK(HasIssue(issues, "symlink", "loop1.jpg"));
  CHECK(HasIssue(issues, "symlink", "loop2.jpg"));
  CHECK(HasIssue(issues, "not_found", "vanished.jpg"));
  if (!root) CHECK(HasIssue(issues, "unreadable_dir", "locked"));
  CHECK(issues.size() == (root ? 6u : 7u));

  RunResult table = c.Run({"info", "--errors"});
  CHECK_THAT(table.out, Catch::Contains("error    truncated"));
  CHECK_THAT(table.out, Catch::Contains("truncated.jpg: "));

  // The non-UTF-8 name is found by a query; JSON output stays valid (U+FFFD for the bad bytes).
  RunResult q = c.Run({"query", "--format", "json", TestImage("biden.jpg").string()});
  INFO(q.err);
  REQUIRE(q.exit_code == 0);
  CHECK_THAT(ParseJson(q.out)["results"][0]["matches"][0]["image"].str(), Catch::Contains("-biden.jpg"));
  RunResult paths = c.Run({"query", "--paths-only", TestImage("biden.jpg").string()});
  CHECK_THAT(paths.out, Catch::Contains("b\xff\xfe-biden.jpg"));
}

TEST_CASE("SIGINT stops an index run after committing finished images, prints the summary and exits 130, and the next run finishes",
          "[ingest][e2e]") {
  Corpus c;
  const std::string bytes = ReadAll(TestImage("obama.jpg"));
  constexpr int kImages = 8;
  for (int i = 0; i < kImages; ++i)  // distinct content: bytes after the JPEG end marker differ
    WriteFile(c.photos / ("copy" + std::to_string(100 + i) + ".jpg"), bytes + "copy" + std::to_string(i));
  std::vector<std::string> argv = {FACESEARCH_BINARY};
  for (auto& a : c.Args({"-v", "index", "--json", "--jobs", "2", c.photos.string()})) argv.push_back(a);
  std::string out, err;
  int code = 0;
  {
    Child child(argv, FACESEARCH_BINARY);
    REQUIRE(child.WaitForErr(": added (1 faces)", 120));
    child.Signal(SIGINT);
    code = child.Wait(out, err);
  }
  INFO(err);
  CHECK(code == 130);
  Json s = ParseJson(out);
  CHECK(s["interrupted"].boolean());
  const double first = s["added"].num();
  CHECK(first >= 1);
  CHECK(first < kImages);
  CHECK_THAT(err, Catch::Contains("interrupted"));
  Json info = ParseJson(c.Run({"info", "--json"}).out);
  CHECK(info["faces"].num() == first);
  CHECK(info["index_state"].str() == "fresh");

  RunResult again = c.Run({"index", "--json", c.photos.string()});
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  Json s2 = ParseJson(again.out);
  CHECK_FALSE(s2["interrupted"].boolean());
  CHECK(s2["duplicates"].num() == first);
  CHECK(s2["added"].num() == kImages - first);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == kImages);
}

namespace {

// Runs the binary with `args` under coreutils' timeout, so that a hang fails the test (exit 137)
// instead of stalling the suite.
RunResult RunWithin(int seconds, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"timeout", "-s", "KILL", std::to_string(seconds), FACESEARCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv);
}

}  // namespace

TEST_CASE("A FIFO among the inputs is refused as not a regular file by index, query, compare and --html instead of hanging",
          "[ingest][hostile][e2e]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos);
  REQUIRE(mkfifo((c.photos / "walked.jpg").c_str(), 0600) == 0);
  const fs::path named = c.dir / "named.jpg";
  REQUIRE(mkfifo(named.c_str(), 0600) == 0);

  RunResult index = RunWithin(60, c.Args({"index", "--json", c.photos.string(), named.string()}));
  INFO(index.err);
  REQUIRE(index.exit_code == 0);
  Json s = ParseJson(index.out);
  CHECK(s["added"].num() == 1);
  CHECK(s["errors"].num() == 2);
  auto issues = IssuesByReason(c);
  CHECK(HasIssue(issues, "not_regular_file", "walked.jpg"));
  CHECK(HasIssue(issues, "not_regular_file", "named.jpg"));

  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"query", named.string()},
        std::vector<std::string>{"compare", named.string(), TestImage("obama2.jpg").string()}}) {
    RunResult r = RunWithin(30, c.Args(cmd));
    INFO(cmd[0] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("not a regular file"));
  }

  // The indexed photo swapped for a FIFO after the run: the report says it cannot be read.
  fs::remove(c.photos / "obama.jpg");
  REQUIRE(mkfifo((c.photos / "obama.jpg").c_str(), 0600) == 0);
  const fs::path report = c.dir / "report.html";
  RunResult html = RunWithin(60, c.Args({"query", "--html", report.string(), TestImage("obama2.jpg").string()}));
  INFO(html.err);
  CHECK(html.exit_code == 0);
  CHECK(fs::is_regular_file(report));
}

TEST_CASE("SIGTERM ends an index run stuck on an input that never comes within seconds, and the lock is released",
          "[ingest][hostile][e2e]") {
  Corpus c;
  const fs::path list = c.dir / "list";
  REQUIRE(mkfifo(list.c_str(), 0600) == 0);
  std::vector<std::string> argv = {FACESEARCH_BINARY};
  for (auto& a : c.Args({"index", "--from-file", list.string()})) argv.push_back(a);
  std::string out, err;
  int code = 0;
  std::chrono::duration<double> took{};
  {
    Child child(argv, FACESEARCH_BINARY);
    // A writer that never writes: the run waits for the list (holding the corpus lock) until the
    // signal. Opening our end also tells us that the run has reached the list.
    int writer = -1;
    for (int i = 0; i < 600 && writer < 0; ++i) {
      writer = open(list.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (writer < 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(writer >= 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto start = std::chrono::steady_clock::now();
    child.Signal(SIGTERM);
    std::atomic<bool> ended{false};
    std::thread waiter([&] { code = child.Wait(out, err); ended = true; });
    while (!ended && std::chrono::steady_clock::now() - start < std::chrono::seconds(20))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    took = std::chrono::steady_clock::now() - start;
    close(writer);  // lets a run that ignored the signal end, so that the test does not hang
    waiter.join();
  }
  INFO(err);
  CHECK(took.count() < 10);
  CHECK(code == 130);
  CHECK_THAT(err, Catch::Contains("stopping"));
  RunResult next = c.Run({"--lock-wait", "0", "index", TestImage("obama.jpg").string()});
  INFO(next.err);
  CHECK(next.exit_code == 0);
  CHECK(c.Run({"verify"}).exit_code == 0);
}

// ---- URL fetching ---------------------------------------------------------------------------------

TEST_CASE("robots.txt rules: the longest match wins, Allow wins ties, wildcards and $ anchor, and our own group beats the star group",
          "[fetch]") {
  using facesearch::RobotsRules;
  auto star = RobotsRules::Parse("User-agent: *\nDisallow: /private/\nAllow: /private/ok\n"
                                 "Disallow: /*.gif$\n# comment\n", "facesearch");
  CHECK(star.Allowed("/img/a.jpg"));
  CHECK_FALSE(star.Allowed("/private/a.jpg"));
  CHECK(star.Allowed("/private/ok.jpg"));
  CHECK_FALSE(star.Allowed("/x/y.gif"));
  CHECK(star.Allowed("/x/y.gif?z"));
  CHECK(star.Allowed("/robots.txt"));
  auto ours = RobotsRules::Parse("User-agent: *\nDisallow: /\n\nUser-agent: FaceSearch\nDisallow: /faces/\n",
                                 "facesearch");
  CHECK(ours.Allowed("/img/a.jpg"));
  CHECK_FALSE(ours.Allowed("/faces/a.jpg"));
  auto other = RobotsRules::Parse("User-agent: otherbot\nDisallow: /\n", "facesearch");
  CHECK(other.Allowed("/anything"));
  auto grouped = RobotsRules::Parse("User-agent: a\nUser-agent: *\nDisallow: /x\n", "facesearch");
  CHECK_FALSE(grouped.Allowed("/x/1.jpg"));
  CHECK_FALSE(RobotsRules::DisallowAll().Allowed("/a"));
  CHECK(facesearch::LooksLikeUrl("https://a.b/c"));
  CHECK(facesearch::LooksLikeUrl("ftp://a.b/c"));
  CHECK_FALSE(facesearch::LooksLikeUrl("/photos/a://b.jpg"));
  CHECK_FALSE(facesearch::LooksLikeUrl("photos/a.jpg"));
}

TEST_CASE("X-Robots-Tag forbids only noimageindex noindex or none for every agent or ours and URLs parse to origin and path without userinfo",
          "[fetch]") {
  using facesearch::RobotsTagForbids;
  CHECK(RobotsTagForbids({"noimageindex"}));
  CHECK(RobotsTagForbids({"nofollow, NoIndex"}));
  CHECK(RobotsTagForbids({"facesearch: none"}));
  CHECK_FALSE(RobotsTagForbids({"otherbot: noindex"}));
  CHECK_FALSE(RobotsTagForbids({"nofollow", "unavailable_after: 2030-01-01"}));
  CHECK_FALSE(RobotsTagForbids({}));

  auto u = facesearch::ParseUrl("HTTPS://Example.ORG/a/b.jpg?x=1");
  REQUIRE(u);
  CHECK(u->scheme == "https");
  CHECK(u->host == "example.org");
  CHECK(u->origin() == "https://example.org:443");
  CHECK(u->path_and_query == "/a/b.jpg?x=1");
  auto bare = facesearch::ParseUrl("http://127.0.0.1:8080");
  REQUIRE(bare);
  CHECK(bare->path_and_query == "/");
  auto file = facesearch::ParseUrl("file:///etc/passwd");
  REQUIRE(file);
  CHECK(file->scheme == "file");
  CHECK_FALSE(facesearch::ParseUrl("http://exa mple.org/a b").has_value());

  using facesearch::RedactUrl;
  CHECK(RedactUrl("https://ana:secret@example.org/a.jpg?x=1") == "https://example.org/a.jpg?x=1");
  CHECK(RedactUrl("https://token@example.org:8443/a.jpg") == "https://example.org:8443/a.jpg");
  CHECK(RedactUrl("https://example.org/a@b.jpg") == "https://example.org/a@b.jpg");  // '@' in the path
  CHECK(RedactUrl("HTTPS://Example.ORG/a.jpg") == "HTTPS://Example.ORG/a.jpg");      // unchanged text
  CHECK(RedactUrl("photos/a@b.jpg") == "photos/a@b.jpg");
  CHECK(RedactUrl("http://a:b@[::1/x").find("b@") == std::string::npos);  // malformed: userinfo hidden
}

TEST_CASE("ParseManifest reads rows from bytes and names every malformed line without reading any file",
          "[ingest]") {
  std::vector<facesearch::FileOutcome> problems;
  auto rows = facesearch::ParseManifest(
      "{\"path\": \"a.jpg\", \"source\": \"s\"}\n\n{\"url\": 7}\nnot json\n{\"url\": \"https://e.org/b.jpg\"}\n",
      facesearch::ManifestFormat::kJsonl, "m.jsonl", problems);
  REQUIRE(rows);
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].location == "a.jpg");
  CHECK((*rows)[0].provenance.source == "s");
  CHECK((*rows)[1].location == "https://e.org/b.jpg");
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].path == "m.jsonl:3");
  CHECK(problems[1].path == "m.jsonl:4");

  problems.clear();
  auto csv = facesearch::ParseManifest("path,notes\n\"a,1.jpg\",\"two\nlines\"\nb.jpg\n\"open",
                                       facesearch::ManifestFormat::kCsv, "m.csv", problems);
  REQUIRE(csv);
  REQUIRE(csv->size() == 1);
  CHECK((*csv)[0].location == "a,1.jpg");
  CHECK((*csv)[0].provenance.notes == "two\nlines");
  CHECK(problems.size() == 2);  // a row with one field too few, an unterminated quote
  CHECK_FALSE(facesearch::ParseManifest("x", facesearch::ManifestFormat::kAuto, "m", problems));
}

TEST_CASE("URLs are fetched politely from a local server: images indexed with provenance, every refusal and failure recorded with its reason",
          "[fetch][e2e][slow]") {
  Corpus c;
  const fs::path served = c.dir / "served";
  for (const char* name : {"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"}) CopyTestImage(name, served);
  WriteFile(served / "secret.jpg", ReadAll(TestImage("obama.jpg")) + "other content");
  const fs::path log = c.dir / "requests.log";
  Child server({"python3", std::string(FACESEARCH_SOURCE_DIR) + "/tests/http_fixture.py", served.string(),
                log.string()},
               "python3");
  const std::string port = server.ReadOutLine();
  REQUIRE(!port.empty());
  const std::string base = "http://127.0.0.1:" + port;

  WriteFile(c.dir / "urls.txt",
            "# one URL per line\n" + base + "/img/obama.jpg\n" + base + "/private/secret.jpg\n" + base +
                "/noindex/obama3.jpg\n" + base + "/missing.jpg\n" + base + "/loop\n" + base + "/slow.jpg\n" +
                base + "/big.jpg\n" + base + "/page.html\n" + base + "/flaky.jpg\n" + base + "/moved.jpg\n" +
                "ftp://127.0.0.1/x.jpg\n");
  WriteFile(c.dir / "web.jsonl", "{\"url\": \"" + base + "/img/biden.jpg\", \"page_url\": \"" + base +
                                     "/gallery.html\", \"source\": \"fixture\"}\n");
  const std::vector<std::string> polite = {"--host-rate", "50", "--fetch-timeout", "3", "--retries", "1",
                                           "--backoff", "0.1", "--max-fetch-bytes", "1048576",
                                           "--contact", "test-suite@example.org"};
  std::vector<std::string> args = {"index", "--json", "--urls", (c.dir / "urls.txt").string(), "--manifest",
                                   (c.dir / "web.jsonl").string()};
  args.insert(args.end(), polite.begin(), polite.end());
  RunResult r = c.Run(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["files"].num() == 12);
  // obama, flaky (obama2 after a 503), biden; moved.jpg redirects to biden: the same content.
  CHECK(s["added"].num() == 3);
  CHECK(s["duplicates"].num() == 1);
  CHECK(s["skipped"].num() == 3);  // robots, noimageindex, ftp
  CHECK(s["errors"].num() == 5);   // 404, loop, timeout, too large, text/html

  auto issues = IssuesByReason(c);
  CHECK(HasIssue(issues, "robots", "/private/secret.jpg"));
  CHECK(HasIssue(issues, "noimageindex", "/noindex/obama3.jpg"));
  CHECK(HasIssue(issues, "scheme", "ftp://"));
  CHECK(HasIssue(issues, "http_status", "/missing.jpg"));
  CHECK(HasIssue(issues, "redirect", "/loop"));
  CHECK(HasIssue(issues, "timeout", "/slow.jpg"));
  CHECK(HasIssue(issues, "too_large", "/big.jpg"));
  CHECK(HasIssue(issues, "content_type", "/page.html"));
  CHECK(issues.size() == 8);

  // The server saw robots.txt once, an honest User-Agent, and nothing under /private/.
  const std::string requests = ReadAll(log);
  std::istringstream lines(requests);
  int robots = 0, flaky = 0;
  for (std::string line; std::getline(lines, line);) {
    CHECK_THAT(line, Catch::Contains("\tfacesearch/" FACESEARCH_VERSION " (+test-suite@example.org)\t"));
    CHECK_THAT(line, !Catch::StartsWith("/private/"));
    robots += line.starts_with("/robots.txt\t");
    flaky += line.starts_with("/flaky.jpg\t");
  }
  CHECK(robots == 1);
  CHECK(flaky == 2);

  // Fetched images are queryable; the URL is the image and the manifest's page_url comes back.
  Json q = ParseJson(c.Run({"query", "--format", "json", TestImage("biden.jpg").string()}).out);
  const Json& m = q["results"][0]["matches"][0];
  CHECK(m["image"].str() == base + "/img/biden.jpg");
  CHECK(m["page_url"].str() == base + "/gallery.html");
  CHECK(m["source"].str() == "fixture");
  Json q2 = ParseJson(c.Run({"query", "--format", "json", TestImage("obama3.jpg").string()}).out);
  std::set<std::string> images;
  for (size_t i = 0; i < q2["results"][0]["matches"].size(); ++i)
    images.insert(q2["results"][0]["matches"][i]["image"].str());
  CHECK(images == std::set<std::string>{base + "/img/obama.jpg", base + "/flaky.jpg"});

  // The override is explicit and audited; with it the disallowed and noimageindex images are read.
  args.push_back("--ignore-robots");
  RunResult forced = c.Run(args);
  INFO(forced.err);
  REQUIRE(forced.exit_code == 0);
  CHECK(ParseJson(forced.out)["added"].num() == 2);  // secret.jpg and obama3.jpg
  RunResult audit = c.Run({"audit", "list", "--format", "jsonl"});
  CHECK_THAT(audit.out, Catch::Contains("index-ignore-robots"));
  auto after = IssuesByReason(c);
  CHECK_FALSE(HasIssue(after, "robots", "/private/secret.jpg"));
  CHECK_FALSE(HasIssue(after, "noimageindex", "/noindex/obama3.jpg"));
}

TEST_CASE("Requests to one host are spaced by the --host-rate limit, robots.txt included", "[fetch][e2e]") {
  Corpus c;
  const fs::path log = c.dir / "requests.log";
  Child server({"python3", std::string(FACESEARCH_SOURCE_DIR) + "/tests/http_fixture.py", c.dir.path().string(),
                log.string()},
               "python3");
  const std::string port = server.ReadOutLine();
  REQUIRE(!port.empty());
  const std::string base = "http://127.0.0.1:" + port;
  WriteFile(c.dir / "urls.txt", base + "/missing.jpg?a\n" + base + "/missing.jpg?b\n" + base + "/missing.jpg?c\n");
  RunResult r = c.Run({"index", "--json", "--jobs", "2", "--urls", (c.dir / "urls.txt").string(), "--host-rate",
                       "4", "--host-concurrency", "2"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJson(r.out)["errors"].num() == 3);
  std::vector<double> times;
  std::istringstream lines(ReadAll(log));
  for (std::string line; std::getline(lines, line);) times.push_back(std::stod(line.substr(line.rfind('\t') + 1)));
  REQUIRE(times.size() == 4);  // robots.txt and three images
  std::sort(times.begin(), times.end());
  for (size_t i = 1; i < times.size(); ++i) CHECK(times[i] - times[i - 1] >= 0.24);  // 1/4 s, less clock slack
}

TEST_CASE("The JSON summary of index reports the seconds spent per stage as wall and CPU time", "[ingest][e2e]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos);
  CopyTestImage("biden.jpg", c.photos);
  RunResult r = c.Run({"index", "--json", "--jobs", "2", c.photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  REQUIRE(s["faces"].num() == 2);
  for (const char* key : {"stage_seconds", "stage_cpu_seconds"}) {
    INFO(key);
    const Json& st = s[key];
    for (const char* stage : {"read", "decode", "detect", "landmarks", "embed", "store"}) {
      INFO(stage);
      CHECK(st[stage].num() >= 0);
    }
    // Work was done in the stages that every image with a face goes through.
    CHECK(st["decode"].num() > 0);
    CHECK(st["detect"].num() > 0);
    CHECK(st["embed"].num() > 0);
    // Summed over the workers, the stages cannot exceed the workers' time by much.
    CHECK(st["detect"].num() + st["embed"].num() < 2 * s["seconds"].num() + 1);
  }
}

// ---- hostile inputs (#14) ---------------------------------------------------------------------------

namespace {

// tests/http_fixture.py serving `dir` with one of its robots.txt variants, on 127.0.0.1.
struct HttpFixture {
  HttpFixture(const fs::path& dir, const fs::path& log, const std::string& robots)
      : child({"python3", std::string(FACESEARCH_SOURCE_DIR) + "/tests/http_fixture.py", dir.string(), log.string(),
               robots},
              "python3"),
        base("http://127.0.0.1:" + child.ReadOutLine()) {}
  Child child;
  std::string base;
};

// Runs the binary under `timeout` and an 8 GiB address-space limit: a regression must fail the
// test, not hang the suite or eat the machine's memory. (Not under AddressSanitizer, which
// reserves terabytes of address space for its shadow.)
RunResult RunBounded(const Corpus& c, const std::vector<std::string>& args, int seconds = 60) {
#ifdef __SANITIZE_ADDRESS__
  const std::string limit;
#else
  const std::string limit = "ulimit -v 8388608 && ";
#endif
  std::vector<std::string> argv = {"sh", "-c", limit + "exec timeout -s KILL \"$@\"", "sh", std::to_string(seconds),
                                   FacesearchBinary()};
  for (auto& a : c.Args(args)) argv.push_back(a);
  return RunProgram(argv);
}

// Every byte of the files in `dir` (the corpus database, its WAL, the index...).
std::string ReadTree(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all += ReadAll(e.path());
  return all;
}

}  // namespace

TEST_CASE("robots.txt paths and rules are compared after percent-encoding normalisation and a byte-order mark hides nothing",
          "[fetch][hostile]") {
  using facesearch::RobotsRules;
  auto rules = RobotsRules::Parse("\xEF\xBB\xBFUser-agent: *\nDisallow: /private/\nDisallow: /%7euser/\n"
                                  "Disallow: /fotos/\xC3\xA4/\nDisallow: /a%2fb\nAllow: /%70ublic/*.jpg$\n",
                                  "facesearch");
  CHECK_FALSE(rules.Allowed("/private/a.jpg"));  // the BOM did not hide the first group
  CHECK_FALSE(rules.Allowed("/%70rivate/a.jpg"));
  CHECK_FALSE(rules.Allowed("/%70%72ivate/a.jpg"));
  CHECK_FALSE(rules.Allowed("/~user/a.jpg"));
  CHECK_FALSE(rules.Allowed("/%7Euser/a.jpg"));
  CHECK_FALSE(rules.Allowed("/fotos/%c3%a4/a.jpg"));
  CHECK_FALSE(rules.Allowed("/a%2Fb"));
  CHECK(rules.Allowed("/a/b"));  // an encoded '/' is not a '/'
  CHECK_FALSE(rules.Allowed("/img/../private/a.jpg"));
  CHECK_FALSE(rules.Allowed("/img/%2e%2e/private/a.jpg"));
  CHECK(rules.Allowed("/public/a.jpg"));
  CHECK(rules.Allowed("/img/a.jpg"));
}

TEST_CASE("robots.txt is honoured when it is over 500 KiB, starts with a BOM, or names the path percent-encoded, and 4xx allows and 5xx disallows",
          "[fetch][hostile][e2e]") {
  Corpus c;
  const fs::path served = c.dir / "served";
  CopyTestImage("obama.jpg", served);
  CopyTestImage("biden.jpg", served);
  WriteFile(served / "secret.jpg", ReadAll(TestImage("obama.jpg")) + "other content");
  const fs::path log = c.dir / "requests.log";
  HttpFixture plain(served, log, "plain"), big(served, log, "big"), bom(served, log, "bom"),
      missing(served, log, "404"), failing(served, log, "503");
  WriteFile(c.dir / "urls.txt", big.base + "/private/secret.jpg\n" + big.base + "/img/obama.jpg\n" + bom.base +
                                    "/private/secret.jpg\n" + plain.base + "/%70rivate/secret.jpg\n" + plain.base +
                                    "/img/%2e%2e/private/secret.jpg\n" + failing.base + "/img/obama.jpg\n" +
                                    missing.base + "/img/biden.jpg\n");
  RunResult r = RunBounded(c, {"index", "--json", "--urls", (c.dir / "urls.txt").string(), "--host-rate", "50",
                               "--retries", "0", "--fetch-timeout", "10"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["added"].num() == 2);    // obama from the big robots.txt's host, biden where robots.txt is 404
  CHECK(s["skipped"].num() == 5);  // four robots rules, and everything where robots.txt fails with 503
  auto issues = IssuesByReason(c);
  CHECK(HasIssue(issues, "robots", big.base + "/private/secret.jpg"));
  CHECK(HasIssue(issues, "robots", bom.base + "/private/secret.jpg"));
  CHECK(HasIssue(issues, "robots", plain.base + "/%70rivate/secret.jpg"));
  CHECK(HasIssue(issues, "robots", plain.base + "/img/%2e%2e/private/secret.jpg"));
  CHECK(HasIssue(issues, "robots", failing.base + "/img/obama.jpg"));
  // Nothing disallowed was requested.
  std::istringstream lines(ReadAll(log));
  for (std::string line; std::getline(lines, line);) CHECK_THAT(line, !Catch::Contains("secret"));
}

TEST_CASE("A url in a manifest or a --urls list must be http(s): a local path or file:// URL there is refused with reason scheme and never read",
          "[ingest][hostile][e2e]") {
  Corpus c;
  const fs::path a = CopyTestImage("obama.jpg", c.photos);
  const fs::path b = CopyTestImage("biden.jpg", c.photos);
  WriteFile(c.dir / "m.jsonl", "{\"url\": \"" + a.string() + "\"}\n{\"url\": \"photos/biden.jpg\"}\n"
                               "{\"url\": \"file://" + b.string() + "\"}\n");
  WriteFile(c.dir / "m.csv", "url,source\n" + (c.photos / "other.jpg").string() + ",x\n");
  WriteFile(c.dir / "urls.txt", b.string() + "\n");
  RunResult r = c.Run({"index", "--json", "--manifest", (c.dir / "m.jsonl").string(), "--manifest",
                       (c.dir / "m.csv").string(), "--urls", (c.dir / "urls.txt").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["added"].num() == 0);
  CHECK(s["skipped"].num() == 5);
  CHECK_THAT(r.err, Catch::Contains("only http and https URLs are fetched"));
  auto issues = IssuesByReason(c);
  CHECK(issues.count("scheme") == 5);
  CHECK(HasIssue(issues, "scheme", "photos/biden.jpg"));
  CHECK(HasIssue(issues, "scheme", "file://"));
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 0);
}

TEST_CASE("Lists and manifests are bounded: an endless --from-file, --urls or --manifest ends with an error that says what to do",
          "[ingest][hostile][e2e]") {
  Corpus c;
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Case> cases = {
      {{"--from-file", "/dev/zero", "-0"}, "split it"},
      {{"--from-file", "/dev/zero"}, "longer than 8192 bytes"},
      {{"--urls", "/dev/zero"}, "longer than"},
      {{"--manifest", "/dev/zero", "--manifest-format", "jsonl"}, "split it"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> args = {"index"};
    args.insert(args.end(), k.args.begin(), k.args.end());
    RunResult r = RunBounded(c, args, 20);
    INFO(k.args[0] << " " << k.args[1] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(k.says));
  }
}

TEST_CASE("index --jobs refuses 0, negative and absurd worker counts and names the limit", "[ingest][hostile]") {
  Corpus c;
  fs::create_directories(c.photos);
  for (const char* jobs : {"0", "-1", "100000"}) {
    RunResult r = c.Run({"index", "--jobs", jobs, c.photos.string()});
    INFO(jobs << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--jobs"));
  }
}

TEST_CASE("Failed content is retried by the next run, and empty or identical broken files are each reported with their own reason",
          "[ingest][hostile][e2e]") {
  Corpus c;
  for (const char* name : {"empty1.jpg", "empty2.jpg", "empty3.jpg"}) WriteFile(c.photos / name, "");
  WriteFile(c.photos / "broken1.jpg", "not a jpeg at all");
  WriteFile(c.photos / "broken2.jpg", "not a jpeg at all");
  cv::imwrite((c.photos / "huge.png").string(), cv::Mat(2000, 2000, CV_8UC3, cv::Scalar(9, 9, 9)));
  RunResult r = c.Run({"index", "--json", "--jobs", "2", "--max-pixels", "3500000", c.photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["errors"].num() == 6);
  CHECK(s["duplicates"].num() == 0);
  auto issues = IssuesByReason(c);
  CHECK(issues.count("empty") == 3);
  for (const char* name : {"empty1.jpg", "empty2.jpg", "empty3.jpg"}) CHECK(HasIssue(issues, "empty", name));
  CHECK(HasIssue(issues, "not_image", "broken1.jpg"));
  CHECK(HasIssue(issues, "not_image", "broken2.jpg"));
  CHECK(HasIssue(issues, "pixel_cap", "huge.png"));

  // A larger cap: the image that failed is decoded now, not "already indexed".
  RunResult again = c.Run({"index", "--json", c.photos.string()});
  INFO(again.err);
  REQUIRE(again.exit_code == 0);
  Json s2 = ParseJson(again.out);
  CHECK(s2["duplicates"].num() == 0);
  CHECK(s2["noface"].num() == 1);
  CHECK(s2["errors"].num() == 5);
  auto after = IssuesByReason(c);
  CHECK_FALSE(HasIssue(after, "pixel_cap", "huge.png"));
  CHECK(after.size() == 5);
}

TEST_CASE("A directory entry that cannot be inspected (its path is longer than PATH_MAX) is counted and listed by info --errors",
          "[ingest][hostile][e2e]") {
  Corpus c;
  CopyTestImage("obama.jpg", c.photos);
  // Directories nested until the path nears PATH_MAX, made relative to each other's descriptors;
  // a file inside the last one has a path that no stat() can take.
  const std::string segment(200, 'd');
  int dir = open(c.photos.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dir >= 0);
  size_t length = c.photos.string().size();
  while (length + 1 + segment.size() < 4000) {
    REQUIRE(mkdirat(dir, segment.c_str(), 0755) == 0);
    int next = openat(dir, segment.c_str(), O_RDONLY | O_DIRECTORY);
    close(dir);
    REQUIRE(next >= 0);
    dir = next;
    length += 1 + segment.size();
  }
  const std::string name = std::string(240, 'f') + ".jpg";
  int file = openat(dir, name.c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(file >= 0);
  close(file);
  close(dir);
  RunResult r = c.Run({"index", "--json", c.photos.string()});
  REQUIRE(RunProgram({"rm", "-rf", (c.photos / segment).string()}).exit_code == 0);  // too deep for remove_all
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Json s = ParseJson(r.out);
  CHECK(s["added"].num() == 1);
  CHECK(s["errors"].num() == 1);
  auto issues = IssuesByReason(c);
  REQUIRE(issues.size() == 1);
  CHECK_THAT(issues.begin()->second, Catch::EndsWith(name));
}

TEST_CASE("Credentials inside a URL are used to fetch it but never stored or printed", "[fetch][hostile][e2e]") {
  Corpus c;
  const fs::path served = c.dir / "served";
  CopyTestImage("obama.jpg", served);
  HttpFixture server(served, c.dir / "requests.log", "plain");
  const std::string port = server.base.substr(server.base.rfind(':') + 1);
  const std::string secret = "http://ana:s3cret@127.0.0.1:" + port;
  WriteFile(c.dir / "m.jsonl", "{\"url\": \"" + secret + "/img/obama.jpg\", \"page_url\": \"" + secret +
                                   "/gallery.html\"}\n{\"url\": \"" + secret + "/missing.jpg\"}\n");
  RunResult r = c.Run({"index", "--json", "--manifest", (c.dir / "m.jsonl").string(), "--host-rate", "50"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(ParseJson(r.out)["added"].num() == 1);
  CHECK_THAT(r.err, !Catch::Contains("s3cret"));
  Json q = ParseJson(c.Run({"query", "--format", "json", TestImage("obama.jpg").string()}).out);
  const Json& m = q["results"][0]["matches"][0];
  CHECK(m["image"].str() == server.base + "/img/obama.jpg");
  CHECK(m["page_url"].str() == server.base + "/gallery.html");
  CHECK(HasIssue(IssuesByReason(c), "http_status", server.base + "/missing.jpg"));
  CHECK_THAT(ReadTree(c.corpus), !Catch::Contains("s3cret"));
}
