#include "search/topk_scan.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <system_error>
#include <thread>
#include <utility>

namespace facesearch::search {
namespace {

// Rows per chunk handed to a scan thread (8 MiB of float rows, 2 MiB of int8 codes): small enough
// for a fair share when a thread is held up, large enough that the counter is touched rarely.
constexpr size_t kChunkRows = 16384;

}  // namespace

void TopK::Push(int64_t id, float dist2) {
  if (std::isnan(dist2) || k_ == 0) return;
  const Neighbor cand{id, dist2};
  if (heap_.size() < k_) {
    heap_.push_back(cand);
    std::push_heap(heap_.begin(), heap_.end(), NearerThan);
  } else if (NearerThan(cand, heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), NearerThan);
    heap_.back() = cand;
    std::push_heap(heap_.begin(), heap_.end(), NearerThan);
  }
}

float TopK::bound() const {
  return heap_.size() < k_ ? std::numeric_limits<float>::infinity() : heap_.front().dist2;
}

std::vector<Neighbor> TopK::TakeSorted() {
  std::sort_heap(heap_.begin(), heap_.end(), NearerThan);
  return std::exchange(heap_, {});
}

int ScanThreads(size_t n, int requested, size_t min_rows) {
  if (requested > 0) return requested;
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp<size_t>(n / std::max<size_t>(min_rows, 1), 1, hw));
}

std::vector<std::vector<Neighbor>> ScanTopK(size_t n, size_t nq, int k, const BlockDistFn& dist,
                                            const ScanOptions& options) {
  std::vector<std::vector<Neighbor>> result(nq);
  if (k <= 0 || n == 0 || nq == 0) return result;
  const size_t kk = std::min<size_t>(static_cast<size_t>(k), n);
  const size_t threads =
      std::min<size_t>(static_cast<size_t>(ScanThreads(n, options.threads)), n);
  const size_t block = std::max<size_t>(options.block_rows, 1);

  // heaps[t * nq + q]: thread t's candidates for query q.
  // Everything is allocated here, so that a worker thread never throws.
  std::vector<TopK> heaps(threads * nq, TopK(kk));
  std::vector<std::vector<float>> buffers(threads, std::vector<float>(nq * std::min(block, n)));
  // The rows are dealt out in chunks from a shared counter rather than in fixed slices: on a
  // machine shared with other work, a thread that loses its core for a while leaves its chunks to
  // the others instead of making the whole call wait for it. The heaps are merged by NearerThan,
  // so the answer does not depend on which thread scanned which chunk.
  const size_t chunk = std::max(block, std::min(kChunkRows, n / threads + 1));
  std::atomic<size_t> next{0};
  auto scan_chunks = [&](size_t t) {
    std::vector<float>& out = buffers[t];
    for (size_t begin = next.fetch_add(chunk); begin < n; begin = next.fetch_add(chunk)) {
      const size_t end = std::min(n, begin + chunk);
      for (size_t b = begin; b < end; b += block) {
        const size_t count = std::min(block, end - b);
        dist(b, count, out.data());
        for (size_t q = 0; q < nq; ++q) {
          TopK& heap = heaps[t * nq + q];
          const float* d = out.data() + q * count;
          float bound = heap.bound();
          for (size_t i = 0; i < count; ++i) {
            if (d[i] <= bound) {  // <=: an equal distance with a smaller row number may still win
              heap.Push(static_cast<int64_t>(b + i), d[i]);
              bound = heap.bound();
            }
          }
        }
      }
    }
  };

  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) {
    try {
      workers.emplace_back(scan_chunks, t);
    } catch (const std::system_error&) {
      break;  // no thread to be had: the threads already started (and this one) take all chunks
    }
  }
  scan_chunks(0);
  for (auto& w : workers) w.join();

  for (size_t q = 0; q < nq; ++q) {
    TopK merged(kk);
    for (size_t t = 0; t < threads; ++t)
      for (const Neighbor& nb : heaps[t * nq + q].TakeSorted()) merged.Push(nb.id, nb.dist2);
    result[q] = merged.TakeSorted();
  }
  return result;
}

}  // namespace facesearch::search
