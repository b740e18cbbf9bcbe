// A compact copy of a float matrix: 8 bits per dimension, 4x smaller than float32, on one global
// step with a per-dimension offset: x[d] ≈ offset[d] + step * code[d]. Because the step is the same
// in every dimension, the squared distance between two code vectors is step^2 times a plain
// integer sum of squared code differences, which the integer kernels compute (l2_kernels_impl.h,
// L2SqrCodesFn). A query is encoded the same way, its code distances to every row are scanned for
// the `rerank` nearest candidates, and those are re-ranked with exact float distances on the
// original rows: the distances returned are exact and only the candidate choice is approximate.
//
// One step for all dimensions is also the right trade for L2: every dimension's rounding error
// counts the same in the distance, so none deserves finer steps. The range it covers is the widest
// per-dimension range after clipping the rarest values (a 1e-4 share at each end): a
// clipped value only makes that row's coarse distance coarser.
//
// Ownership: borrows the FlatView it was built from (rows and ids), which must outlive the index
// and stay unchanged (Borrow also borrows the codes). Thread-safety: const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "search/exact_search.h"

namespace facesearch::search {

class Int8Index {
 public:
  // Trains the offsets and the step on (a sample of up to 65,536 of) the rows, then encodes every
  // row (on `threads` threads; 0 = hardware threads). Throws only std::bad_alloc.
  static Int8Index Build(const FlatView& base, int threads = 0);
  // An index over codes encoded earlier with `offset` (kDim values) and `step` (an index file's
  // int8 section, mapped): nothing is trained or encoded. `codes` (base.n * kDim bytes) are
  // borrowed like the rows and must outlive the index.
  static Int8Index Borrow(const FlatView& base, uint8_t* codes, const float* offset, float step);

  // Up to k nearest rows, nearest first, exact squared distances, the view's ids. The code scan
  // keeps max(rerank, k) candidates for the exact re-rank. Empty for k <= 0 or an empty index.
  std::vector<Neighbor> Search(const float* query, int k, int rerank,
                               const ExactOptions& options = {}) const;
  // The same for nq queries (row-major), the codes read once for all of them.
  std::vector<std::vector<Neighbor>> SearchBatch(const float* queries, size_t nq, int k,
                                                 int rerank, const ExactOptions& options = {}) const;

  // Writes the kDim codes of x (rounded to the nearest step, clamped to 0..255), as rows and
  // queries are encoded.
  void Encode(const float* x, uint8_t* codes) const;

  size_t code_bytes() const { return base_.n * kDim; }
  const std::vector<float>& offset() const { return offset_; }
  float step() const { return step_; }
  // kDim copies of step() (the per-dimension form of earlier versions).
  const std::vector<float>& scale() const { return scale_; }
  const uint8_t* codes() const { return borrowed_ ? borrowed_ : codes_.data(); }
  // The codes of row `row` (kDim bytes), for an erasure to scrub.
  uint8_t* mutable_codes(size_t row) { return (borrowed_ ? borrowed_ : codes_.data()) + row * kDim; }

 private:
  // Bytes on 2 MiB boundaries, advised to the kernel as huge pages (MADV_HUGEPAGE) before they are
  // first touched: a scan then takes one TLB miss per 2 MiB instead of one per 4 KiB. Uninitialised.
  class CodeBuffer {
   public:
    CodeBuffer() = default;
    explicit CodeBuffer(size_t size);
    CodeBuffer(const CodeBuffer& other);
    CodeBuffer& operator=(const CodeBuffer& other);
    CodeBuffer(CodeBuffer&& other) noexcept;
    CodeBuffer& operator=(CodeBuffer&& other) noexcept;
    ~CodeBuffer();
    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

   private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
  };

  FlatView base_;
  std::vector<float> offset_, scale_;  // kDim each
  float step_ = 1.f, inv_step_ = 1.f;
  CodeBuffer codes_;  // base_.n * kDim, unless borrowed
  uint8_t* borrowed_ = nullptr;
};

}  // namespace facesearch::search
