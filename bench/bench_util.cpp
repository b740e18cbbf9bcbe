#include "bench_util.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "search/l2_kernels_impl.h"

namespace facesearch::bench {

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }
double PeakRssGiB() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / (1024.0 * 1024.0);
  return 0;
}

namespace {

// The XOR of n 8-byte words, written to *sink. Plain C++ (the compiler vectorises it with SSE2).
void XorWords(const uint64_t* w, size_t n, uint64_t* sink) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; ++i) acc ^= w[i];
  *sink = acc;
}

// The same with AVX2 loads into 4 independent accumulators and a software prefetch 8 KiB ahead,
// as our kernels read (search::kPrefetchBytes): the fastest way to read memory that we know of, so
// that the floor is not slower than the scans it bounds.
__attribute__((target("avx2"))) void XorWordsAvx2(const uint64_t* w, size_t n, uint64_t* sink) {
  const auto* p = reinterpret_cast<const __m256i*>(w);
  const size_t vecs = n / 4;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 <= vecs; i += 4) {  // 128 bytes: 2 cache lines
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + search::kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + i) + search::kPrefetchBytes + 64, _MM_HINT_T0);
    a0 = _mm256_xor_si256(a0, _mm256_loadu_si256(p + i));
    a1 = _mm256_xor_si256(a1, _mm256_loadu_si256(p + i + 1));
    a2 = _mm256_xor_si256(a2, _mm256_loadu_si256(p + i + 2));
    a3 = _mm256_xor_si256(a3, _mm256_loadu_si256(p + i + 3));
  }
  a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  uint64_t acc = static_cast<uint64_t>(_mm256_extract_epi64(a0, 0) ^ _mm256_extract_epi64(a0, 1) ^
                                       _mm256_extract_epi64(a0, 2) ^ _mm256_extract_epi64(a0, 3));
  for (size_t j = i * 4; j < n; ++j) acc ^= w[j];
  *sink = acc;
}

}  // namespace

double StreamOnce(const void* data, size_t bytes, int threads) {
  static const auto xor_words = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? XorWordsAvx2 : XorWords;
  }();
  const auto* words = static_cast<const uint64_t*>(data);
  const size_t n = bytes / 8;
  std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8);
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      const size_t begin = n * t / threads, end = n * (t + 1) / threads;
      xor_words(words + begin, end - begin, &sink[static_cast<size_t>(t) * 8]);
    });
  xor_words(words, n / threads, &sink[0]);
  for (auto& th : pool) th.join();
  return Seconds(t0);
}

Timed StreamMethod(const std::string& name, const void* data, size_t bytes, int threads) {
  Timed m{Row{name}};
  m.row.batch_qps = -1;
  m.one = [data, bytes, threads](const float*) {
    StreamOnce(data, bytes, threads);
    return std::vector<search::Neighbor>{};
  };
  return m;
}

