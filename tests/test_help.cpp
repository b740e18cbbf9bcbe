// Help that teaches: examples in every --help, the generated man page, `cmake --install`, and the
// bash completion script.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "shell.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// The names listed under "Subcommands:" in a CLI11 help text.
std::vector<std::string> Subcommands(const std::string& help) {
  std::vector<std::string> subs;
  std::istringstream in(help);
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ' ') in_section = line == "Subcommands:";
    else if (in_section && line.size() > 2 && line[2] != ' ') subs.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  return subs;
}

// Every subcommand path: {"index"}, ..., {"eval", "lfw"}, {"eval", "calibrate"}.
std::vector<std::vector<std::string>> AllSubcommands() {
  std::vector<std::vector<std::string>> all;
  for (const std::string& sub : Subcommands(RunFacesearch({"--help"}).out)) {
    all.push_back({sub});
    for (const std::string& nested : Subcommands(RunFacesearch({sub, "--help"}).out)) all.push_back({sub, nested});
  }
  return all;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::string kCompletion = std::string(FACESEARCH_SOURCE_DIR) + "/data/completion/facesearch.bash";

// What _facesearch offers for the words typed so far (the last one being completed).
std::string Complete(const std::string& words, const std::string& cwd) {
  RunResult r = RunShell("source " + ShellQuote(kCompletion) + "\nCOMP_WORDS=(" + words +
                             ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n_facesearch\necho \"${COMPREPLY[*]}\"",
                         cwd);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

}  // namespace

TEST_CASE("Every subcommand's --help, nested ones too, ends with examples of that subcommand", "[help][cli]") {
  auto all = AllSubcommands();
  REQUIRE(all.size() >= 14);  // 12 subcommands and eval's two
  for (const auto& path : all) {
    std::vector<std::string> args = path;
    args.push_back("--help");
    RunResult help = RunFacesearch(args);
    const std::string name = path.back();
    INFO("facesearch " << path[0] << (path.size() > 1 ? " " + path[1] : "") << " --help");
    CHECK(help.exit_code == 0);
    const size_t examples = help.out.find("\nExamples:\n");
    REQUIRE(examples != std::string::npos);
    CHECK(help.out.find(" " + name, examples) != std::string::npos);  // an example runs this subcommand
    CHECK(help.out.find("\n  facesearch ", examples) != std::string::npos);
  }
}

TEST_CASE("The build generates a man page with every subcommand's help, and man renders it", "[help]") {
#ifndef FACESEARCH_MAN_PAGE
  SkipOrFailInCi("help2man", "it was not found when the build was configured, so no man page was generated "
                 "(scripts/setup-deps.sh installs it)");
#else
  const fs::path page = FACESEARCH_MAN_PAGE;
  REQUIRE(fs::exists(page));
  const std::string roff = Slurp(page);
  CHECK(roff.find(".TH FACESEARCH \"1\"") != std::string::npos);
  for (const auto& path : AllSubcommands())
    if (path.size() == 1) {
      INFO(path[0]);
      CHECK(roff.find(".SS \"facesearch " + path[0] + "\"") != std::string::npos);
    }
  if (!HaveProgram("man")) {
    SkipOrFailInCi("man", "the page was checked as text only, not rendered (scripts/setup-deps.sh installs man-db)");
    return;
  }
  RunResult man = RunShell("MANWIDTH=100 man -l " + ShellQuote(page.string()), page.parent_path().string());
  INFO(man.err);
  REQUIRE(man.exit_code == 0);
  CHECK(man.out.find("facesearch query --html report.html") != std::string::npos);
  CHECK(man.out.find("EXIT STATUS") != std::string::npos);
#endif
}

TEST_CASE("cmake --install puts the binary, the man page and the bash completion under the prefix", "[help]") {
  TempDir prefix;
  RunResult r = RunShell("cmake --install " + ShellQuote(FACESEARCH_BUILD_DIR) + " --prefix " +
                             ShellQuote(prefix.path().string()),
                         prefix.path().string());
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fs::exists(prefix / "bin/facesearch"));
  CHECK(Slurp(prefix / "share/bash-completion/completions/facesearch") == Slurp(kCompletion));
#ifdef FACESEARCH_MAN_PAGE
  CHECK(fs::exists(prefix / "share/man/man1/facesearch.1"));
#endif
  RunResult installed = RunShell(ShellQuote((prefix / "bin/facesearch").string()) + " --version", prefix.path().string());
  CHECK(installed.out.find("facesearch 0.") == 0);
}

TEST_CASE("The bash completion script loads and completes subcommands, options and their values", "[help]") {
  TempDir dir;
  std::ofstream(dir / "probe.jpg") << "x";
  fs::create_directories(dir / "chips");
  const std::string cwd = dir.path().string();
  CHECK(Complete("facesearch qu", cwd) == "query\n");
  CHECK(Complete("facesearch c", cwd) == "compare cluster config compact\n");
  CHECK(Complete("facesearch --corpus /tmp cl", cwd) == "cluster\n");
  CHECK(Complete("facesearch query --ht", cwd) == "--html\n");
  CHECK(Complete("facesearch cluster --min", cwd) == "--min-size\n");
  CHECK(Complete("facesearch eval lfw --pa", cwd) == "--pairs\n");
  CHECK(Complete("facesearch query --format c", cwd) == "csv\n");
  CHECK(Complete("facesearch query --detector ''", cwd) == "hog cnn yunet\n");
  CHECK(Complete("facesearch index --model ''", cwd) == "dlib sface\n");
  CHECK(Complete("facesearch query pro", cwd) == "probe.jpg\n");
  CHECK(Complete("facesearch faces --crop ch", cwd) == "chips\n");
  // Every option that `query --help` lists is offered.
  const std::string offered = Complete("facesearch query --", cwd);
  for (const char* option : {"--html", "--paths-only", "--from-file", "--null", "--top-k", "--max-fmr", "--face",
                             "--all-faces", "--format", "--detector", "--upsample"})
    CHECK(offered.find(std::string(option) + " ") != std::string::npos);
}
