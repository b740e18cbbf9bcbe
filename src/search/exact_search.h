// Exact k-nearest-neighbour search over a contiguous float matrix with our SIMD kernels.
//
// The matrix is borrowed (FlatView): it must stay alive and unchanged during a call. Calls are
// independent and may run concurrently; each call starts its own threads (ScanOptions::threads).
#pragma once

#include <cstdint>
#include <vector>

#include "search/l2_kernels.h"
#include "search/topk_scan.h"

namespace facesearch::search {

// n rows of kDim floats, row-major and contiguous; ids[i] names row i (nullptr: the row number).
struct FlatView {
  const float* rows = nullptr;
  const int64_t* ids = nullptr;
  size_t n = 0;
};

struct ExactOptions {
  ScanOptions scan;
  const Kernels* kernels = nullptr;  // nullptr: BestKernels()
};

// The (up to) k nearest rows to `query` (kDim floats), nearest first, with squared distances and
// the view's ids. Empty for k <= 0 or an empty view. Throws only std::bad_alloc.
std::vector<Neighbor> ExactSearch(const FlatView& base, const float* query, int k,
                                  const ExactOptions& options = {});

// The same for nq queries (row-major, nq * kDim floats) in one pass over the matrix: each block of
// rows is loaded once and compared with every query while it is in cache.
std::vector<std::vector<Neighbor>> ExactSearchBatch(const FlatView& base, const float* queries,
                                                    size_t nq, int k,
                                                    const ExactOptions& options = {});

// Replaces row numbers by the view's ids (no-op when base.ids is null).
void MapIds(const FlatView& base, std::vector<Neighbor>& hits);

}  // namespace facesearch::search
