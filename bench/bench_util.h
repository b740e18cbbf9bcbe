// Measurement helpers for bench_search: timing, recall, the memory-bandwidth floor, peak RSS.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// Reads `bytes` once on `threads` threads (XOR of 8-byte words; with AVX2 loads, 4 accumulators
// and a software prefetch where the CPU has AVX2): the floor for any method that must look at
// every byte. One pass, its threads started as our scans start theirs.
double StreamOnce(const void* data, size_t bytes, int threads);

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

// A method timed by MeasureInterleaved: a search, or a bandwidth floor (batch empty).
struct Timed {
  Row row;
  std::function<std::vector<search::Neighbor>(const float*)> one{};  // batch-1 search
  std::function<Lists()> batch{};  // every query in one call; empty for a floor
  size_t bound = SIZE_MAX;       // index of the floor compared with (SIZE_MAX: none)
  double min_rss = 0;            // peak RSS of its build phase, GiB
  double rss = -1;               // peak RSS of its batch run (at least min_rss), GiB
  std::vector<double> ms{};      // batch-1 latency of each round
  bool batch_done = false;
};

// Runs m's batch once: throughput, recall against truth, peak RSS (VmHWM reset first, so it counts
// what is resident now, plus what the batch adds).
void RunBatch(Timed& m, const std::vector<float>& queries, const Lists& truth);

// A floor: one StreamOnce pass per round.
Timed StreamMethod(const std::string& name, const void* data, size_t bytes, int threads);
std::string Gb(size_t bytes);  // "0.51 GB"

// For each search method whose batch has not run yet: RunBatch. Then
// `latency_queries` rounds; in round r every method (floors included) answers query r once, in an
// order rotated each round, so that load from other processes falls on all of them alike. Fills
// row.p50_ms/p99_ms/batch_qps/recall/bound_ms.
void MeasureInterleaved(std::vector<Timed>& methods, const std::vector<float>& queries,
                        size_t latency_queries, const Lists& truth);

// Rows of a second table: per-round medians of each method's time over its floor's, FAISS
// IndexFlatL2's time over the method's and our first float32 method's time over the method's.
std::string RatioRows(size_t n, const std::vector<Timed>& methods);
void PrintRatioTable(const std::string& rows);

// One Markdown table row; "–" for what does not apply.
void PrintHeader();
void Print(size_t n, const Row& r, double rss_gib);

// FAISS's (distances, labels) as neighbour lists (labels < 0 dropped).
Lists FromFaiss(size_t nq, size_t k, const std::vector<float>& d, const std::vector<int64_t>& l);

}  // namespace facesearch::bench
