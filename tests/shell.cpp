#include "shell.h"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace facesearch::test {
namespace fs = std::filesystem;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool HaveProgram(const std::string& program) {
  return std::system(("command -v " + ShellQuote(program) + " >/dev/null 2>&1").c_str()) == 0;
}

RunResult RunShell(const std::string& script, const std::string& cwd,
                   const std::vector<std::pair<std::string, std::string>>& env) {
  TempDir tmp;
  std::string text = "set -o pipefail\ncd " + ShellQuote(cwd) + " || exit 99\nexport PATH=" +
                     ShellQuote(fs::path(FACESEARCH_BINARY).parent_path().string()) + ":\"$PATH\"\n";
  for (const auto& [name, value] : env) text += "export " + name + "=" + ShellQuote(value) + "\n";
  text += script + "\n";
  std::ofstream(tmp / "script.sh") << text;
  const std::string cmd = "bash " + ShellQuote((tmp / "script.sh").string()) + " </dev/null >" +
                          ShellQuote((tmp / "out").string()) + " 2>" + ShellQuote((tmp / "err").string());
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.out = slurp(tmp / "out");
  r.err = slurp(tmp / "err");
  return r;
}

}  // namespace facesearch::test
