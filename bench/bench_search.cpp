// bench_search: exact and approximate k-NN over synthetic face corpora (issue #3).
//
// For each size: generates a corpus shaped like real dlib embeddings (synthetic_faces.h), then,
// on the same data and in one process, measures our SIMD scan (float32, int8 + exact re-rank,
// BLAS batch), FAISS IndexFlatL2, HNSW32, IVF-PQ (+ our exact re-rank) and IVF-Flat. Prints one
// Markdown table row per method: build time, batch-1 latency p50/p99, batch throughput,
// recall@10 against exact ground truth, the exact methods' p50 over the memory-bandwidth bound
// (the time to read the same bytes once, measured here), and peak RSS during the method's phase.
//
// Peak RSS: before each phase "5" is written to /proc/self/clear_refs, which resets VmHWM to the
// current RSS (Linux >= 4.0); VmHWM read from /proc/self/status after the phase is the phase's
// peak, and includes the corpus itself. Usage: bench_search --help.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "search/blas_search.h"
#include "search/exact_search.h"
#include "search/int8_index.h"
#include "bench_util.h"
#include "synthetic_faces.h"

using namespace facesearch::bench;
namespace fss = facesearch::search;
constexpr size_t kDim = fss::kDim;

namespace {

struct Args {
  std::string embeddings = "/tmp/lfw-export.jsonl";
  std::vector<size_t> sizes = {1000000, 10000000};
  size_t batch = 100, latency_queries = 50;
  size_t hnsw_max = 1000000, ivfflat_max = 1000000, ivfpq_max = SIZE_MAX;
  int rerank = 100;
  std::vector<int> int8_rerank;               // default: {rerank}
  std::vector<const fss::Kernels*> kernels;   // default: {BestKernels()}
  std::set<std::string> skip;                 // blas, flat, hnsw, ivfpq, ivfflat
};

std::vector<std::string> SplitCommas(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  for (std::string s; std::getline(ss, s, ',');)
    if (!s.empty()) out.push_back(s);
  return out;
}

// Our exact re-rank of FAISS candidates (labels are row numbers): the k nearest by float32 L2.
std::vector<fss::Neighbor> Rerank(const fss::FlatView& view, const float* q,
                                  const std::vector<int64_t>& labels, size_t offset, size_t count) {
  fss::TopK best(kK);
  for (size_t i = 0; i < count; ++i) {
    const int64_t row = labels[offset + i];
    if (row < 0) continue;
    float d2 = 0;
    fss::BestKernels().l2sqr(q, view.rows + static_cast<size_t>(row) * kDim, 1, &d2);
    best.Push(row, d2);
  }
  return best.TakeSorted();
}

// Runs an approximate FAISS index: raw top-10, then top-`rerank` candidates re-ranked exactly.
void MeasureApprox(const std::string& name, double build_s, faiss::Index& index,
                   const fss::FlatView& view, const std::vector<float>& queries, size_t latency,
                   const Lists& truth, int rerank, size_t n) {
  const size_t nq = truth.size();
  for (size_t k : {size_t{kK}, static_cast<size_t>(rerank)}) {
    if (k <= kK && k != size_t{kK}) continue;  // rerank <= 10: raw results only
    ResetPeakRss();
    Row r{k == kK ? name : name + " + exact re-rank " + std::to_string(k)};
    r.build_s = build_s;
    auto search = [&](const float* q, size_t count) {
      std::vector<float> d(count * k);
      std::vector<int64_t> l(count * k);
      index.search(static_cast<int64_t>(count), q, static_cast<int64_t>(k), d.data(), l.data());
      Lists out(count);
      for (size_t i = 0; i < count; ++i)
        out[i] = k == kK ? FromFaiss(1, k, {d.begin() + i * k, d.begin() + (i + 1) * k},
                                     {l.begin() + i * k, l.begin() + (i + 1) * k})[0]
                         : Rerank(view, q + i * kDim, l, i * k, k);
      return out;
    };
    Lists got = Measure(
        r, queries, latency, [&](const float* q) { return search(q, 1)[0]; },
        [&] { return search(queries.data(), nq); });
    r.recall = Recall(got, truth);
    Print(n, r, PeakRssGiB());
  }
}

void RunSize(const Args& args, FaceGenerator& gen, size_t n, int threads, std::string* ratios) {
  const size_t nq = args.batch, latency = args.latency_queries;
  // The corpus is generated straight into FAISS's flat storage: our scans read the same bytes
  // (as VectorIndex::Search does), and 10M faces need no second 5 GB copy.
  ResetPeakRss();
  auto t0 = Clock::now();
  faiss::IndexFlatL2 flat(kDim);
  flat.codes.resize(n * kDim * sizeof(float));
  flat.ntotal = static_cast<faiss::Index::idx_t>(n);
  gen.Corpus(n, flat.get_xb());
  std::vector<float> queries(nq * kDim);
  gen.Probes(nq, queries.data());
  const fss::FlatView view{flat.get_xb(), nullptr, n};
  std::fprintf(stderr, "bench_search: %zu faces generated in %.1f s (peak RSS %.2f GiB)\n", n,
               Seconds(t0), PeakRssGiB());
  const Lists truth = fss::ExactSearchBatch(view, queries.data(), nq, kK);

  {  // The exact methods and the bandwidth floors, timed in interleaved rounds (below); the int8
     // codes are freed at the end of this block, before the FAISS indexes are built.
  std::vector<Timed> methods;
  const size_t float_bytes = n * kDim * sizeof(float);
  methods.push_back(StreamMethod("*read the " + Gb(float_bytes) + " of float32 vectors once*",
                                 flat.get_xb(), float_bytes, threads));
  const size_t float_bound = 0;
  for (const fss::Kernels* k : args.kernels) {
    fss::ExactOptions opt;
    opt.kernels = k;
    Timed m{Row{std::string("ours exact float32 (") + k->name + ")"}};
    m.bound = float_bound;
    m.one = [&view, opt](const float* q) { return fss::ExactSearch(view, q, kK, opt); };
    m.batch = [&view, &queries, nq, opt] {
      return fss::ExactSearchBatch(view, queries.data(), nq, kK, opt);
    };
    methods.push_back(std::move(m));
  }
  if (!args.skip.contains("blas")) {
    Timed m{Row{"ours exact float32, BLAS sgemm"}};
    m.bound = float_bound;
    m.one = [&view](const float* q) { return fss::BlasSearchBatch(view, q, 1, kK)[0]; };
    m.batch = [&view, &queries, nq] { return fss::BlasSearchBatch(view, queries.data(), nq, kK); };
    methods.push_back(std::move(m));
  }
  std::optional<Timed> faiss_flat;
  if (!args.skip.contains("flat")) {  // FAISS IndexFlatL2 (Debian's generic x86-64 build)
    auto search = [&flat](const float* q, size_t count) {
      std::vector<float> d(count * kK);
      std::vector<int64_t> l(count * kK);
      flat.search(static_cast<int64_t>(count), q, kK, d.data(), l.data());
      return FromFaiss(count, kK, d, l);
    };
    faiss_flat.emplace(Row{"FAISS IndexFlatL2"});
    faiss_flat->bound = float_bound;
    faiss_flat->one = [search](const float* q) { return search(q, 1)[0]; };
    faiss_flat->batch = [search, &queries, nq] { return search(queries.data(), nq); };
    RunBatch(*faiss_flat, queries, truth);
  }
  // The float methods' batches run before the int8 codes exist, so that their peak RSS does not
  // count the codes.
  for (Timed& m : methods)
    if (m.batch) RunBatch(m, queries, truth);
  ResetPeakRss();
  t0 = Clock::now();
  const auto int8 = fss::Int8Index::Build(view, threads);
  const double int8_build_s = Seconds(t0);
  const double int8_build_rss = PeakRssGiB();
  const size_t int8_bound = methods.size();
  methods.push_back(StreamMethod("*read the " + Gb(int8.code_bytes()) + " of int8 codes once*",
                                 int8.codes(), int8.code_bytes(), threads));
  for (const fss::Kernels* k : args.kernels) {
    for (int rerank : args.int8_rerank) {
      fss::ExactOptions opt;
      opt.kernels = k;
      Timed m{Row{"ours int8 (" + std::string(k->name) + ") + exact re-rank " +
                  std::to_string(rerank)}};
      m.row.build_s = int8_build_s;
      m.bound = int8_bound;
      m.min_rss = int8_build_rss;
      m.one = [&int8, rerank, opt](const float* q) { return int8.Search(q, kK, rerank, opt); };
      m.batch = [&int8, &queries, nq, rerank, opt] {
        return int8.SearchBatch(queries.data(), nq, kK, rerank, opt);
      };
      methods.push_back(std::move(m));
    }
  }
  if (faiss_flat) methods.push_back(std::move(*faiss_flat));
  MeasureInterleaved(methods, queries, latency, truth);
  for (const Timed& m : methods) Print(n, m.row, m.rss);
  *ratios += RatioRows(n, methods);
  }

  if (n <= args.hnsw_max && !args.skip.contains("hnsw")) {
    ResetPeakRss();
    t0 = Clock::now();
    faiss::IndexHNSWFlat hnsw(kDim, 32);
    hnsw.add(static_cast<int64_t>(n), flat.get_xb());
    const double build_s = Seconds(t0);
    std::fprintf(stderr, "bench_search: HNSW32 built in %.1f s\n", build_s);
    for (int ef : {64, 128}) {
      hnsw.hnsw.efSearch = ef;
      MeasureApprox("FAISS HNSW32 efSearch=" + std::to_string(ef), build_s, hnsw, view, queries,
                    latency, truth, args.rerank, n);
    }
  }
  const size_t nlist = n >= 4000000 ? 2048 : n >= 400000 ? 1024 : 256;
  const size_t ntrain = std::min(n, nlist * 64);
  std::vector<float> train(ntrain * kDim);
  for (size_t i = 0; i < ntrain; ++i)
    std::copy_n(view.rows + (i * (n / ntrain)) * kDim, kDim, train.data() + i * kDim);
  if (n <= args.ivfpq_max && !args.skip.contains("ivfpq")) {  // IVF-PQ: 32 bytes per vector
    ResetPeakRss();
    t0 = Clock::now();
    faiss::IndexFlatL2 coarse(kDim);
    faiss::IndexIVFPQ ivfpq(&coarse, kDim, nlist, 32, 8);
    ivfpq.train(static_cast<int64_t>(ntrain), train.data());
    const double train_s = Seconds(t0);
    ivfpq.add(static_cast<int64_t>(n), flat.get_xb());
    const double build_s = Seconds(t0);
    std::fprintf(stderr, "bench_search: IVF-PQ trained in %.1f s, built in %.1f s\n", train_s,
                 build_s);
    for (size_t nprobe : {16, 64}) {
      ivfpq.nprobe = nprobe;
      MeasureApprox("FAISS IVF" + std::to_string(nlist) + ",PQ32 nprobe=" + std::to_string(nprobe),
                    build_s, ivfpq, view, queries, latency, truth, args.rerank, n);
    }
  }
  if (n <= args.ivfflat_max && !args.skip.contains("ivfflat")) {
    ResetPeakRss();
    t0 = Clock::now();
    faiss::IndexFlatL2 coarse(kDim);
    faiss::IndexIVFFlat ivf(&coarse, kDim, nlist);
    ivf.train(static_cast<int64_t>(ntrain), train.data());
    ivf.add(static_cast<int64_t>(n), flat.get_xb());
    const double build_s = Seconds(t0);
    for (size_t nprobe : {16, 64}) {
      ivf.nprobe = nprobe;
      MeasureApprox("FAISS IVF" + std::to_string(nlist) + ",Flat nprobe=" + std::to_string(nprobe),
                    build_s, ivf, view, queries, latency, truth, /*rerank=*/0, n);
    }
  }
}

void RunAll(const Args& args, const RealFaces& real) {
  FaceGenerator gen(real, 42);
  const SpreadStats& st = gen.stats();
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("Real embeddings: %zu faces of %zu identities (%zu within-person residuals); "
              "RMS distance to the identity mean %.3f, between two random faces %.3f.\n"
              "Best kernels here: %s; scan threads: %d; FAISS OpenMP threads: %d; queries: batch %zu, "
              "latency over the first %zu.\n\n",
              st.faces, st.identities, st.residuals, st.within_rms, st.between_rms,
              fss::BestKernels().name, threads, omp_get_max_threads(), args.batch,
              args.latency_queries);
  PrintHeader();
  std::string ratios;
  for (size_t n : args.sizes) RunSize(args, gen, n, threads, &ratios);
  PrintRatioTable(ratios);
}
bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--embeddings") a->embeddings = value();
    else if (arg == "--sizes") {
      a->sizes.clear();
      std::stringstream ss(value());
      for (std::string s; std::getline(ss, s, ',');) a->sizes.push_back(std::stoull(s));
    } else if (arg == "--batch") a->batch = std::stoull(value());
    else if (arg == "--latency-queries") a->latency_queries = std::stoull(value());
    else if (arg == "--hnsw-max") a->hnsw_max = std::stoull(value());
    else if (arg == "--ivfflat-max") a->ivfflat_max = std::stoull(value());
    else if (arg == "--ivfpq-max") a->ivfpq_max = std::stoull(value());
    else if (arg == "--rerank") a->rerank = std::stoi(value());
    else if (arg == "--int8-rerank") {
      for (const auto& v : SplitCommas(value())) a->int8_rerank.push_back(std::stoi(v));
    } else if (arg == "--kernels") {
      for (const auto& v : SplitCommas(value())) {
        const fss::Kernels* k = fss::KernelsNamed(v);
        if (!k) {
          std::fprintf(stderr, "bench_search: kernel set %s is not supported here\n", v.c_str());
          return false;
        }
        a->kernels.push_back(k);
      }
    } else if (arg == "--skip") {
      for (const auto& v : SplitCommas(value())) a->skip.insert(v);
    }
    else {
      std::fprintf(stderr,
                   "usage: bench_search [--embeddings FILE.jsonl] [--sizes N,N...] [--batch 100]\n"
                   "  [--latency-queries 50] [--hnsw-max N] [--ivfflat-max N] [--ivfpq-max N] [--rerank 100]\n"
                   "  [--int8-rerank N,N...] [--kernels avx2,avx512vnni...]\n"
                   "  [--skip blas,flat,hnsw,ivfpq,ivfflat]\n"
                   "  (a method runs only at sizes up to its --*-max; 0 skips it)\n");
      return false;
    }
  }
  if (a->int8_rerank.empty()) a->int8_rerank.push_back(a->rerank);
  if (a->kernels.empty()) a->kernels.push_back(&fss::BestKernels());
  return !a->sizes.empty() && a->batch >= a->latency_queries && a->latency_queries > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  RealFaces real;
  std::string error;
  if (!LoadJsonl(args.embeddings, &real, &error)) {
    std::fprintf(stderr, "bench_search: %s\n", error.c_str());
    return 2;
  }
  try {
    RunAll(args, real);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_search: %s\n", e.what());
    return 1;
  }
  return 0;
}
