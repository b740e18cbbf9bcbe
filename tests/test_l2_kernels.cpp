// The SIMD kernels against the scalar reference (in the style of FAISS's test_distances_simd.cpp):
// integer-valued data, where every partial sum is an exactly representable integer, must give
// bit-identical results in any summation order; random data must agree within rounding. Every row
// count around the vector widths (8 and 16 floats) and every unaligned start is covered.
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

TEST_CASE("Int8 L2 kernels equal the scalar reference exactly on integer data over the full "
          "byte range, at every count and offset", "[search][kernels]") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  const size_t max_rows = kCounts.back();
  auto codes = Fill<uint8_t>((max_rows + 1) * kDim + kMaxOffset, [&] { return byte(rng); });
  codes[0] = 255;  // make sure the top bit is exercised at the very start (zero extension)
  const auto q_shift = Fill<float>(kDim + kMaxOffset, [&] { return byte(rng); });
  const std::vector<float> scale(kDim + kMaxOffset, 1.f);  // products and sums stay exact
  for (const Kernels* k : SimdKernels()) {
    for (size_t n : kCounts) {
      for (size_t off = 0; off < kMaxOffset; ++off) {
        INFO(k->name << " n=" << n << " offset=" << off);
        std::vector<float> want(n + 1, -1.f), got(n + 1, -1.f);
        ScalarKernels().l2sqr_u8(q_shift.data() + off, scale.data() + off, codes.data() + off, n,
                                 want.data());
        k->l2sqr_u8(q_shift.data() + off, scale.data() + off, codes.data() + off, n, got.data());
        CHECK(got == want);
      }
    }
  }
}

TEST_CASE("Int8 L2 kernels match the scalar reference within rounding with real-valued scales",
          "[search][kernels]") {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const size_t n = 129;
  const auto codes = Fill<uint8_t>(n * kDim + 5, [&] { return byte(rng); });
  const auto q_shift = Fill<float>(kDim, [&] { return 0.6f * unit(rng); });
  const auto scale = Fill<float>(kDim, [&] { return 0.001f + 0.003f * unit(rng); });
  for (const Kernels* k : SimdKernels()) {
    std::vector<float> want(n), got(n);
    ScalarKernels().l2sqr_u8(q_shift.data(), scale.data(), codes.data() + 5, n, want.data());
    k->l2sqr_u8(q_shift.data(), scale.data(), codes.data() + 5, n, got.data());
    for (size_t i = 0; i < n; ++i) {
      INFO(k->name << " row " << i);
      CHECK(got[i] == Approx(want[i]).epsilon(1e-5));
    }
  }
}
