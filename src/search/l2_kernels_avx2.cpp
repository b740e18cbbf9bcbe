// AVX2 + FMA kernels (compiled with -mavx2 -mfma; called only when the CPU has both).
//
// Float: a row is 16 vectors of 8 floats, summed into 4 independent accumulators to hide the FMA
// latency; the row kPrefetchBytes ahead is prefetched.
// Codes: the query's 128 codes are widened once to 8 vectors of 16 int16; each row's bytes are
// widened 16 at a time (vpmovzxbw), subtracted (vpsubw: |difference| <= 255 fits in int16),
// squared and pair-summed into int32 (vpmaddwd, at most 2 * 255^2), then added. Eight rows are
// reduced together (vphaddd twice and one 128-bit swap) into one vector of 8 sums. Each row's
// 2 cache lines kPrefetchBytes ahead are prefetched.
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
    const char* ahead = reinterpret_cast<const char*>(x) + kPrefetchBytes;
    for (size_t line = 0; line < kDim * sizeof(float); line += 64)
      _mm_prefetch(ahead + line, _MM_HINT_T0);
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

constexpr int kCodeVecs = kDim / 16;  // 8 vectors of 16 int16 per row

// 8 int32 partial sums of the squared differences between one row of codes and the query.
inline __m256i RowCodes(const __m256i* q, const uint8_t* c) {
  _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes + 64, _MM_HINT_T0);
  __m256i acc = _mm256_setzero_si256();
  for (int j = 0; j < kCodeVecs; ++j) {
    const __m256i x =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c + 16 * j)));
    const __m256i diff = _mm256_sub_epi16(x, q[j]);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(diff, diff));
  }
  return acc;
}

inline int32_t HorizontalSumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

void L2SqrCodesAvx2(const uint8_t* query, const uint8_t* codes, size_t n, float* out) {
  __m256i q[kCodeVecs];
  for (int j = 0; j < kCodeVecs; ++j)
    q[j] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query + 16 * j)));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint8_t* c = codes + i * kDim;
    __m256i a[8];
    for (int r = 0; r < 8; ++r) a[r] = RowCodes(q, c + r * kDim);
    // hadd(x, y) per 128-bit half: [x0+x1, x2+x3, y0+y1, y2+y3]. Twice: each half holds rows
    // r..r+3's sums over that half; adding the two halves gives the full sums.
    const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]),
                                            _mm256_hadd_epi32(a[2], a[3]));
    const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]),
                                            _mm256_hadd_epi32(a[6], a[7]));
    const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                          _mm256_permute2x128_si256(h0123, h4567, 0x31));
    _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(sums));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(HorizontalSumI32(RowCodes(q, codes + i * kDim)));
}

}  // namespace

const Kernels kAvx2Kernels{"avx2", L2SqrAvx2, L2SqrCodesAvx2};

}  // namespace facesearch::search::detail
