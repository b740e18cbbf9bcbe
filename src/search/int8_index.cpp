#include "search/int8_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <system_error>
#include <thread>

namespace facesearch::search {

Int8Index Int8Index::Build(const FlatView& base, int threads) {
  Int8Index index;
  index.base_ = base;
  std::vector<float> lo(kDim, std::numeric_limits<float>::infinity());
  std::vector<float> hi(kDim, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < base.n; ++i) {
    const float* x = base.rows + i * kDim;
    for (size_t d = 0; d < kDim; ++d) {
      lo[d] = std::min(lo[d], x[d]);
      hi[d] = std::max(hi[d], x[d]);
    }
  }
  index.offset_.assign(kDim, 0.f);
  index.scale_.assign(kDim, 1.f);
  for (size_t d = 0; d < kDim && base.n > 0; ++d) {
    index.offset_[d] = lo[d];
    // A constant dimension keeps scale 1 and code 0: decoded exactly.
    if (hi[d] > lo[d]) index.scale_[d] = (hi[d] - lo[d]) / 255.f;
  }

  index.codes_.resize(base.n * kDim);
  const int nt = ScanThreads(base.n, threads);
  auto encode = [&](size_t t) {
    const size_t begin = base.n * t / nt, end = base.n * (t + 1) / nt;
    for (size_t i = begin; i < end; ++i) {
      for (size_t d = 0; d < kDim; ++d) {
        const float c = std::nearbyint((base.rows[i * kDim + d] - index.offset_[d]) / index.scale_[d]);
        index.codes_[i * kDim + d] = static_cast<uint8_t>(std::clamp(c, 0.f, 255.f));
      }
    }
  };
  std::vector<std::thread> workers;
  for (int t = 1; t < nt; ++t) {
    try {
      workers.emplace_back(encode, t);
    } catch (const std::system_error&) {
      encode(t);
    }
  }
  encode(0);
  for (auto& w : workers) w.join();
  return index;
}

std::vector<std::vector<Neighbor>> Int8Index::SearchBatch(const float* queries, size_t nq, int k,
                                                          int rerank,
                                                          const ExactOptions& options) const {
  std::vector<std::vector<Neighbor>> result(nq);
  if (k <= 0 || base_.n == 0) return result;
  const Kernels& kernels = options.kernels ? *options.kernels : BestKernels();
  std::vector<float> shifted(nq * kDim);
  for (size_t q = 0; q < nq; ++q)
    for (size_t d = 0; d < kDim; ++d) shifted[q * kDim + d] = queries[q * kDim + d] - offset_[d];

  ScanOptions scan = options.scan;
  if (nq > 1) scan.block_rows = std::min<size_t>(scan.block_rows, 1024);
  auto dist = [&](size_t begin, size_t count, float* out) {
    const uint8_t* codes = codes_.data() + begin * kDim;
    for (size_t q = 0; q < nq; ++q)
      kernels.l2sqr_u8(shifted.data() + q * kDim, scale_.data(), codes, count, out + q * count);
  };
  const int candidates = std::max(rerank, k);
  auto coarse = ScanTopK(base_.n, nq, candidates, dist, scan);

  // Exact re-rank: candidate rows are scattered, so one row at a time.
  for (size_t q = 0; q < nq; ++q) {
    TopK best(static_cast<size_t>(k));
    for (const Neighbor& c : coarse[q]) {
      float d2 = 0.f;
      kernels.l2sqr(queries + q * kDim, base_.rows + static_cast<size_t>(c.id) * kDim, 1, &d2);
      best.Push(c.id, d2);
    }
    result[q] = best.TakeSorted();
    MapIds(base_, result[q]);
  }
  return result;
}

std::vector<Neighbor> Int8Index::Search(const float* query, int k, int rerank,
                                        const ExactOptions& options) const {
  return std::move(SearchBatch(query, 1, k, rerank, options).front());
}

}  // namespace facesearch::search
