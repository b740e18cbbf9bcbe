#include "search/int8_index.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>
#include <utility>

#include <sys/mman.h>

namespace facesearch::search {
namespace {

constexpr size_t kTrainRows = 65536;

// Share of the training values clipped below and above each dimension's range. On the LFW-shaped
// 1M benchmark corpus 0, 1e-4 and 1e-3 gave the same recall@10 (0.993-0.994 with no re-rank beyond
// the 10, 1.000 from 20 candidates on): the range is not the limit.
constexpr double kClip = 1e-4;

// Runs fn(begin, end) over [0, n) split into `threads` slices (the calling thread does one).
template <class Fn>
void ParallelSlices(size_t n, int threads, Fn fn) {
  const size_t nt = static_cast<size_t>(std::max(threads, 1));
  std::vector<std::thread> workers;
  std::vector<size_t> inline_slices;
  for (size_t t = 1; t < nt; ++t) {
    try {
      workers.emplace_back(fn, n * t / nt, n * (t + 1) / nt);
    } catch (const std::system_error&) {
      inline_slices.push_back(t);
    }
  }
  fn(size_t{0}, n / nt);
  for (size_t t : inline_slices) fn(n * t / nt, n * (t + 1) / nt);
  for (auto& w : workers) w.join();
}

constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

Int8Index::CodeBuffer::CodeBuffer(size_t size) : size_(size) {
  if (size == 0) return;
  const size_t rounded = (size + kHugePage - 1) / kHugePage * kHugePage;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(kHugePage, rounded));
  if (!data_) throw std::bad_alloc();
  // Advice only: without transparent huge pages (or with them off) this fails harmlessly.
  (void)madvise(data_, rounded, MADV_HUGEPAGE);
}

Int8Index::CodeBuffer::CodeBuffer(const CodeBuffer& other) : CodeBuffer(other.size_) {
  if (size_) std::memcpy(data_, other.data_, size_);
}

Int8Index::CodeBuffer& Int8Index::CodeBuffer::operator=(const CodeBuffer& other) {
  if (this != &other) *this = CodeBuffer(other);
  return *this;
}

Int8Index::CodeBuffer::CodeBuffer(CodeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Int8Index::CodeBuffer& Int8Index::CodeBuffer::operator=(CodeBuffer&& other) noexcept {
  if (this != &other) {
    std::free(data_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Int8Index::CodeBuffer::~CodeBuffer() { std::free(data_); }

Int8Index Int8Index::Build(const FlatView& base, int threads) {
  Int8Index index;
  index.base_ = base;
  index.offset_.assign(kDim, 0.f);
  if (base.n > 0) {
    // Per-dimension range of the finite values of a strided sample, clipped at the kClip
    // quantiles (non-finite values are left out: nth_element needs a strict weak order).
    const size_t m = std::min(base.n, kTrainRows);
    std::vector<float> lo(kDim, 0.f), hi(kDim, 0.f), column;
    column.reserve(m);
    float widest = 0.f;
    for (size_t d = 0; d < kDim; ++d) {
      column.clear();
      for (size_t i = 0; i < m; ++i) {
        const float x = base.rows[(i * (base.n / m)) * kDim + d];
        if (std::isfinite(x)) column.push_back(x);
      }
      if (column.empty()) continue;
      const size_t clip = static_cast<size_t>(kClip * static_cast<double>(column.size()));
      const auto low = column.begin() + static_cast<std::ptrdiff_t>(clip);
      const auto high = column.end() - 1 - static_cast<std::ptrdiff_t>(clip);
      std::nth_element(column.begin(), low, column.end());
      lo[d] = *low;
      std::nth_element(column.begin(), high, column.end());
      hi[d] = *high;
      widest = std::max(widest, hi[d] - lo[d]);
    }
    // A finite, nonzero step even for a constant matrix.
    index.step_ = std::isfinite(widest) && widest > 0.f ? widest / 255.f : 1.f;
    for (size_t d = 0; d < kDim; ++d)
      index.offset_[d] = 0.5f * (lo[d] + hi[d]) - 127.5f * index.step_;
  }
  index.inv_step_ = 1.f / index.step_;
  index.scale_.assign(kDim, index.step_);

  index.codes_ = CodeBuffer(base.n * kDim);
  ParallelSlices(base.n, ScanThreads(base.n, threads), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i)
      index.Encode(base.rows + i * kDim, index.codes_.data() + i * kDim);
  });
  return index;
}

Int8Index Int8Index::Borrow(const FlatView& base, uint8_t* codes, const float* offset, float step) {
  Int8Index index;
  index.base_ = base;
  index.offset_.assign(offset, offset + kDim);
  index.step_ = std::isfinite(step) && step > 0.f ? step : 1.f;
  index.inv_step_ = 1.f / index.step_;
  index.scale_.assign(kDim, index.step_);
  index.borrowed_ = codes;
  return index;
}

void Int8Index::Encode(const float* x, uint8_t* codes) const {
  for (size_t d = 0; d < kDim; ++d) {
    const float c = std::nearbyint((x[d] - offset_[d]) * inv_step_);
    // NaN compares false both ways and becomes 0.
    codes[d] = c >= 255.f ? uint8_t{255} : c > 0.f ? static_cast<uint8_t>(c) : uint8_t{0};
  }
}

std::vector<std::vector<Neighbor>> Int8Index::SearchBatch(const float* queries, size_t nq, int k,
                                                          int rerank,
                                                          const ExactOptions& options) const {
  std::vector<std::vector<Neighbor>> result(nq);
  if (k <= 0 || base_.n == 0) return result;
  const Kernels& kernels = options.kernels ? *options.kernels : BestKernels();
  std::vector<uint8_t> qcodes(nq * kDim);
  for (size_t q = 0; q < nq; ++q) Encode(queries + q * kDim, qcodes.data() + q * kDim);

  ScanOptions scan = options.scan;
  if (nq > 1) scan.block_rows = std::min<size_t>(scan.block_rows, 1024);  // 128 KiB of codes
  auto dist = [&](size_t begin, size_t count, float* out) {
    const uint8_t* codes = this->codes() + begin * kDim;
    for (size_t q = 0; q < nq; ++q)
      kernels.l2sqr_codes(qcodes.data() + q * kDim, codes, count, out + q * count);
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
