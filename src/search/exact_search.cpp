#include "search/exact_search.h"

#include <algorithm>

namespace facesearch::search {

void MapIds(const FlatView& base, std::vector<Neighbor>& hits) {
  if (!base.ids) return;
  for (Neighbor& h : hits) h.id = base.ids[h.id];
}

std::vector<std::vector<Neighbor>> ExactSearchBatch(const FlatView& base, const float* queries,
                                                    size_t nq, int k,
                                                    const ExactOptions& options) {
  const Kernels& kernels = options.kernels ? *options.kernels : BestKernels();
  ScanOptions scan = options.scan;
  // Keep a block of rows in L2 while every query passes over it (256 rows = 128 KiB).
  if (nq > 1) scan.block_rows = std::min<size_t>(scan.block_rows, 256);
  auto dist = [&](size_t begin, size_t count, float* out) {
    const float* rows = base.rows + begin * kDim;
    for (size_t q = 0; q < nq; ++q) kernels.l2sqr(queries + q * kDim, rows, count, out + q * count);
  };
  auto result = ScanTopK(base.n, nq, k, dist, scan);
  for (auto& hits : result) MapIds(base, hits);
  return result;
}

std::vector<Neighbor> ExactSearch(const FlatView& base, const float* query, int k,
                                  const ExactOptions& options) {
  return std::move(ExactSearchBatch(base, query, 1, k, options).front());
}

}  // namespace facesearch::search
