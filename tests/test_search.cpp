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

// Recall@10 of Int8Index (re-rank `rerank`) against the full sort, over nq queries that are
// perturbed copies of corpus rows (a new photo of an indexed person) or, with near_rows false,
// fresh draws from the same Gaussian as Normal(). Checks on the way that every returned distance is
// the exact one and that every kernel set returns the same neighbours.
double Int8Recall(const std::vector<float>& rows, size_t nq, int rerank, unsigned seed,
                  bool near_rows = true) {
  const size_t n = rows.size() / kDim;
  const FlatView view{rows.data(), nullptr, n};
  const auto index = Int8Index::Build(view, 2);
  auto queries = Normal(nq * kDim, seed, near_rows ? 0.02f : 0.1f);
  for (size_t q = 0; q < nq && near_rows; ++q)
    for (size_t d = 0; d < kDim; ++d) queries[q * kDim + d] += rows[((q * 997) % n) * kDim + d];
  size_t found = 0;
  for (size_t q = 0; q < nq; ++q) {
    const float* query = queries.data() + q * kDim;
    const auto want = BruteForce(rows, query, 10);
    ExactOptions scalar;
    scalar.kernels = &ScalarKernels();
    const auto got = index.Search(query, 10, rerank, scalar);
    REQUIRE(got.size() == 10);
    for (const auto& h : got) {
      float exact = 0.f;
      ScalarKernels().l2sqr(query, rows.data() + h.id * kDim, 1, &exact);
      CHECK(h.dist2 == exact);
    }
    for (const Kernels* k : SupportedKernels()) {
      ExactOptions opt;
      opt.kernels = k;
      opt.scan.threads = 2;
      INFO(k->name << " query " << q);
      CHECK(Ids(index.Search(query, 10, rerank, opt)) == Ids(got));  // integer distances: no ties differ
    }
    std::set<int64_t> truth;
    for (const auto& w : want) truth.insert(w.id);
    for (const auto& h : got) found += truth.count(h.id);
  }
  return static_cast<double>(found) / static_cast<double>(nq * 10);
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

TEST_CASE("ExactSearch equals a full sort when the rows span many scan chunks", "[search]") {
  // 40,000 rows: more than two 16,384-row chunks, so threads take several chunks each and the
  // last one is partial.
  const size_t n = 40000;
  const auto rows = Clustered(n, 15);
  const auto queries = Normal(3 * kDim, 16);
  for (size_t q = 0; q < 3; ++q) {
    const auto want = BruteForce(rows, queries.data() + q * kDim, 10);
    for (int threads : {1, 2, 3}) {
      ExactOptions opt;
      opt.scan.threads = threads;
      opt.kernels = &ScalarKernels();
      INFO("query " << q << " threads " << threads);
      CHECK(Ids(ExactSearch({rows.data(), nullptr, n}, queries.data() + q * kDim, 10, opt)) ==
            Ids(want));
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


TEST_CASE("Int8Index returns exact distances and recall@10 of at least 0.99 after re-rank on "
          "clustered data with every kernel set", "[search]") {
  CHECK(Int8Recall(Clustered(20000, 30), 20, 100, 31) >= 0.99);
}

TEST_CASE("Int8Index reaches recall@10 of at least 0.99 on unclustered Gaussian data", "[search]") {
  // The hard case for a coarse scan: in 128 dimensions every row is at nearly the same distance.
  const auto rows = Normal(5000 * kDim, 32);
  CHECK(Int8Recall(rows, 20, 100, 33) >= 0.99);
  CHECK(Int8Recall(rows, 20, 100, 34, /*near_rows=*/false) >= 0.99);
  // No re-rank beyond k: the code distances alone already rank nearly all of the true 10 first.
  CHECK(Int8Recall(rows, 20, 10, 34, /*near_rows=*/false) >= 0.9);
}

TEST_CASE("Int8Index code distances are within the rounding bound of the true distances",
          "[search]") {
  const size_t n = 2000;
  const auto rows = Clustered(n, 34);
  const auto index = Int8Index::Build({rows.data(), nullptr, n}, 1);
  const float step = index.step();
  REQUIRE(step > 0.f);
  CHECK(index.scale() == std::vector<float>(kDim, step));
  REQUIRE(index.offset().size() == kDim);
  const auto query = Normal(kDim, 35);
  std::vector<uint8_t> qcodes(kDim);
  index.Encode(query.data(), qcodes.data());
  std::vector<float> code_d2(n), true_d2(n);
  ScalarKernels().l2sqr_codes(qcodes.data(), index.codes(), n, code_d2.data());
  ScalarKernels().l2sqr(query.data(), rows.data(), n, true_d2.data());
  // Each vector moves by at most sqrt(kDim) * step / 2 when rounded (if not clipped), so the
  // distance between the codes is within sqrt(kDim) * step of the true one (triangle inequality).
  // Clipping (a value beyond the trained range) can only add to that, and the query here is not
  // from the corpus, so allow a few rows past the bound.
  size_t beyond = 0;
  for (size_t i = 0; i < n; ++i) {
    const double approx = step * std::sqrt(static_cast<double>(code_d2[i]));
    beyond += std::abs(approx - std::sqrt(static_cast<double>(true_d2[i]))) >
              std::sqrt(static_cast<double>(kDim)) * step * 1.0001;
  }
  CHECK(beyond <= n / 100);
}

TEST_CASE("Int8Index encodes by rounding to the nearest step and clamps out-of-range values and "
          "NaN", "[search]") {
  const size_t n = 1000;
  const auto rows = Normal(n * kDim, 36);
  const auto index = Int8Index::Build({rows.data(), nullptr, n});
  for (size_t i = 0; i < n; i += 97) {
    for (size_t d = 0; d < kDim; ++d) {
      const float x = rows[i * kDim + d];
      const float c = index.codes()[i * kDim + d];
      const float decoded = index.offset()[d] + index.step() * c;
      INFO("row " << i << " dim " << d);
      if (c > 0 && c < 255) CHECK(std::abs(decoded - x) <= 0.5001f * index.step());
      if (c == 0) CHECK(x <= decoded + 0.5001f * index.step());
      if (c == 255) CHECK(x >= decoded - 0.5001f * index.step());
    }
  }
  std::vector<float> odd(kDim, 0.f);
  odd[0] = 1e9f;
  odd[1] = -1e9f;
  odd[2] = std::nanf("");
  std::vector<uint8_t> codes(kDim);
  index.Encode(odd.data(), codes.data());
  CHECK(codes[0] == 255);
  CHECK(codes[1] == 0);
  CHECK(codes[2] == 0);
}

TEST_CASE("Int8Index trains on the finite values when some rows hold NaN or infinity",
          "[search]") {
  const size_t n = 1000;
  auto rows = Normal(n * kDim, 39);
  for (size_t i = 0; i < n; i += 50) {  // 20 bad rows, every dimension of them
    for (size_t d = 0; d < kDim; ++d)
      rows[i * kDim + d] = d % 3 == 0   ? std::nanf("")
                           : d % 3 == 1 ? std::numeric_limits<float>::infinity()
                                        : -std::numeric_limits<float>::infinity();
  }
  const auto index = Int8Index::Build({rows.data(), nullptr, n});
  CHECK(std::isfinite(index.step()));
  CHECK(index.step() < 0.01f);  // the range of the Gaussian values (sigma 0.1), not of infinity
  for (float o : index.offset()) CHECK(std::isfinite(o));
  const auto hits = index.Search(rows.data() + 7 * kDim, 5, 50);
  REQUIRE(!hits.empty());
  CHECK(hits[0].id == 7);
  CHECK(hits[0].dist2 == 0.f);
  for (const auto& h : hits) CHECK(h.id % 50 != 0);  // rows with NaN never match
}

TEST_CASE("Int8Index batch search and a copied index give each query what Search gives it",
          "[search]") {
  const size_t n = 3000, nq = 5;
  const auto rows = Clustered(n, 37);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 500 + static_cast<int64_t>(i);
  const auto index = Int8Index::Build({rows.data(), ids.data(), n});
  const Int8Index copy = index;  // the code buffer is copied, not shared
  REQUIRE(copy.codes() != index.codes());
  const auto queries = Normal(nq * kDim, 38);
  const auto batch = index.SearchBatch(queries.data(), nq, 10, 50);
  REQUIRE(batch.size() == nq);
  for (size_t q = 0; q < nq; ++q) {
    const auto single = index.Search(queries.data() + q * kDim, 10, 50);
    CHECK(Ids(batch[q]) == Ids(single));
    CHECK(Ids(copy.Search(queries.data() + q * kDim, 10, 50)) == Ids(single));
    for (const auto& h : single) CHECK(h.id >= 500);
  }
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
