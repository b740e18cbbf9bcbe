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
#include <cstdio>
#include <functional>
#include <memory>
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
  size_t hnsw_max = 1000000, ivfflat_max = 1000000;
  int rerank = 100;
};

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

void RunSize(const Args& args, FaceGenerator& gen, size_t n, int threads) {
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
  const double float_bound_ms = StreamSeconds(flat.get_xb(), n * kDim * sizeof(float), threads) * 1e3;
  std::printf("| %gM | *read the %.2f GB of float32 vectors once* | – | %.2f | – | – | – | 1.00 | – |\n",
              n / 1e6, n * kDim * 4 / 1e9, float_bound_ms);

  {  // ours, exact float32
    ResetPeakRss();
    Row r{std::string("ours exact float32 (") + fss::BestKernels().name + ")"};
    r.bound_ms = float_bound_ms;
    Lists got = Measure(
        r, queries, latency, [&](const float* q) { return fss::ExactSearch(view, q, kK); },
        [&] { return fss::ExactSearchBatch(view, queries.data(), nq, kK); });
    r.recall = Recall(got, truth);
    Print(n, r, PeakRssGiB());
    ResetPeakRss();
    Row b{"ours exact float32, BLAS sgemm"};
    b.bound_ms = float_bound_ms;
    got = Measure(
        b, queries, latency,
        [&](const float* q) { return fss::BlasSearchBatch(view, q, 1, kK)[0]; },
        [&] { return fss::BlasSearchBatch(view, queries.data(), nq, kK); });
    b.recall = Recall(got, truth);
    Print(n, b, PeakRssGiB());
  }
  {  // ours, int8 codes + exact re-rank
    ResetPeakRss();
    t0 = Clock::now();
    const auto int8 = fss::Int8Index::Build(view, threads);
    Row r{"ours int8 + exact re-rank " + std::to_string(args.rerank)};
    r.build_s = Seconds(t0);
    const double bound = StreamSeconds(int8.codes(), int8.code_bytes(), threads) * 1e3;
    std::printf("| %gM | *read the %.2f GB of int8 codes once* | – | %.2f | – | – | – | 1.00 | – |\n",
                n / 1e6, int8.code_bytes() / 1e9, bound);
    r.bound_ms = bound;
    Lists got = Measure(
        r, queries, latency,
        [&](const float* q) { return int8.Search(q, kK, args.rerank); },
        [&] { return int8.SearchBatch(queries.data(), nq, kK, args.rerank); });
    r.recall = Recall(got, truth);
    Print(n, r, PeakRssGiB());
  }
  {  // FAISS IndexFlatL2 (Debian's generic x86-64 build)
    ResetPeakRss();
    Row r{"FAISS IndexFlatL2"};
    r.bound_ms = float_bound_ms;
    auto search = [&](const float* q, size_t count) {
      std::vector<float> d(count * kK);
      std::vector<int64_t> l(count * kK);
      flat.search(static_cast<int64_t>(count), q, kK, d.data(), l.data());
      return FromFaiss(count, kK, d, l);
    };
    Lists got = Measure(
        r, queries, latency, [&](const float* q) { return search(q, 1)[0]; },
        [&] { return search(queries.data(), nq); });
    r.recall = Recall(got, truth);
    Print(n, r, PeakRssGiB());
  }
  if (n <= args.hnsw_max) {
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
  {  // IVF-PQ: 32 bytes per vector
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
  if (n <= args.ivfflat_max) {
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
              "Kernels: %s; scan threads: %d; FAISS OpenMP threads: %d; queries: batch %zu, "
              "latency over the first %zu.\n\n",
              st.faces, st.identities, st.residuals, st.within_rms, st.between_rms,
              fss::BestKernels().name, threads, omp_get_max_threads(), args.batch,
              args.latency_queries);
  PrintHeader();
  for (size_t n : args.sizes) RunSize(args, gen, n, threads);
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
    else if (arg == "--rerank") a->rerank = std::stoi(value());
    else {
      std::fprintf(stderr,
                   "usage: bench_search [--embeddings FILE.jsonl] [--sizes N,N...] [--batch 100]\n"
                   "  [--latency-queries 50] [--hnsw-max N] [--ivfflat-max N] [--rerank 100]\n");
      return false;
    }
  }
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
