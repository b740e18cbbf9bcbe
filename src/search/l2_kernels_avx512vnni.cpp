// AVX-512 VNNI kernels (compiled with -mavx512f -mavx512bw -mavx512vnni; called only when the CPU
// has all three). Float: the AVX-512F kernel of l2_kernels_avx512.cpp. Codes: l2_codes_avx512.h
// with vpdpwssd, which squares, pair-sums and accumulates in one instruction.
#include <immintrin.h>

#include "search/l2_kernels_impl.h"

namespace facesearch::search::detail {
namespace {

#include "search/l2_codes_avx512.h"

struct VnniDot {
  static __m512i Acc(__m512i acc, __m512i diff) { return _mm512_dpwssd_epi32(acc, diff, diff); }
};

}  // namespace

const Kernels kAvx512VnniKernels{"avx512vnni", L2SqrAvx512, L2SqrCodes512<VnniDot>};

}  // namespace facesearch::search::detail
