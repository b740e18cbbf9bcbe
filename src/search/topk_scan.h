// A multithreaded top-k scan over n rows: the caller supplies a function that computes the
// distances of a block of rows to every query; the threads take chunks of rows from a shared
// counter (so that a thread held up by other work on the machine does not hold up the call), each
// keeps one bounded max-heap per query over the rows it scanned, and the heaps are merged at the end.
//
// Results are deterministic: ties are broken by row number, so the answer does not depend on the
// thread count, the block size or which thread scanned which chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace facesearch::search {

struct Neighbor {
  int64_t id = 0;      // row number (ScanTopK) or caller's id (after mapping)
  float dist2 = 0.f;   // squared L2
};

// Total order used everywhere: nearer first, then smaller id.
inline bool NearerThan(const Neighbor& a, const Neighbor& b) {
  return a.dist2 < b.dist2 || (a.dist2 == b.dist2 && a.id < b.id);
}

// Keeps the k nearest of the candidates pushed into it. Not thread-safe; one per thread.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k); }
  // Ignores NaN distances (a NaN query or row matches nothing).
  void Push(int64_t id, float dist2);
  // Squared distance a candidate must beat (ties broken by id) once k are held; +inf before.
  float bound() const;
  // The held candidates, nearest first; empties the heap.
  std::vector<Neighbor> TakeSorted();

 private:
  size_t k_;
  std::vector<Neighbor> heap_;  // max-heap by NearerThan: the farthest held candidate on top
};

// Writes the distances of rows [begin, begin + count) to each of nq queries into out, laid out
// query-major: out[q * count + i]. Called concurrently from several threads with disjoint ranges.
using BlockDistFn = std::function<void(size_t begin, size_t count, float* out)>;

struct ScanOptions {
  int threads = 0;          // 0: one per hardware thread, fewer for small n
  size_t block_rows = 1024; // rows per call to the distance function
};

// For each of nq queries, the (up to) k nearest rows among n, nearest first; row numbers in .id.
// Returns nq empty lists when k <= 0 or n == 0. Throws only std::bad_alloc (threads that cannot
// be started are run on the calling thread instead).
std::vector<std::vector<Neighbor>> ScanTopK(size_t n, size_t nq, int k, const BlockDistFn& dist,
                                            const ScanOptions& options);

// The thread count ScanTopK uses for n rows: `requested` if positive, else the hardware threads,
// capped so that each thread gets at least `min_rows` rows.
int ScanThreads(size_t n, int requested, size_t min_rows = 32768);

}  // namespace facesearch::search
