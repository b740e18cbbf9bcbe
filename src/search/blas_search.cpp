#include "search/blas_search.h"

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>

namespace facesearch::search {
namespace {

// Sets OpenBLAS to one thread for its lifetime (our threads split the rows instead). A no-op when
// the BLAS in use is not OpenBLAS.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    set_ = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (set_ && get) {
      saved_ = get();
      set_(1);
    }
  }
  ~SingleThreadedBlas() {
    if (set_ && saved_ > 0) set_(saved_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  SetFn set_ = nullptr;
  int saved_ = 0;
};

float SquaredNorm(const float* x) {
  float s = 0.f;
  for (size_t d = 0; d < kDim; ++d) s += x[d] * x[d];
  return s;
}

}  // namespace

std::vector<std::vector<Neighbor>> BlasSearchBatch(const FlatView& base, const float* queries,
                                                   size_t nq, int k, const ScanOptions& options) {
  std::vector<float> qnorm(nq);
  for (size_t q = 0; q < nq; ++q) qnorm[q] = SquaredNorm(queries + q * kDim);
  constexpr size_t kBlock = 2048;  // nq x 2048 products: 800 KiB for 100 queries, within L2
  ScanOptions scan = options;
  scan.block_rows = kBlock;

  auto dist = [&](size_t begin, size_t count, float* out) {
    const float* rows = base.rows + begin * kDim;
    // out = -2 * Q * X^T  (nq x count, row-major)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nq),
                static_cast<int>(count), static_cast<int>(kDim), -2.f, queries,
                static_cast<int>(kDim), rows, static_cast<int>(kDim), 0.f, out,
                static_cast<int>(count));
    float xn[kBlock];  // count <= kBlock
    for (size_t i = 0; i < count; ++i) xn[i] = SquaredNorm(rows + i * kDim);
    for (size_t q = 0; q < nq; ++q) {
      float* d = out + q * count;
      for (size_t i = 0; i < count; ++i) d[i] = std::max(0.f, d[i] + qnorm[q] + xn[i]);
    }
  };
  SingleThreadedBlas single;
  auto result = ScanTopK(base.n, nq, k, dist, scan);
  for (auto& hits : result) MapIds(base, hits);
  return result;
}

}  // namespace facesearch::search
