// The CPU time of the calling thread, for per-stage profiles that a busy machine does not inflate.
#pragma once

#include <ctime>

namespace facesearch {

inline double ThreadCpuSeconds() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace facesearch
