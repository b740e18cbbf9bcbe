// Exact k-NN for a batch of queries through BLAS (cblas_sgemm):
//   ||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x,
// one matrix product per block of rows. Worth it from a few queries up; for one query the SIMD
// scan (exact_search.h) is faster. The expansion loses precision for near-identical vectors
// (cancellation), so distances are clamped at 0 and may differ from ExactSearch by ~1e-6
// relative to ||q||^2 + ||x||^2; near-ties may then rank differently.
//
// Ownership/threads: borrows `base` for the call. Each of our scan threads calls a
// single-threaded sgemm: while it runs, OpenBLAS's own thread count is set to 1 (and restored
// afterwards), so do not run it concurrently with other BLAS users in the process.
#pragma once

#include <vector>

#include "search/exact_search.h"

namespace facesearch::search {

std::vector<std::vector<Neighbor>> BlasSearchBatch(const FlatView& base, const float* queries,
                                                   size_t nq, int k,
                                                   const ScanOptions& options = {});

}  // namespace facesearch::search
