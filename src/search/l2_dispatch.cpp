// Run-time choice among the compiled kernel sets (compiled with the project's baseline flags).
#include <cstdlib>
#include <string_view>

#include "search/l2_kernels.h"

namespace facesearch::search {
namespace {

bool CpuRuns(const Kernels& k) {
  const std::string_view name = k.name;
  if (name == "scalar") return true;
#if defined(FACESEARCH_X86_KERNELS)
  __builtin_cpu_init();
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("fma");
  if (name == "avx512") return avx512;
  if (name == "avx512vnni") return avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  return false;
}

}  // namespace

const Kernels& ScalarKernels() { return detail::kScalarKernels; }

std::vector<const Kernels*> SupportedKernels() {
  std::vector<const Kernels*> all = {&detail::kScalarKernels};
#if defined(FACESEARCH_X86_KERNELS)
  all.push_back(&detail::kAvx2Kernels);
  all.push_back(&detail::kAvx512Kernels);
  all.push_back(&detail::kAvx512VnniKernels);
#endif
  std::vector<const Kernels*> supported;
  for (const Kernels* k : all)
    if (CpuRuns(*k)) supported.push_back(k);
  return supported;
}

const Kernels* KernelsNamed(std::string_view name) {
  for (const Kernels* k : SupportedKernels())
    if (name == k->name) return k;
  return nullptr;
}

const Kernels& BestKernels() {
  static const Kernels* const best = [] {
    if (const char* forced = std::getenv("FACESEARCH_SIMD"))
      if (const Kernels* k = KernelsNamed(forced)) return k;
    return SupportedKernels().back();
  }();
  return *best;
}

}  // namespace facesearch::search
