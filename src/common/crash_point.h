// A test hook for crash safety at each step: with FACESEARCH_TEST_CRASH_AT=<name> in the
// environment, the process kills itself with SIGKILL (as `kill -9` would) when it reaches the
// step of that name. Without the variable it costs one getenv. Steps: "index-saved" (an index
// file written or appended, its record not yet committed), "index-scrubbed" (an erasure's faces
// scrubbed from the index file, the erasure not yet committed), "erasure-committed" (committed,
// the index not yet recorded again).
#pragma once

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace facesearch {

inline void CrashPoint(const char* step) {
  const char* at = std::getenv("FACESEARCH_TEST_CRASH_AT");
  if (at && std::strcmp(at, step) == 0) ::raise(SIGKILL);
}

}  // namespace facesearch
