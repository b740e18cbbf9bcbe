// AVX-512F/BW kernels (compiled with -mavx512f -mavx512bw -mfma; called only when the CPU has
// AVX-512F and AVX-512BW).
//
// Float: the query (8 registers of 16 floats) stays in registers for the whole scan; each row is
// summed into 2 accumulators; the row kPrefetchBytes ahead is prefetched.
// Codes: l2_codes_avx512.h with vpmaddwd + vpaddd.
#include <immintrin.h>

#include "search/l2_kernels_impl.h"

namespace facesearch::search::detail {
namespace {

#include "search/l2_codes_avx512.h"

struct MaddDot {
  static __m512i Acc(__m512i acc, __m512i diff) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(diff, diff));
  }
};

}  // namespace

void L2SqrAvx512(const float* query, const float* rows, size_t n, float* out) {
  __m512 q[8];
  for (int j = 0; j < 8; ++j) q[j] = _mm512_loadu_ps(query + 16 * j);
  for (size_t i = 0; i < n; ++i) {
    const float* x = rows + i * kDim;
    const char* ahead = reinterpret_cast<const char*>(x) + kPrefetchBytes;
    for (size_t line = 0; line < kDim * sizeof(float); line += 64)
      _mm_prefetch(ahead + line, _MM_HINT_T0);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int j = 0; j < 8; j += 2) {
      const __m512 d0 = _mm512_sub_ps(q[j], _mm512_loadu_ps(x + 16 * j));
      const __m512 d1 = _mm512_sub_ps(q[j + 1], _mm512_loadu_ps(x + 16 * j + 16));
      acc0 = _mm512_fmadd_ps(d0, d0, acc0);
      acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    out[i] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

const Kernels kAvx512Kernels{"avx512", L2SqrAvx512, L2SqrCodes512<MaddDot>};

}  // namespace facesearch::search::detail
