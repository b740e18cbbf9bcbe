// The kernel table shared by the per-ISA files. Kept free of standard-library templates on purpose:
// an inline function instantiated in a file compiled with -mavx512f could be the copy the linker
// keeps for the whole program, and would then crash on a CPU without AVX-512.
#pragma once

#include <cstddef>
#include <cstdint>

namespace facesearch::search {

inline constexpr size_t kDim = 128;  // == kEmbeddingDim; the kernels are unrolled for it

// out[i] = squared L2 distance between `query` (kDim floats) and row i of `rows` (n rows of kDim
// floats, row-major, contiguous; no alignment required). n may be 0.
using L2SqrFn = void (*)(const float* query, const float* rows, size_t n, float* out);

// The same against 8-bit codes: row i decodes to x[d] = offset[d] + scale[d] * codes[i*kDim + d].
// The caller passes q_shift[d] = query[d] - offset[d], so out[i] = sum_d (q_shift[d] -
// scale[d] * code[d])^2, the exact squared distance to the decoded row up to float rounding.
using L2SqrU8Fn = void (*)(const float* q_shift, const float* scale, const uint8_t* codes,
                           size_t n, float* out);

struct Kernels {
  const char* name;  // "scalar", "avx2", "avx512"
  L2SqrFn l2sqr;
  L2SqrU8Fn l2sqr_u8;
};

namespace detail {
extern const Kernels kScalarKernels;
#if defined(FACESEARCH_X86_KERNELS)
extern const Kernels kAvx2Kernels;    // needs AVX2 + FMA
extern const Kernels kAvx512Kernels;  // needs AVX-512F
#endif
}  // namespace detail

}  // namespace facesearch::search
