// The kernel table shared by the per-ISA files. Kept free of standard-library templates on purpose:
// an inline function instantiated in a file compiled with -mavx512f could be the copy the linker
// keeps for the whole program, and would then crash on a CPU without AVX-512.
#pragma once

#include <cstddef>
#include <cstdint>

namespace facesearch::search {

inline constexpr size_t kDim = 128;  // == kEmbeddingDim; the kernels are unrolled for it

// The SIMD kernels prefetch (prefetcht0) the row this many bytes ahead of the one they read. The
// hardware prefetcher stops at every 4 KiB page boundary; a software prefetch does not (it also
// walks the page table early), which measured ~1.2x faster on a 1M-row float scan
// (docs/benchmarks.md). Prefetching past the end of the rows is harmless: prefetches never fault.
inline constexpr size_t kPrefetchBytes = 8192;

// out[i] = squared L2 distance between `query` (kDim floats) and row i of `rows` (n rows of kDim
// floats, row-major, contiguous; no alignment required). n may be 0.
using L2SqrFn = void (*)(const float* query, const float* rows, size_t n, float* out);

// Integer squared L2 between 8-bit codes (Int8Index: one global step, so that the distance between
// two code vectors is a plain sum of squared code differences): out[i] = sum_d (query[d] -
// codes[i*kDim + d])^2, summed exactly in 32-bit integers and stored as float, which is exact too
// (at most 128 * 255^2 < 2^24). Every kernel set returns bit-identical results. n may be 0.
using L2SqrCodesFn = void (*)(const uint8_t* query, const uint8_t* codes, size_t n, float* out);

struct Kernels {
  const char* name;  // "scalar", "avx2", "avx512", "avx512vnni"
  L2SqrFn l2sqr;
  L2SqrCodesFn l2sqr_codes;
};

namespace detail {
extern const Kernels kScalarKernels;
#if defined(FACESEARCH_X86_KERNELS)
extern const Kernels kAvx2Kernels;        // needs AVX2 + FMA
extern const Kernels kAvx512Kernels;      // needs AVX-512F + AVX-512BW (+ FMA)
extern const Kernels kAvx512VnniKernels;  // needs the above + AVX-512 VNNI
// The AVX-512F float kernel, shared by the two AVX-512 sets (defined in l2_kernels_avx512.cpp).
void L2SqrAvx512(const float* query, const float* rows, size_t n, float* out);
#endif
}  // namespace detail

}  // namespace facesearch::search
