// `query --html`: the report file, its escaping and privacy, and how it renders in a real Chromium.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "cli/html_report.h"
#include "shell.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kHostileName = "<img src=x onerror=alert(1)>\"'&.jpg";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

fs::path BlankPhoto(const fs::path& dir) {
  fs::path p = dir / "wall.png";
  cv::imwrite(p.string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  return p;
}

// A corpus of obama.jpg and obama2.jpg (the latter under a hostile file name), and a report for
// three probes: obama3.jpg (two matches), biden.jpg (no match) and a wall (no face).
struct ReportFixture {
  TempDir dir;
  fs::path corpus = dir / "corpus";
  fs::path report = dir / "report.html";
  RunResult query;

  ReportFixture() {
    CopyTestImage("obama.jpg", dir / "photos");
    CopyTestImage("obama2.jpg", dir / "photos", kHostileName);
    RunResult index = RunFacesearch({"--corpus", corpus.string(), "--models", ModelsDir().string(), "index",
                                     (dir / "photos").string()});
    INFO(index.err);
    REQUIRE(index.exit_code == 0);
    query = RunFacesearch({"--corpus", corpus.string(), "--models", ModelsDir().string(), "query", "--html",
                           report.string(), TestImage("obama3.jpg").string(), TestImage("biden.jpg").string(),
                           BlankPhoto(dir.path()).string()});
  }
};

}  // namespace

TEST_CASE("HtmlEscape neutralises markup, invalid UTF-8 and control bytes in file names", "[html]") {
  using facesearch::cli::HtmlEscape;
  CHECK(HtmlEscape(kHostileName) == "&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;.jpg");
  CHECK(HtmlEscape("caf\xC3\xA9.jpg") == "caf\xC3\xA9.jpg");
  CHECK(HtmlEscape("bad\xFF\xC3.jpg") == "bad\xEF\xBF\xBD\xEF\xBF\xBD.jpg");
  CHECK(HtmlEscape(std::string("a\x1b[31m\0b", 8)) == "a\xEF\xBF\xBD[31m\xEF\xBF\xBD" "b");
}

TEST_CASE("query --html writes one private, self-contained page with probes, matches, no match and no face",
          "[html][e2e]") {
  ReportFixture f;
  INFO(f.query.err);
  REQUIRE(f.query.exit_code == 0);  // obama3 matched
  REQUIRE(fs::exists(f.report));
  struct stat st {};
  REQUIRE(stat(f.report.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  for (const auto& e : fs::directory_iterator(f.dir.path()))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);  // no temp file left

  const std::string html = Slurp(f.report);
  CHECK(Count(html, "class=\"card match\"") == 2);
  CHECK(Count(html, "class=\"status no-match\"") == 1);
  CHECK(Count(html, "class=\"status no-face\"") == 1);
  // Face crops are inlined: two probe faces (obama3, biden) and two matches; nothing is fetched.
  CHECK(Count(html, "src=\"data:image/jpeg;base64,") == 4);
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("Content-Security-Policy") != std::string::npos);
  // The hostile file name is shown, escaped, never as markup.
  CHECK(html.find("<img src=x") == std::string::npos);
  CHECK(html.find("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;.jpg") != std::string::npos);
  CHECK(html.find("not an identification") != std::string::npos);
  // Matches nearest first.
  std::regex distance_re("data-distance=\"([0-9.]+)\"");
  std::vector<double> distances;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), distance_re); it != std::sregex_iterator(); ++it)
    distances.push_back(std::stod((*it)[1].str()));
  REQUIRE(distances.size() == 2);
  CHECK(std::is_sorted(distances.begin(), distances.end()));
}

TEST_CASE("query --html keeps a probe read from stdin for its face crop", "[html][e2e]") {
  TempDir dir;
  CopyTestImage("obama.jpg", dir / "photos");
  const std::vector<std::string> corpus = {"--corpus", (dir / "corpus").string(), "--models", ModelsDir().string()};
  auto args = [&](std::vector<std::string> rest) {
    std::vector<std::string> a = corpus;
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  };
  REQUIRE(RunFacesearch(args({"index", (dir / "photos").string()})).exit_code == 0);
  RunResult r = RunFacesearch(args({"query", "--format", "jsonl", "--html", (dir / "r.html").string(), "-"}),
                              Slurp(TestImage("obama2.jpg")));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(!r.out.empty());  // stdin still reached the query
  const std::string html = Slurp(dir / "r.html");
  CHECK(html.find("standard input") != std::string::npos);
  CHECK(Count(html, "src=\"data:image/jpeg;base64,") == 2);
}

