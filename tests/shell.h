// Running real shell pipelines in tests: `find ... | facesearch index ...`, jq, xargs, chromium.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "support.h"

namespace facesearch::test {

// Runs `script` with bash (-o pipefail) in `cwd`, stdin from /dev/null. PATH starts with the
// directory of the facesearch binary under test, so scripts call it as `facesearch`; `env` adds
// variables (name, value). stdout and stderr are captured.
RunResult RunShell(const std::string& script, const std::string& cwd,
                   const std::vector<std::pair<std::string, std::string>>& env = {});

// The script text for a single-quoted shell word.
std::string ShellQuote(const std::string& s);

// True when `program` is on PATH.
bool HaveProgram(const std::string& program);

}  // namespace facesearch::test
