// bench_handle — what the corpus handle buys (issue #15): probes given one at a time through the
// library, each through its own QueryPhotos call (today's per-call open: the database, the index
// file and the models every time) and through one facesearch::Corpus opened once.
//
//   bench_handle CORPUS_DIR PROBE...
//
// Both ways search the same probes with the default options and must return the same matches
// (checked). Every query appends an audit record: run it on a copy of a corpus. Prints a Markdown
// table on stdout: wall and process CPU seconds, the open, per probe and in all.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "facesearch/corpus.h"

namespace {

struct Clock {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  std::clock_t cpu = std::clock();
  double Wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(); }
  double Cpu() const { return static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC; }
};

struct Times {
  std::vector<double> wall, cpu;
  double Total(const std::vector<double>& v) const {
    double t = 0;
    for (double x : v) t += x;
    return t;
  }
  double Median(std::vector<double> v) const {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
};

std::vector<int64_t> MatchIds(const facesearch::ProbeOutcome& o) {
  std::vector<int64_t> ids;
  for (const auto& p : o.result.probes)
    for (const auto& m : p.matches) ids.push_back(m.face_id);
  return ids;
}

void Row(const char* label, double wall, double cpu) {
  std::printf("| %s | %.3f | %.3f |\n", label, wall, cpu);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR PROBE...\n", argv[0]);
    return 2;
  }
  facesearch::CorpusConfig config;
  config.corpus_dir = argv[1];
  config.audit.case_id = "bench-handle";
  config.audit.purpose = "benchmark of the corpus handle";
  const std::vector<std::string> probes(argv + 2, argv + argc);
  const facesearch::QueryOptions options;

  // Per call: what the CLI and every library caller paid before the handle, once per probe.
  Times per_call;
  std::vector<std::vector<int64_t>> expected;
  for (const std::string& probe : probes) {
    Clock clock;
    auto outcomes = facesearch::QueryPhotos(config, {facesearch::ProbeImage::File(probe)}, options);
    per_call.wall.push_back(clock.Wall());
    per_call.cpu.push_back(clock.Cpu());
    if (!outcomes) {
      std::fprintf(stderr, "bench_handle: %s\n", outcomes.error().message.c_str());
      return 1;
    }
    expected.push_back(MatchIds(outcomes->front()));
  }

  Clock open_clock;
  auto corpus = facesearch::Corpus::Open(config, facesearch::OpenOptions{options.pipeline});
  const double open_wall = open_clock.Wall(), open_cpu = open_clock.Cpu();
  if (!corpus) {
    std::fprintf(stderr, "bench_handle: %s\n", corpus.error().message.c_str());
    return 1;
  }
  Times handle;
  for (size_t i = 0; i < probes.size(); ++i) {
    Clock clock;
    auto outcome = (*corpus)->Query(facesearch::ProbeImage::File(probes[i]), options);
    handle.wall.push_back(clock.Wall());
    handle.cpu.push_back(clock.Cpu());
    if (!outcome) {
      std::fprintf(stderr, "bench_handle: %s\n", outcome.error().message.c_str());
      return 1;
    }
    if (MatchIds(*outcome) != expected[i]) {
      std::fprintf(stderr, "bench_handle: %s: the handle's matches differ from QueryPhotos'\n", probes[i].c_str());
      return 1;
    }
  }

  std::printf("%zu probes, %lld faces in the corpus; same matches both ways\n\n", probes.size(),
              static_cast<long long>((*corpus)->face_count()));
  std::printf("| | wall s | CPU s |\n|---|---|---|\n");
  Row("QueryPhotos per probe (median)", per_call.Median(per_call.wall), per_call.Median(per_call.cpu));
  Row("QueryPhotos, all probes", per_call.Total(per_call.wall), per_call.Total(per_call.cpu));
  Row("Corpus::Open (models preloaded)", open_wall, open_cpu);
  Row("Corpus::Query per probe (median)", handle.Median(handle.wall), handle.Median(handle.cpu));
  Row("Corpus::Open + all probes", open_wall + handle.Total(handle.wall), open_cpu + handle.Total(handle.cpu));
  return 0;
}
