// Distance kernels for 128-d embeddings, chosen at run time by the CPU's features.
//
// Each instruction set lives in its own file compiled with its own flags (CMakeLists.txt:
// l2_kernels_avx2.cpp with -mavx2 -mfma, l2_kernels_avx512.cpp with -mavx512f -mavx512bw,
// l2_kernels_avx512vnni.cpp with VNNI too); this file's functions pick among them with
// __builtin_cpu_supports, so a binary built here runs on any x86-64.
// The scalar set is the reference every other set is tested against (tests/test_l2_kernels.cpp).
//
// Thread-safety: every kernel is a pure function of its arguments; call from any thread.
#pragma once

#include <string_view>
#include <vector>

#include "search/l2_kernels_impl.h"

namespace facesearch::search {

// The scalar reference; always available.
const Kernels& ScalarKernels();

// Every set compiled into this binary that this CPU can run, scalar first, fastest last.
std::vector<const Kernels*> SupportedKernels();

// The fastest supported set, unless the environment variable FACESEARCH_SIMD names another
// supported one ("scalar", "avx2", "avx512", "avx512vnni"): used by benchmarks and to rule out a kernel when
// debugging. Decided once per process.
const Kernels& BestKernels();

// The named set, or nullptr when it is not compiled in or this CPU cannot run it.
const Kernels* KernelsNamed(std::string_view name);

}  // namespace facesearch::search
