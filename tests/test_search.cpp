// The scans built on the kernels: top-k selection, the multithreaded exact search (against a plain
// sort), the int8 index with exact re-rank, the BLAS batch path, and VectorIndex::Search against
// FAISS's own IndexFlatL2.
#include <faiss/IndexFlat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "index/vector_index.h"
#include "search/blas_search.h"
#include "search/exact_search.h"
#include "search/int8_index.h"

using namespace facesearch;
using namespace facesearch::search;

namespace {

std::vector<float> Normal(size_t count, unsigned seed, float sigma = 0.1f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, sigma);
  std::vector<float> v(count);
  for (float& x : v) x = dist(rng);
  return v;
}

// Face-like data: clusters ("identities") of 10 rows with a within-cluster spread.
std::vector<float> Clustered(size_t n, unsigned seed) {
  auto centres = Normal((n / 10 + 1) * kDim, seed, 0.1f);
  auto noise = Normal(n * kDim, seed + 1, 0.03f);
  for (size_t i = 0; i < n; ++i)
    for (size_t d = 0; d < kDim; ++d) noise[i * kDim + d] += centres[(i / 10) * kDim + d];
  return noise;
}

// The k nearest by a full sort with the scalar reference: the ground truth.
std::vector<Neighbor> BruteForce(const std::vector<float>& rows, const float* query, int k) {
  const size_t n = rows.size() / kDim;
  std::vector<float> d(n);
  ScalarKernels().l2sqr(query, rows.data(), n, d.data());
  std::vector<Neighbor> all;
  for (size_t i = 0; i < n; ++i) all.push_back({static_cast<int64_t>(i), d[i]});
  std::sort(all.begin(), all.end(), NearerThan);
  all.resize(std::min<size_t>(all.size(), static_cast<size_t>(std::max(k, 0))));
  return all;
}

std::vector<int64_t> Ids(const std::vector<Neighbor>& hits) {
  std::vector<int64_t> ids;
  for (const auto& h : hits) ids.push_back(h.id);
  return ids;
}

}  // namespace

TEST_CASE("TopK keeps the k nearest, breaks distance ties by id and ignores NaN", "[search]") {
  TopK top(3);
  CHECK(top.bound() == std::numeric_limits<float>::infinity());
  top.Push(7, 2.f);
  top.Push(5, std::nanf(""));
  top.Push(9, 1.f);
  top.Push(3, 2.f);
  top.Push(1, 2.f);  // ties with 7 and 3 at 2.0: the smaller ids win
  top.Push(4, 5.f);
  const auto hits = top.TakeSorted();
  CHECK(Ids(hits) == std::vector<int64_t>{9, 1, 3});
  CHECK(TopK(0).TakeSorted().empty());
}

TEST_CASE("ExactSearch equals a full sort for any size, k, thread count and block size",
          "[search]") {
  for (size_t n : {size_t{0}, size_t{1}, size_t{9}, size_t{1000}, size_t{4099}}) {
    const auto rows = Normal(n * kDim, 10 + static_cast<unsigned>(n));
    const auto query = Normal(kDim, 99);
    for (int k : {-1, 0, 1, 10, 5000}) {
      const auto want = BruteForce(rows, query.data(), k);
      for (int threads : {1, 2, 3, 7}) {
        for (size_t block : {size_t{1}, size_t{100}, size_t{1024}}) {
          INFO("n=" << n << " k=" << k << " threads=" << threads << " block=" << block);
          ExactOptions opt;
          opt.scan = {threads, block};
          opt.kernels = &ScalarKernels();  // same rounding as the sort: near-ties cannot swap
          const auto got = ExactSearch({rows.data(), nullptr, n}, query.data(), k, opt);
          REQUIRE(Ids(got) == Ids(want));
          for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].dist2 == Approx(want[i].dist2));
        }
      }
    }
  }
}

TEST_CASE("ExactSearch reports the view's ids and is deterministic on exact ties", "[search]") {
  std::vector<float> rows(5 * kDim, 0.f);  // five identical rows: all at distance 0
  const std::vector<int64_t> ids = {50, 40, 30, 20, 10};
  const std::vector<float> query(kDim, 0.f);
  for (int threads : {1, 2, 5}) {
    ExactOptions opt;
    opt.scan.threads = threads;
    const auto got = ExactSearch({rows.data(), ids.data(), 5}, query.data(), 3, opt);
    CHECK(Ids(got) == std::vector<int64_t>{50, 40, 30});  // first rows win ties, whatever the split
  }
}

TEST_CASE("ExactSearchBatch and BlasSearchBatch give each query the same neighbours as "
          "ExactSearch", "[search]") {
  const size_t n = 3000, nq = 7;
  const auto rows = Clustered(n, 20);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 1000 + static_cast<int64_t>(i);
  const FlatView view{rows.data(), ids.data(), n};
  const auto queries = Normal(nq * kDim, 21);
  ExactOptions opt;
  opt.scan.threads = 2;
  const auto batch = ExactSearchBatch(view, queries.data(), nq, 10, opt);
  const auto blas = BlasSearchBatch(view, queries.data(), nq, 10, opt.scan);
  REQUIRE(batch.size() == nq);
  REQUIRE(blas.size() == nq);
  for (size_t q = 0; q < nq; ++q) {
    const auto single = ExactSearch(view, queries.data() + q * kDim, 10, opt);
    CHECK(Ids(batch[q]) == Ids(single));
    CHECK(Ids(blas[q]) == Ids(single));
    for (size_t i = 0; i < single.size(); ++i)
      CHECK(blas[q][i].dist2 == Approx(single[i].dist2).epsilon(1e-4));
  }
  CHECK(ExactSearchBatch(view, queries.data(), 0, 10).empty());
}

