// AVX2 + FMA kernels (compiled with -mavx2 -mfma; called only when the CPU has both). A row is
// 16 vectors of 8 floats, summed into 4 independent accumulators to hide the FMA latency.
#include <immintrin.h>

#include "search/l2_kernels_impl.h"

namespace facesearch::search::detail {
namespace {

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void L2SqrAvx2(const float* query, const float* rows, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const float* x = rows + i * kDim;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (size_t d = 0; d < kDim; d += 32) {
      for (int j = 0; j < 4; ++j) {
        const __m256 diff =
            _mm256_sub_ps(_mm256_loadu_ps(query + d + 8 * j), _mm256_loadu_ps(x + d + 8 * j));
        acc[j] = _mm256_fmadd_ps(diff, diff, acc[j]);
      }
    }
    out[i] = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),
                                         _mm256_add_ps(acc[2], acc[3])));
  }
}

void L2SqrU8Avx2(const float* q_shift, const float* scale, const uint8_t* codes, size_t n,
                 float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* c = codes + i * kDim;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (size_t d = 0; d < kDim; d += 32) {
      for (int j = 0; j < 4; ++j) {
        const size_t o = d + 8 * static_cast<size_t>(j);
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + o));
        const __m256 code = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
        // diff = q_shift - scale * code, in one fused rounding
        const __m256 diff =
            _mm256_fnmadd_ps(_mm256_loadu_ps(scale + o), code, _mm256_loadu_ps(q_shift + o));
        acc[j] = _mm256_fmadd_ps(diff, diff, acc[j]);
      }
    }
    out[i] = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),
                                         _mm256_add_ps(acc[2], acc[3])));
  }
}

}  // namespace

const Kernels kAvx2Kernels{"avx2", L2SqrAvx2, L2SqrU8Avx2};

}  // namespace facesearch::search::detail
