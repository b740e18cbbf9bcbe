// End-to-end shell pipelines, as a user types them: find | index, query | xargs, query | jq,
// cat | query -, and the grep-like exit codes of every subcommand.
#include <algorithm>
#include <catch2/catch.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "json.h"
#include "shell.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// photos/ with obama.jpg, obama2.jpg and Biden under a name with a space and a newline; IMAGES
// points at the fetched test images, and the corpus and models come from the environment.
struct Shell {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> env = {
      {"FACESEARCH_CORPUS", (dir / "corpus").string()},
      {"FACESEARCH_MODELS", ModelsDir().string()},
      {"IMAGES", TestImage("obama.jpg").parent_path().string()},
  };
  Shell() {
    CopyTestImage("obama.jpg", dir / "photos");
    CopyTestImage("obama2.jpg", dir / "photos" / "2009");
    CopyTestImage("biden.jpg", dir / "photos", "vice president\nbiden.jpg");
    cv::imwrite((dir / "wall.png").string(), cv::Mat(240, 320, CV_8UC3, cv::Scalar(200, 190, 180)));
  }
  RunResult Run(const std::string& script) const {
    RunResult r = RunShell(script, dir.path().string(), env);
    UNSCOPED_INFO("script: " << script << "\nstderr: " << r.err);
    return r;
  }
  void Index() const { REQUIRE(Run("find photos -name '*.jpg' -print0 | facesearch -q index --from-file - -0").exit_code == 0); }
};

}  // namespace

TEST_CASE("find -print0 | facesearch index --from-file - -0 indexes every photo, even a name with a newline",
          "[pipeline][e2e]") {
  Shell sh;
  RunResult r = sh.Run("find photos -name '*.jpg' -print0 | facesearch index --from-file - -0 --json | jq -r .added");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "3\n");
  CHECK(sh.Run("facesearch info --json | jq .faces").out == "3\n");
  CHECK(sh.Run("facesearch export | jq -r .image | grep -c 'vice president'").out == "1\n");
}

TEST_CASE("query --paths-only feeds xargs, and -0 survives a newline in a file name", "[pipeline][e2e]") {
  Shell sh;
  sh.Index();
  RunResult copied = sh.Run("mkdir leads && facesearch query --paths-only \"$IMAGES/obama3.jpg\" | xargs -d '\\n' cp -t leads/ "
                            "&& ls leads | sort");
  REQUIRE(copied.exit_code == 0);
  CHECK(copied.out == "obama.jpg\nobama2.jpg\n");
  RunResult nul = sh.Run("facesearch query --paths-only -0 \"$IMAGES/biden.jpg\" | xargs -0 -n1 basename");
  REQUIRE(nul.exit_code == 0);
  CHECK(nul.out == "vice president\nbiden.jpg\n");
}

TEST_CASE("query --format json | jq reads the documented fields", "[pipeline][e2e]") {
  Shell sh;
  sh.Index();
  RunResult r = sh.Run("facesearch query --format json \"$IMAGES/obama3.jpg\" | "
                       "jq -r '.results[0].matches[] | [.rank, (.distance < 0.6), .confidence != null, .image] | @tsv'");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("1\ttrue\ttrue\t") == 0);
  CHECK(r.out.find("2\ttrue\ttrue\t") != std::string::npos);
  CHECK(r.out.find("biden") == std::string::npos);
  // No face and no match are distinct records (docs/output.md).
  CHECK(sh.Run("facesearch query --format json wall.png | jq -c '[.faces_detected, .results]'").out == "[0,[]]\n");
  CHECK(sh.Run("facesearch query --format json -t 0.1 \"$IMAGES/obama3.jpg\" | jq -c '[.faces_detected, (.results | length), "
               ".results[0].matches]'").out == "[1,1,[]]\n");
}

TEST_CASE("cat photo | facesearch query - matches like the file itself", "[pipeline][e2e]") {
  Shell sh;
  sh.Index();
  RunResult piped = sh.Run("cat \"$IMAGES/obama3.jpg\" | facesearch query --format jsonl - | jq -r '[.probe, .face_id] | @tsv'");
  RunResult file = sh.Run("facesearch query --format jsonl \"$IMAGES/obama3.jpg\" | jq -r '[\"-\", .face_id] | @tsv'");
  REQUIRE(piped.exit_code == 0);
  CHECK(piped.out == file.out);  // same faces, and every row names its probe "-"
  CHECK(std::count(piped.out.begin(), piped.out.end(), '\n') == 2);
}

TEST_CASE("Exit codes are grep's: 0 match, 1 no match or no face, 2 unreadable probe or missing corpus",
          "[pipeline][e2e][slow]") {
  Shell sh;
  sh.Index();
  auto rc = [&](const std::string& cmd) { return sh.Run(cmd + " >/dev/null").exit_code; };
  CHECK(rc("facesearch query \"$IMAGES/obama3.jpg\"") == 0);
  CHECK(rc("facesearch query -t 0.1 \"$IMAGES/obama3.jpg\"") == 1);  // a face, nobody that close
  CHECK(rc("facesearch query wall.png") == 1);                        // no face in the probe
  CHECK(rc("echo 'not a photo' > broken.jpg && facesearch query broken.jpg") == 2);
  CHECK(rc("facesearch query does-not-exist.jpg") == 2);
  CHECK(rc("facesearch --corpus nowhere query \"$IMAGES/obama3.jpg\"") == 2);
  CHECK(rc("facesearch --corpus nowhere info") == 2);
  CHECK(rc("facesearch --corpus nowhere cluster") == 2);
  // compare's and faces' codes: tests/test_analyze_cli.cpp.
  CHECK(rc("facesearch cluster") == 0);                 // the two Obama photos
  CHECK(rc("facesearch cluster --min-size 3") == 1);    // no cluster that large
  CHECK(rc("facesearch query --format xml x.jpg 2>/dev/null") == 2);  // usage error
  // `if facesearch query -q ...` works in scripts: nothing on stdout decides, only the status.
  CHECK(sh.Run("if facesearch -q query \"$IMAGES/obama3.jpg\" >/dev/null; then echo seen; fi").out == "seen\n");
}
