// The AVX-512 integer code kernel's body, shared by l2_kernels_avx512.cpp (AVX-512BW: vpmaddwd +
// vpaddd) and l2_kernels_avx512vnni.cpp (VNNI: vpdpwssd, both in one instruction). Include it only
// inside an anonymous namespace of a file compiled with at least -mavx512f -mavx512bw, so that its
// functions have internal linkage and can never be the copy another file's code calls.
//
// The query's 128 codes are widened once to 4 vectors of 32 int16. Each row: 4 x (vpmovzxbw 32
// bytes, vpsubw, square and pair-sum into int32 through Dot). Sixteen rows are reduced together
// into one vector of 16 sums (4 levels of unpack/shuffle and add, ~3 instructions a row, instead
// of a full horizontal reduction per row). Each row's 2 cache lines kPrefetchBytes ahead are
// prefetched.
#pragma once

#include <immintrin.h>

#include "search/l2_kernels_impl.h"

constexpr int kCodeVecs512 = kDim / 32;

// Dot::Acc(acc, diff) returns acc + the pairwise sums of diff*diff (int16 -> int32).
template <class Dot>
inline __m512i RowCodes512(const __m512i* q, const uint8_t* c) {
  _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes, _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes + 64, _MM_HINT_T0);
  __m512i acc = _mm512_setzero_si512();
  for (int j = 0; j < kCodeVecs512; ++j) {
    const __m512i x =
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 32 * j)));
    acc = Dot::Acc(acc, _mm512_sub_epi16(x, q[j]));
  }
  return acc;
}

// [a0+a2.., b..] per 128-bit lane: lanes 0 and 2 of each 128-bit lane hold a's partial sums, lanes
// 1 and 3 hold b's.
inline __m512i Fold32(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}
// Two Fold32 results (rows r, r+1 and r+2, r+3): each 128-bit lane holds [r, r+1, r+2, r+3]'s sums
// over that lane's part.
inline __m512i Fold64(__m512i ab, __m512i cd) {
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}
// Adds 128-bit lanes pairwise: result lanes [x0+x1, x2+x3, y0+y1, y2+y3].
inline __m512i Fold128(__m512i x, __m512i y) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

template <class Dot>
void L2SqrCodes512(const uint8_t* query, const uint8_t* codes, size_t n, float* out) {
  __m512i q[kCodeVecs512];
  for (int j = 0; j < kCodeVecs512; ++j)
    q[j] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(query + 32 * j)));
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint8_t* c = codes + i * kDim;
    __m512i quad[4];  // quad[g]: rows 4g..4g+3, each 128-bit lane one partial sum per row
    for (int g = 0; g < 4; ++g) {
      const uint8_t* r = c + 4 * g * kDim;
      quad[g] = Fold64(Fold32(RowCodes512<Dot>(q, r), RowCodes512<Dot>(q, r + kDim)),
                       Fold32(RowCodes512<Dot>(q, r + 2 * kDim), RowCodes512<Dot>(q, r + 3 * kDim)));
    }
    // Fold128(quad0, quad1) lanes: [rows 0-3 lanes 0+1, rows 0-3 lanes 2+3, rows 4-7 ..., ...];
    // once more across the two halves: [rows 0-3, rows 4-7, rows 8-11, rows 12-15], in order.
    const __m512i sums = Fold128(Fold128(quad[0], quad[1]), Fold128(quad[2], quad[3]));
    _mm512_storeu_ps(out + i, _mm512_cvtepi32_ps(sums));
  }
  for (; i < n; ++i)
    out[i] = static_cast<float>(_mm512_reduce_add_epi32(RowCodes512<Dot>(q, codes + i * kDim)));
}
