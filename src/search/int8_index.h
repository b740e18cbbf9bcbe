// A compact copy of a float matrix: 8 bits per dimension with a per-dimension offset and scale
// (x ≈ offset[d] + scale[d] * code), 4x smaller than float32. Search scans the codes for the
// `rerank` nearest candidates, then re-ranks those with exact float distances on the original rows,
// so the distances it returns are exact and only the candidate choice is approximate.
//
// Ownership: borrows the FlatView it was built from (rows and ids), which must outlive the index
// and stay unchanged. Thread-safety: const methods may be called concurrently.
#pragma once

#include <cstdint>
#include <vector>

#include "search/exact_search.h"

namespace facesearch::search {

class Int8Index {
 public:
  // Trains offset/scale on the per-dimension min and max of every row, then encodes the rows
  // (on `threads` threads; 0 = hardware threads). Throws only std::bad_alloc.
  static Int8Index Build(const FlatView& base, int threads = 0);

  // Up to k nearest rows, nearest first, exact squared distances, the view's ids. The code scan
  // keeps max(rerank, k) candidates for the exact re-rank. Empty for k <= 0 or an empty index.
  std::vector<Neighbor> Search(const float* query, int k, int rerank,
                               const ExactOptions& options = {}) const;
  // The same for nq queries (row-major), the codes read once for all of them.
  std::vector<std::vector<Neighbor>> SearchBatch(const float* queries, size_t nq, int k,
                                                 int rerank, const ExactOptions& options = {}) const;

  size_t code_bytes() const { return codes_.size(); }
  const std::vector<float>& offset() const { return offset_; }
  const std::vector<float>& scale() const { return scale_; }
  const uint8_t* codes() const { return codes_.data(); }

 private:
  FlatView base_;
  std::vector<float> offset_, scale_;  // kDim each
  std::vector<uint8_t> codes_;         // base_.n * kDim
};

}  // namespace facesearch::search
