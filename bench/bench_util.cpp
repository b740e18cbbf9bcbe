#include "bench_util.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

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

double StreamSeconds(const void* data, size_t bytes, int threads) {
  const auto* words = static_cast<const uint64_t*>(data);
  const size_t n = bytes / 8;
  std::vector<double> times;
  std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8);
  for (int pass = 0; pass < 5; ++pass) {
    auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        uint64_t acc = 0;
        for (size_t i = n * t / threads, e = n * (t + 1) / threads; i < e; ++i) acc ^= words[i];
        sink[static_cast<size_t>(t) * 8] = acc;
      });
    for (auto& th : pool) th.join();
    times.push_back(Seconds(t0));
  }
  std::sort(times.begin(), times.end());
  return times[2];
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
  std::printf("| %gM | %s | %s | %.2f | %.2f | %.0f | %s | %s | %.2f |\n", n / 1e6,
              r.method.c_str(), opt(r.build_s, "%.1f").c_str(), r.p50_ms, r.p99_ms, r.batch_qps,
              opt(r.recall, "%.4f").c_str(),
              opt(r.bound_ms > 0 ? r.p50_ms / r.bound_ms : -1, "%.2f").c_str(), rss);
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
