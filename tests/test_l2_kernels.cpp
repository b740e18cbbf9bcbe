// The SIMD kernels against the scalar reference (in the style of FAISS's test_distances_simd.cpp):
// integer-valued data, where every partial sum is an exactly representable integer, must give
// bit-identical results in any summation order; random data must agree within rounding. The
// integer code kernels must equal the reference exactly on any bytes. Every row count around the
// vector widths and row blocks (8 and 16) and every unaligned start is covered. Every set this CPU
// can run is tested, so an AVX-512 machine tests the AVX2 set too.
#include "search/l2_kernels.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using namespace facesearch::search;

namespace {

const std::vector<size_t> kCounts = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100};
constexpr size_t kMaxOffset = 17;  // start offsets 0..16 elements: every alignment mod 64 bytes

// Kernels other than the reference that this CPU can run; warns about compiled ones it cannot.
std::vector<const Kernels*> SimdKernels() {
  std::vector<const Kernels*> simd;
  for (const Kernels* k : SupportedKernels())
    if (std::string(k->name) != "scalar") simd.push_back(k);
#if defined(FACESEARCH_X86_KERNELS)
  for (const char* name : {"avx2", "avx512"})
    if (!KernelsNamed(name)) WARN("kernel set " << name << " not tested: this CPU cannot run it");
#endif
  return simd;
}

template <class T, class Gen>
std::vector<T> Fill(size_t count, Gen&& gen) {
  std::vector<T> v(count);
  for (T& x : v) x = static_cast<T>(gen());
  return v;
}

}  // namespace

TEST_CASE("The dispatcher offers the scalar reference first and picks a supported set",
          "[search][kernels]") {
  const auto supported = SupportedKernels();
  REQUIRE(!supported.empty());
  CHECK(std::string(supported.front()->name) == "scalar");
  CHECK(&ScalarKernels() == supported.front());
  CHECK(KernelsNamed("scalar") == &ScalarKernels());
  CHECK(KernelsNamed("no-such-isa") == nullptr);
  bool best_is_supported = false;
  for (const Kernels* k : supported) best_is_supported |= (k == &BestKernels());
  CHECK(best_is_supported);
}

TEST_CASE("Float L2 kernels equal the scalar reference exactly on integer data at every count "
          "and offset", "[search][kernels]") {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> small(-8, 8);
  const size_t max_rows = kCounts.back();
  const auto rows = Fill<float>((max_rows + 1) * kDim + kMaxOffset, [&] { return small(rng); });
  const auto query = Fill<float>(kDim + kMaxOffset, [&] { return small(rng); });
  for (const Kernels* k : SimdKernels()) {
    for (size_t n : kCounts) {
      for (size_t off = 0; off < kMaxOffset; ++off) {
        INFO(k->name << " n=" << n << " offset=" << off);
        std::vector<float> want(n + 1, -1.f), got(n + 1, -1.f);
        ScalarKernels().l2sqr(query.data() + off, rows.data() + off, n, want.data());
        k->l2sqr(query.data() + off, rows.data() + off, n, got.data());
        CHECK(got == want);  // includes the sentinel after the last row: nothing written past n
      }
    }
  }
}

TEST_CASE("Float L2 kernels match the scalar reference within rounding on random data",
          "[search][kernels]") {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.f, 0.1f);
  const size_t n = 257;
  const auto rows = Fill<float>(n * kDim + kMaxOffset, [&] { return normal(rng); });
  const auto query = Fill<float>(kDim + kMaxOffset, [&] { return normal(rng); });
  for (const Kernels* k : SimdKernels()) {
    for (size_t off : {size_t{0}, size_t{1}, size_t{3}, size_t{8}}) {
      std::vector<float> want(n), got(n);
      ScalarKernels().l2sqr(query.data() + off, rows.data() + off, n, want.data());
      k->l2sqr(query.data() + off, rows.data() + off, n, got.data());
      for (size_t i = 0; i < n; ++i) {
        INFO(k->name << " row " << i << " offset " << off);
        CHECK(got[i] == Approx(want[i]).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("The scalar code kernel sums squared code differences exactly up to the largest "
          "possible distance", "[search][kernels]") {
  std::vector<uint8_t> query(kDim, 0), rows(3 * kDim, 0);
  for (size_t d = 0; d < kDim; ++d) {
    rows[kDim + d] = 255;                              // row 1: 255 in every dimension
    rows[2 * kDim + d] = static_cast<uint8_t>(d % 7);  // row 2: 0..6 repeating
  }
  int32_t want2 = 0;
  for (size_t d = 0; d < kDim; ++d) want2 += static_cast<int32_t>((d % 7) * (d % 7));
  std::vector<float> out(3, -1.f);
  ScalarKernels().l2sqr_codes(query.data(), rows.data(), 3, out.data());
  CHECK(out[0] == 0.f);
  CHECK(out[1] == 128.f * 255 * 255);  // 8,323,200 < 2^24: exact as a float
  CHECK(out[2] == static_cast<float>(want2));
}

TEST_CASE("Integer code kernels equal the scalar reference exactly over the full byte range at "
          "every count and offset", "[search][kernels]") {
  // Counts around the 8- and 16-row blocks of the SIMD kernels and their one-row tails.
  std::vector<size_t> counts = kCounts;
  for (size_t n : {47, 48, 49, 95, 96, 97, 129}) counts.push_back(n);
  const size_t max_rows = 129;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  auto codes = Fill<uint8_t>((max_rows + 1) * kDim + kMaxOffset, [&] { return byte(rng); });
  auto query = Fill<uint8_t>(kDim + kMaxOffset, [&] { return byte(rng); });
  // Extremes: the largest differences both ways (255 - 0 and 0 - 255) in the first rows.
  for (size_t d = 0; d < kDim + kMaxOffset; ++d) {
    codes[d] = 255;
    codes[kDim + d] = 0;
    query[d] = d % 2 ? 0 : 255;
  }
  for (const Kernels* k : SimdKernels()) {
    for (size_t n : counts) {
      for (size_t off = 0; off < kMaxOffset; ++off) {
        INFO(k->name << " n=" << n << " offset=" << off);
        std::vector<float> want(n + 1, -1.f), got(n + 1, -1.f);
        ScalarKernels().l2sqr_codes(query.data() + off, codes.data() + off, n, want.data());
        k->l2sqr_codes(query.data() + off, codes.data() + off, n, got.data());
        CHECK(got == want);  // includes the sentinel after the last row: nothing written past n
      }
    }
  }
}

TEST_CASE("SupportedKernels lists every compiled set this CPU can run from slowest to fastest",
          "[search][kernels]") {
  std::vector<std::string> names;
  for (const Kernels* k : SupportedKernels()) names.push_back(k->name);
#if defined(FACESEARCH_X86_KERNELS)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("fma");
  const bool vnni = avx512 && __builtin_cpu_supports("avx512vnni");
  std::vector<std::string> want = {"scalar"};
  if (avx2) want.push_back("avx2");
  if (avx512) want.push_back("avx512");
  if (vnni) want.push_back("avx512vnni");
  CHECK(names == want);
  if (vnni) CHECK(std::string(KernelsNamed("avx512vnni")->name) == "avx512vnni");
#else
  CHECK(names == std::vector<std::string>{"scalar"});
#endif
  for (const auto& name : names) CHECK(KernelsNamed(name) != nullptr);
}
