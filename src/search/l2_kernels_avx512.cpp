// AVX-512F kernels (compiled with -mavx512f -mfma; called only when the CPU has AVX-512F). The
// query (8 registers of 16 floats) stays in registers for the whole scan; each row is summed into
// 2 accumulators.
#include <immintrin.h>

#include "search/l2_kernels_impl.h"

namespace facesearch::search::detail {
namespace {

void L2SqrAvx512(const float* query, const float* rows, size_t n, float* out) {
  __m512 q[8];
  for (int j = 0; j < 8; ++j) q[j] = _mm512_loadu_ps(query + 16 * j);
  for (size_t i = 0; i < n; ++i) {
    const float* x = rows + i * kDim;
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

void L2SqrU8Avx512(const float* q_shift, const float* scale, const uint8_t* codes, size_t n,
                   float* out) {
  __m512 q[8], s[8];
  for (int j = 0; j < 8; ++j) {
    q[j] = _mm512_loadu_ps(q_shift + 16 * j);
    s[j] = _mm512_loadu_ps(scale + 16 * j);
  }
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* c = codes + i * kDim;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int j = 0; j < 8; j += 2) {
      const __m128i b0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16 * j));
      const __m128i b1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16 * j + 16));
      const __m512 d0 = _mm512_fnmadd_ps(s[j], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b0)), q[j]);
      const __m512 d1 =
          _mm512_fnmadd_ps(s[j + 1], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b1)), q[j + 1]);
      acc0 = _mm512_fmadd_ps(d0, d0, acc0);
      acc1 = _mm512_fmadd_ps(d1, d1, acc1);
    }
    out[i] = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  }
}

}  // namespace

const Kernels kAvx512Kernels{"avx512", L2SqrAvx512, L2SqrU8Avx512};

}  // namespace facesearch::search::detail
