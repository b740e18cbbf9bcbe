// Measurement helpers for bench_search: timing, recall, the memory-bandwidth floor, peak RSS.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "search/topk_scan.h"

namespace facesearch::bench {

using Clock = std::chrono::steady_clock;
using Lists = std::vector<std::vector<search::Neighbor>>;
inline constexpr size_t kBenchDim = 128;
inline constexpr int kK = 10;

double Seconds(Clock::time_point t0);

// Peak RSS of a phase: ResetPeakRss() writes "5" to /proc/self/clear_refs, which resets VmHWM to
// the current RSS (Linux >= 4.0); PeakRssGiB() reads VmHWM from /proc/self/status afterwards.
void ResetPeakRss();
double PeakRssGiB();

// Reads `bytes` once on `threads` threads (XOR of 8-byte words, vectorised by the compiler):
// the floor for any method that must look at every byte. Median of 5 passes.
double StreamSeconds(const void* data, size_t bytes, int threads);

// Share of the true top-10 found in the first 10 of `got`.
double Recall(const Lists& got, const Lists& truth);

struct Row {
  std::string method;
  double build_s = -1, p50_ms = 0, p99_ms = 0, batch_qps = 0, recall = -1, bound_ms = 0;
};

// Times `one` on each of the first latency_queries queries (after one warm-up call) for p50/p99,
// and `batch` once for throughput. Returns the batch results (for recall).
Lists Measure(Row& row, const std::vector<float>& queries, size_t latency_queries,
              const std::function<std::vector<search::Neighbor>(const float*)>& one,
              const std::function<Lists()>& batch);

// One Markdown table row; "–" for what does not apply.
void PrintHeader();
void Print(size_t n, const Row& r, double rss_gib);

// FAISS's (distances, labels) as neighbour lists (labels < 0 dropped).
Lists FromFaiss(size_t nq, size_t k, const std::vector<float>& d, const std::vector<int64_t>& l);

}  // namespace facesearch::bench