TEST_CASE("The HTML report renders in headless Chromium with one card per match and a non-blank screenshot",
          "[html][e2e][chromium][slow]") {
  std::string chromium;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"})
    if (HaveProgram(name)) {
      chromium = name;
      break;
    }
  if (chromium.empty()) {
    SkipOrFailInCi("chromium", "no chromium on PATH, so the report is not rendered (scripts/setup-deps.sh "
                               "installs Debian's chromium package)");
    return;
  }
  TempDir profile;
  const std::string flags = " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --user-data-dir=" +
                            ShellQuote(profile.path().string());
  RunResult version = RunShell(chromium + flags + " --version", profile.path().string());
  if (version.exit_code != 0) {
    SkipOrFailInCi("a chromium that runs", chromium + " is installed but cannot run here: " + version.err);
    return;
  }

  ReportFixture f;
  REQUIRE(f.query.exit_code == 0);
  const std::string url = ShellQuote("file://" + f.report.string());
  RunResult dom = RunShell("timeout 120 " + chromium + flags + " --dump-dom " + url, f.dir.path().string());
  INFO(dom.err);
  REQUIRE(dom.exit_code == 0);
  CHECK(Count(dom.out, "class=\"card match\"") == 2);
  CHECK(Count(dom.out, "class=\"status no-match\"") == 1);
  CHECK(Count(dom.out, "class=\"status no-face\"") == 1);
  CHECK(dom.out.find("&lt;img src=x onerror=alert(1)&gt;") != std::string::npos);

  const fs::path png = f.dir / "report.png";
  RunResult shot = RunShell("timeout 120 " + chromium + flags + " --window-size=1280,1400 --screenshot=" +
                                ShellQuote(png.string()) + " " + url,
                            f.dir.path().string());
  INFO(shot.err);
  REQUIRE(shot.exit_code == 0);
  REQUIRE(fs::exists(png));
  cv::Mat image = cv::imread(png.string(), cv::IMREAD_COLOR);
  REQUIRE(!image.empty());
  CHECK(image.cols == 1280);
  CHECK(image.rows == 1400);
  cv::Scalar mean, stddev;
  cv::meanStdDev(image, mean, stddev);
  CHECK(stddev[0] > 20);  // face crops, text and cards: far from a blank page
  // The face crops are photos: many distinct colours, unlike a page of text and flat boxes.
  cv::Mat small;
  cv::resize(image, small, cv::Size(320, 350), 0, 0, cv::INTER_AREA);
  std::vector<int> colours;
  for (int y = 0; y < small.rows; ++y)
    for (int x = 0; x < small.cols; ++x) {
      cv::Vec3b p = small.at<cv::Vec3b>(y, x);
      colours.push_back((p[0] >> 3) << 10 | (p[1] >> 3) << 5 | (p[2] >> 3));
    }
  std::sort(colours.begin(), colours.end());
  CHECK(std::unique(colours.begin(), colours.end()) - colours.begin() > 500);
  if (const char* keep = std::getenv("FACESEARCH_KEEP_REPORT_SCREENSHOT"); keep && *keep)
    fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
}

TEST_CASE("query --html creates its report exclusively and refuses a directory other users can write",
          "[hostile][html][e2e]") {
  CorpusDir c;
  c.Index({"obama.jpg"});
  const std::string probe = TestImage("obama2.jpg").string();

  // /tmp-like: sticky and world-writable. Another user could have planted the name.
  const fs::path shared = c.dir / "shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::all | fs::perms::sticky_bit);
  RunResult refused = c.Run({"query", "--html", (shared / "r.html").string(), probe});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("other users") != std::string::npos);
  CHECK_FALSE(fs::exists(shared / "r.html"));
  CHECK((fs::status(shared).permissions() & fs::perms::others_write) != fs::perms::none);  // left as it was

  // A symbolic link at the report's name is refused, never written through or replaced.
  const fs::path mine = c.dir / "mine";
  fs::create_directories(mine);
  fs::permissions(mine, fs::perms::owner_all);
  { std::ofstream(mine / "victim.txt") << "keep me"; }
  fs::create_symlink(mine / "victim.txt", mine / "link.html");
  RunResult link = c.Run({"query", "--html", (mine / "link.html").string(), probe});
  CHECK(link.exit_code == 2);
  CHECK(fs::is_symlink(mine / "link.html"));
  CHECK(Slurp(mine / "victim.txt") == "keep me");

  // An earlier report of one's own is replaced by a new file, mode 0600.
  { std::ofstream(mine / "r.html") << "old"; }
  fs::permissions(mine / "r.html", fs::perms::owner_read | fs::perms::owner_write);
  RunResult again = c.Run({"query", "--html", (mine / "r.html").string(), probe});
  INFO(again.err);
  CHECK(again.exit_code == 0);
  CHECK(Slurp(mine / "r.html").find("<!DOCTYPE html>") == 0);
  struct stat st {};
  REQUIRE(stat((mine / "r.html").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}
