// End-to-end shell pipelines, as a user types them: find | index, query | xargs, query | jq,
// cat | query -, and the grep-like exit codes of every subcommand.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <iterator>
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

// Runs facesearch with its stdout on a pipe whose reader has already closed, stderr into `err`.
// sigpipe_default: SIGPIPE at its default action (as a shell starts commands); otherwise ignored,
// as inherited from a parent that ignores it. Returns the wait status.
int RunIntoClosedPipe(const std::vector<std::string>& args, bool sigpipe_default, std::string& err) {
  TempDir dir;
  const fs::path err_file = dir / "stderr";
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  if (sigpipe_default) {
    posix_spawnattr_setsigdefault(&attr, &pipe_only);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  }
  std::vector<std::string> storage = {FacesearchBinary()};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  REQUIRE(rc == 0);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(err_file);
  err.assign(std::istreambuf_iterator<char>(in), {});
  return status;
}

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

TEST_CASE("query --paths-only without -0 refuses a file name with a line break instead of splitting it",
          "[hostile][pipeline][e2e]") {
  Shell sh;
  sh.Index();
  // The README's pipeline: with newline separation "vice president\nbiden.jpg" would reach xargs as
  // two names, and a crafted name can name any other file.
  RunResult lines = sh.Run("facesearch query --paths-only \"$IMAGES/biden.jpg\"");
  CHECK(lines.exit_code == 2);
  CHECK(lines.out.find("biden") == std::string::npos);
  CHECK(lines.out.find("vice president") == std::string::npos);
  CHECK(lines.err.find("-0") != std::string::npos);
  // Names without a line break are still printed, one per line.
  RunResult fine = sh.Run("facesearch query --paths-only \"$IMAGES/obama3.jpg\" | xargs -d '\\n' -n1 basename | sort");
  CHECK(fine.exit_code == 0);
  CHECK(fine.out == "obama.jpg\nobama2.jpg\n");
  // The pipeline the README teaches copies exactly the matched file.
  RunResult copied = sh.Run("mkdir leads && facesearch query -0 --paths-only \"$IMAGES/biden.jpg\" | "
                            "xargs -0 cp -t leads/ -- && ls leads");
  CHECK(copied.exit_code == 0);
  CHECK(copied.out == "vice president\nbiden.jpg\n");
}

TEST_CASE("A full disk on stdout exits 2 and says so, for every command that prints", "[hostile][pipeline][e2e]") {
  Shell sh;
  sh.Index();
  for (const char* cmd : {"facesearch query \"$IMAGES/obama3.jpg\"", "facesearch query --format json \"$IMAGES/obama3.jpg\"",
                          "facesearch cluster", "facesearch info", "facesearch info --format json", "facesearch audit",
                          "facesearch index --json photos", "facesearch export", "facesearch --help"}) {
    RunResult r = sh.Run(std::string(cmd) + " > /dev/full");
    INFO(cmd << "\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cannot write to standard output: No space left on device") != std::string::npos);
  }
}

TEST_CASE("A closed pipe on stdout ends facesearch as SIGPIPE would, quietly, even when SIGPIPE is ignored",
          "[hostile][pipeline][e2e]") {
  Shell sh;
  sh.Index();
  const std::string corpus = (sh.dir / "corpus").string();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--corpus", corpus, "info"},
        std::vector<std::string>{"--corpus", corpus, "--models", ModelsDir().string(), "query", "--format", "jsonl",
                                 TestImage("obama3.jpg").string()}}) {
    INFO(args.back());
    std::string err;
    const int inherited_ignore = RunIntoClosedPipe(args, false, err);
    CHECK(WIFEXITED(inherited_ignore));
    CHECK(WEXITSTATUS(inherited_ignore) == 141);  // 128 + SIGPIPE, what a shell reports for a killed writer
    CHECK(err.find("standard output") == std::string::npos);
    const int shell_default = RunIntoClosedPipe(args, true, err);
    CHECK(WIFSIGNALED(shell_default));
    CHECK(WTERMSIG(shell_default) == SIGPIPE);
  }
}