TEST_CASE("Int8Index returns exact distances and recall@10 of at least 0.99 after re-rank",
          "[search]") {
  const size_t n = 20000, nq = 20;
  const auto rows = Clustered(n, 30);
  const FlatView view{rows.data(), nullptr, n};
  const auto index = Int8Index::Build(view, 2);
  CHECK(index.code_bytes() == n * kDim);
  // Queries: perturbed copies of corpus rows, like a new photo of an indexed person.
  auto queries = Normal(nq * kDim, 31, 0.02f);
  for (size_t q = 0; q < nq; ++q)
    for (size_t d = 0; d < kDim; ++d) queries[q * kDim + d] += rows[(q * 997) * kDim + d];

  size_t found = 0;
  for (size_t q = 0; q < nq; ++q) {
    const float* query = queries.data() + q * kDim;
    const auto want = BruteForce(rows, query, 10);
    const auto got = index.Search(query, 10, 100);
    REQUIRE(got.size() == 10);
    for (const auto& h : got) {
      float exact = 0.f;
      BestKernels().l2sqr(query, rows.data() + h.id * kDim, 1, &exact);
      CHECK(h.dist2 == exact);
    }
    std::set<int64_t> truth;
    for (const auto& w : want) truth.insert(w.id);
    for (const auto& h : got) found += truth.count(h.id);
  }
  CHECK(static_cast<double>(found) / (nq * 10) >= 0.99);
}

TEST_CASE("Int8Index handles an empty matrix, k <= 0 and constant dimensions", "[search]") {
  const auto empty = Int8Index::Build({nullptr, nullptr, 0});
  const std::vector<float> query(kDim, 0.f);
  CHECK(empty.Search(query.data(), 10, 100).empty());

  std::vector<float> rows(3 * kDim, 0.25f);  // every dimension constant...
  rows[kDim] = 1.f;                          // ...except dimension 0
  const std::vector<int64_t> ids = {7, 8, 9};
  const auto index = Int8Index::Build({rows.data(), ids.data(), 3});
  CHECK(index.Search(query.data(), 0, 100).empty());
  const auto hits = index.Search(rows.data() + kDim, 3, 1);  // rerank < k: k is used
  REQUIRE(hits.size() == 3);
  CHECK(hits[0].id == 8);
  CHECK(hits[0].dist2 == 0.f);
}

TEST_CASE("VectorIndex::Search returns the same ids and distances as FAISS IndexFlatL2",
          "[search]") {
  const size_t n = 5000;
  const auto rows = Clustered(n, 40);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 3 * static_cast<int64_t>(i) + 1;
  auto index = VectorIndex::CreateEmpty();
  REQUIRE(index->Add(ids, rows));
  faiss::IndexFlatL2 reference(kEmbeddingDim);
  reference.add(static_cast<faiss::Index::idx_t>(n), rows.data());

  const auto queries = Normal(5 * kDim, 41);
  for (size_t q = 0; q < 5; ++q) {
    Embedding e{};
    std::copy_n(queries.begin() + static_cast<std::ptrdiff_t>(q * kDim), kDim, e.begin());
    const auto hits = index->Search(e, 10).value();
    std::vector<float> dist(10);
    std::vector<faiss::Index::idx_t> label(10);
    reference.search(1, e.data(), 10, dist.data(), label.data());
    REQUIRE(hits.size() == 10);
    for (size_t i = 0; i < 10; ++i) {
      CHECK(hits[i].face_id == ids[static_cast<size_t>(label[i])]);
      CHECK(hits[i].distance == Approx(std::sqrt(dist[i])).epsilon(1e-5));
    }
  }
}

TEST_CASE("VectorIndex::SearchBatch gives each probe exactly what Search gives it", "[search]") {
  const size_t n = 3000;
  const auto rows = Clustered(n, 50);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(i) + 1;
  auto index = VectorIndex::CreateEmpty();
  REQUIRE(index->Add(ids, rows));
  const auto raw = Normal(4 * kDim, 51);
  std::vector<Embedding> probes(4);
  for (size_t q = 0; q < 4; ++q)
    std::copy_n(raw.begin() + static_cast<std::ptrdiff_t>(q * kDim), kDim, probes[q].begin());
  const auto batch = index->SearchBatch(probes, 7).value();
  REQUIRE(batch.size() == 4);
  for (size_t q = 0; q < 4; ++q) {
    const auto single = index->Search(probes[q], 7).value();
    REQUIRE(batch[q].size() == single.size());
    for (size_t i = 0; i < single.size(); ++i) {
      CHECK(batch[q][i].face_id == single[i].face_id);
      CHECK(batch[q][i].distance == single[i].distance);
    }
  }
  CHECK(index->SearchBatch({}, 7).value().empty());
}
