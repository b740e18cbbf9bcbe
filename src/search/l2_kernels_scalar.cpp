// The scalar reference kernels: plain loops, one rounding per operation in index order. Compiled
// with -ffp-contract=off (CMakeLists.txt) so that the compiler does not fuse them into FMAs.
#include "search/l2_kernels_impl.h"

namespace facesearch::search::detail {
namespace {

void L2SqrScalar(const float* query, const float* rows, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const float* x = rows + i * kDim;
    float sum = 0.f;
    for (size_t d = 0; d < kDim; ++d) {
      const float diff = query[d] - x[d];
      sum += diff * diff;
    }
    out[i] = sum;
  }
}

void L2SqrCodesScalar(const uint8_t* query, const uint8_t* codes, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* c = codes + i * kDim;
    int32_t sum = 0;
    for (size_t d = 0; d < kDim; ++d) {
      const int32_t diff = int32_t{query[d]} - int32_t{c[d]};
      sum += diff * diff;
    }
    out[i] = static_cast<float>(sum);
  }
}

}  // namespace

const Kernels kScalarKernels{"scalar", L2SqrScalar, L2SqrCodesScalar};

}  // namespace facesearch::search::detail