std::string Gb(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

namespace {
double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

void RunBatch(Timed& m, const std::vector<float>& queries, const Lists& truth) {
  ResetPeakRss();
  m.one(queries.data());  // warm-up
  auto t0 = Clock::now();
  const Lists got = m.batch();
  m.row.batch_qps = double(got.size()) / Seconds(t0);
  m.row.recall = Recall(got, truth);
  m.rss = std::max(PeakRssGiB(), m.min_rss);
  m.batch_done = true;
  std::fprintf(stderr, "bench_search: %s: batch %.0f q/s, recall %.4f, peak RSS %.2f GiB\n",
               m.row.method.c_str(), m.row.batch_qps, m.row.recall, m.rss);
}

void MeasureInterleaved(std::vector<Timed>& methods, const std::vector<float>& queries,
                        size_t latency_queries, const Lists& truth) {
  for (size_t i = 0; i < methods.size(); ++i) {
    Timed& m = methods[i];
    if (m.bound == SIZE_MAX && !m.batch) m.bound = i;  // a floor is its own bound
    if (!m.batch) {
      m.one(queries.data());  // warm-up
    } else if (!m.batch_done) {
      RunBatch(m, queries, truth);
    }
  }
  const size_t count = methods.size();
  for (size_t r = 0; r < latency_queries; ++r) {
    for (size_t j = 0; j < count; ++j) {
      Timed& m = methods[(j + r) % count];
      auto t0 = Clock::now();
      m.one(queries.data() + r * kBenchDim);
      m.ms.push_back(Seconds(t0) * 1e3);
    }
  }
  for (Timed& m : methods) {
    std::vector<double> ms = m.ms;
    std::sort(ms.begin(), ms.end());
    m.row.p50_ms = ms[ms.size() / 2];
    m.row.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  }
  for (Timed& m : methods)
    if (m.bound != SIZE_MAX) m.row.bound_ms = methods[m.bound].row.p50_ms;
}

std::string RatioRows(size_t n, const std::vector<Timed>& methods) {
  const Timed* faiss = nullptr;
  const Timed* ours = nullptr;
  for (const Timed& m : methods) {
    if (m.row.method == "FAISS IndexFlatL2") faiss = &m;
    if (!ours && m.row.method.rfind("ours exact float32 (", 0) == 0) ours = &m;
  }
  auto ratio = [](const Timed& a, const Timed& b) {  // median over rounds of a's time / b's
    std::vector<double> r;
    for (size_t i = 0; i < a.ms.size() && i < b.ms.size(); ++i) r.push_back(a.ms[i] / b.ms[i]);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", Median(r));
    return std::string(buf);
  };
  std::string rows;
  for (const Timed& m : methods) {
    if (!m.batch) continue;
    char buf[512];
    std::snprintf(buf, sizeof buf, "| %gM | %s | %s | %s | %s |\n", static_cast<double>(n) / 1e6,
                  m.row.method.c_str(),
                  m.bound != SIZE_MAX ? ratio(m, methods[m.bound]).c_str() : "–",
                  faiss && faiss != &m ? ratio(*faiss, m).c_str() : "–",
                  ours && ours != &m ? ratio(*ours, m).c_str() : "–");
    rows += buf;
  }
  return rows;
}

void PrintRatioTable(const std::string& rows) {
  std::printf("\nPer-round ratios (batch 1; median over the rounds of the ratio of two methods' times "
              "in the same round):\n\n| size | method | time / floor | FAISS IndexFlatL2 time / this "
              "| first ours float32 time / this |\n|---|---|---|---|---|\n%s",
              rows.c_str());
}

double Recall(const Lists& got, const Lists& truth) {
  size_t found = 0, total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    std::set<int64_t> want;
    for (const auto& t : truth[q]) want.insert(t.id);
    for (size_t i = 0; i < got[q].size() && i < kK; ++i) found += want.count(got[q][i].id);
    total += truth[q].size();
  }
  return total ? double(found) / double(total) : 0;
}

Lists Measure(Row& row, const std::vector<float>& queries, size_t latency_queries,
              const std::function<std::vector<search::Neighbor>(const float*)>& one,
              const std::function<Lists()>& batch) {
  one(queries.data());  // warm-up
  std::vector<double> ms;
  for (size_t q = 0; q < latency_queries; ++q) {
    auto t0 = Clock::now();
    one(queries.data() + q * kBenchDim);
    ms.push_back(Seconds(t0) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  row.p50_ms = ms[ms.size() / 2];
  row.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  auto t0 = Clock::now();
  Lists result = batch();
  row.batch_qps = double(result.size()) / Seconds(t0);
  return result;
}

void Print(size_t n, const Row& r, double rss) {
  auto opt = [](double v, const char* fmt) {
    if (v < 0) return std::string("–");
    char buf[32];
    std::snprintf(buf, sizeof buf, fmt, v);
    return std::string(buf);
  };
  std::printf("| %gM | %s | %s | %.2f | %.2f | %s | %s | %s | %s |\n", n / 1e6,
              r.method.c_str(), opt(r.build_s, "%.1f").c_str(), r.p50_ms, r.p99_ms,
              opt(r.batch_qps, "%.0f").c_str(), opt(r.recall, "%.4f").c_str(),
              opt(r.bound_ms > 0 ? r.p50_ms / r.bound_ms : -1, "%.2f").c_str(),
              opt(rss, "%.2f").c_str());
  std::fflush(stdout);
}

Lists FromFaiss(size_t nq, size_t k, const std::vector<float>& d, const std::vector<int64_t>& l) {
  Lists out(nq);
  for (size_t q = 0; q < nq; ++q)
    for (size_t i = 0; i < k; ++i)
      if (l[q * k + i] >= 0) out[q].push_back({l[q * k + i], d[q * k + i]});
  return out;
}

void PrintHeader() {
  std::printf("| size | method | build s | p50 ms | p99 ms | batch q/s | recall@10 | p50 / bound | peak RSS GiB |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
}

}  // namespace facesearch::bench
