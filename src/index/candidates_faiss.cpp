// The candidate structures of the FAISS kinds: ivf (IndexIVFFlat), ivfpq (IndexIVFPQ) and hnsw
// (IndexHNSWFlat). Their labels are row numbers of the flat store; the rows they pick are
// re-ranked with exact float distances. Every FAISS call is wrapped: FAISS throws
// faiss::FaissException (and may throw std::bad_alloc); nothing thrown here leaves src/index/.
//
// Erasure works in place, in time proportional to the erased rows (plus one pass over the list
// ids in memory): an IVF entry becomes a tombstone (id -1, its code scrubbed) that searches skip,
// an HNSW copy is overwritten, in memory and at the same bytes of the mapped file section the
// structure was read from. A loaded IVF structure's lists are that section's bytes
// (mapped_lists.h); HNSW's flat storage is found where FAISS's writer puts it (it ends the section)
// and checked against memory before anything is written; when the bytes are not there (a
// structure built in memory), the change needs a whole file.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>

#include <spdlog/spdlog.h>

#include "index/candidates.h"
#include "index/index_file.h"
#include "index/mapped_lists.h"

namespace facesearch {
namespace {

using idx_t = faiss::Index::idx_t;

// FAISS parallelises training with OpenMP; on small inputs the threads only wait for each other
// (seconds for a few faces on a loaded machine). Limits this thread's OpenMP team for a scope.
class OmpThreadsFor {
 public:
  explicit OmpThreadsFor(int64_t n) : saved_(omp_get_max_threads()) {
    if (n < kSerialBelow) omp_set_num_threads(1);
  }
  ~OmpThreadsFor() { omp_set_num_threads(saved_); }
  OmpThreadsFor(const OmpThreadsFor&) = delete;
  OmpThreadsFor& operator=(const OmpThreadsFor&) = delete;

 private:
  static constexpr int64_t kSerialBelow = 20'000;
  int saved_;
};

// The k nearest of the candidate rows (per_query per query, -1 for none) by exact distance.
Neighbors Rerank(const search::FlatView& flat, std::span<const Embedding> queries, int k,
                 const std::vector<idx_t>& rows, int per_query) {
  const search::Kernels& kernels = search::BestKernels();
  Neighbors found(queries.size());
  for (size_t qi = 0; qi < queries.size(); ++qi) {
    search::TopK top(static_cast<size_t>(k));
    for (int c = 0; c < per_query; ++c) {
      const int64_t row = rows[qi * static_cast<size_t>(per_query) + static_cast<size_t>(c)];
      if (row < 0 || row >= static_cast<int64_t>(flat.n)) continue;  // FAISS pads with -1
      float d2 = 0;
      kernels.l2sqr(queries[qi].data(), flat.rows + static_cast<size_t>(row) * kEmbeddingDim, 1, &d2);
      top.Push(row, d2);  // ties broken by row, like the exact scan
    }
    found[qi] = top.TakeSorted();
    search::MapIds(flat, found[qi]);
  }
  return found;
}

// What the FAISS kinds share: the structure exists only trained and holding every flat row
// (index_ is null otherwise, and searches scan exactly); it is trained by the first Prepare(true)
// over enough rows, fed every appended row, asked for max(k, rerank) candidates, saved as the
// file's second part and checked in full when loaded.
class FaissCandidates : public CandidateStructure {
 public:
  void Reset(bool keep_training) override {
    refill_ = keep_training && index_;
    if (refill_) index_->reset();  // lists or graph emptied; centroids and codebooks kept
    else index_.reset();
  }

  Status Prepare(const search::FlatView& flat, bool train) override {
    const auto n = static_cast<int64_t>(flat.n);
    if (refill_) {  // no training: the rows are encoded with what was trained before
      refill_ = false;
      return Guard(ErrorCode::kIndex, "cannot refill the approximate index", [&] {
        OmpThreadsFor threads(n);
        AddRows(*index_, n, flat.rows, 0);
      });
    }
    if (index_ || !train) return Ok();
    const IndexSpec eff = EffectiveIndexSpec(spec_, n);
    if (n < MinTrainingVectors(eff)) return Ok();  // too few to train: searches stay exact
    return Guard(ErrorCode::kIndex, std::string("cannot build the ") + IndexKindName(eff.kind) + " index",
                 [&] {
                   OmpThreadsFor threads(n);
                   std::unique_ptr<faiss::Index> index = NewUntrained(eff);
                   index->train(n, flat.rows);
                   AddRows(*index, n, flat.rows, 0);
                   index_ = std::move(index);
                 });
  }

  bool prepared() const override { return index_ != nullptr && !refill_; }

  bool CanRefillInBatches() const override { return index_ != nullptr; }

  Status RefillBatch(const float* rows, int64_t n, int64_t first_row) override {
    return Guard(ErrorCode::kIndex, "cannot refill the approximate index", [&] {
      OmpThreadsFor threads(n);
      AddRows(*index_, n, rows, first_row);
    });
  }

  void EndRefill() override { refill_ = false; }

  bool needs_training(int64_t n) const override {
    return !index_ && n > 0 && n >= MinTrainingVectors(EffectiveIndexSpec(spec_, n));
  }

  Result<Neighbors> Search(const search::FlatView& flat, std::span<const Embedding> queries,
                           int k) const override {
    const auto n = static_cast<int64_t>(flat.n);
    const int rerank = EffectiveIndexSpec(spec_, n).rerank;
    // FAISS picks max(k, rerank) candidate rows; they are re-ranked exactly.
    const int per_query = static_cast<int>(std::min<int64_t>(std::max(k, rerank), n));
    std::vector<idx_t> rows(queries.size() * static_cast<size_t>(per_query), -1);
    std::vector<float> approx_dist(rows.size());
    FS_TRY(Guard(ErrorCode::kIndex, "cannot search the approximate index", [&] {
      if (!queries.empty())
        SearchStructure(static_cast<idx_t>(queries.size()), queries.front().data(), per_query,
                        approx_dist.data(), rows.data());
    }));
    return Rerank(flat, queries, k, rows, per_query);
  }

  IndexSpec built_spec(int64_t n) const override {
    IndexSpec s = EffectiveIndexSpec(spec_, n);
    if (index_) DescribeBuilt(s);
    return s;
  }

  IndexFootprint footprint(int64_t n) const override { return index_ ? StructureFootprint(n) : IndexFootprint{}; }

  void Write(faiss::IOWriter& out) const override {
    if (index_) faiss::write_index(index_.get(), &out);
  }

  std::string Load(const search::FlatView& flat, const IndexFileHeader& header, std::string_view structure,
                   uint8_t* /*codes*/) override {
    if (header.has_codes) return "has a section its kind does not have";
    if (structure.empty()) return "";  // saved before the corpus was large enough to train it
    size_t read = 0;
    std::unique_ptr<faiss::Index> index = ReadFaissIndex(structure, &read, /*map_lists=*/true);
    if (read != structure.size()) return "has bytes that are not part of its indexes";
    if (std::string problem = Problem(index.get(), static_cast<int64_t>(flat.n)); !problem.empty())
      return "has the wrong layout: " + problem;
    index_ = std::move(index);
    ApplyQueryParams();  // the corpus setting's query-time parameters win over the file's
    return "";
  }

  Result<StructureErasure> EraseRows(std::span<const int64_t> rows, std::span<char> structure) override {
    if (!index_ || rows.empty()) return StructureErasure::kUntouched;
    bool in_file = false;
    FS_TRY(Guard(ErrorCode::kIndex, "cannot erase rows from the approximate index",
                 [&] { in_file = ScrubRows(rows, structure); }));
    return in_file ? StructureErasure::kInPlace : StructureErasure::kWholeFile;
  }

 protected:
  using CandidateStructure::CandidateStructure;
  // The fewest vectors the structure can be trained on with these (effective) parameters.
  virtual int64_t MinTrainingVectors(const IndexSpec& eff) const = 0;
  // A new, untrained structure for an effective spec.
  virtual std::unique_ptr<faiss::Index> NewUntrained(const IndexSpec& eff) const = 0;
  // Adds n rows x, numbered from first_row, to a trained structure.
  virtual void AddRows(faiss::Index& index, idx_t n, const float* x, idx_t first_row) const = 0;
  // Why a loaded structure of our dimension, metric and size is not this kind's FAISS type or is
  // inconsistent inside; "" when it is right.
  virtual std::string KindProblem(const faiss::Index& index, int64_t ntotal) = 0;
  // Scrubs flat rows from the trained structure (no code or copy of them left in it), and from
  // `structure`, the file section it was read from, when their bytes are found where FAISS wrote
  // them there. Returns whether they were (and the section scrubbed).
  virtual bool ScrubRows(std::span<const int64_t> rows, std::span<char> structure) = 0;
  // index_->search, as this kind must be asked.
  virtual void SearchStructure(idx_t nq, const float* x, idx_t k, float* distances, idx_t* labels) const {
    index_->search(nq, x, k, distances, labels);
  }
  // spec_'s query-time parameters (those set, not 0) onto index_.
  virtual void ApplyQueryParams() = 0;
  // The trained structure's parameters into `s`.
  virtual void DescribeBuilt(IndexSpec& s) const = 0;
  // The trained structure over n rows, as a process that opens the file holds it.
  virtual IndexFootprint StructureFootprint(int64_t n) const = 0;

  std::string WrongType() const {
    return std::string("its approximate part is not a FAISS ") + IndexKindName(spec_.kind) + " index";
  }

  std::unique_ptr<faiss::Index> index_;  // trained and holding every row, or null
  bool refill_ = false;                   // index_ trained but emptied by Reset(true)

 private:
  std::string Problem(const faiss::Index* index, int64_t ntotal) {
    if (!index) return "its approximate part is empty";
    if (index->d != kEmbeddingDim || index->metric_type != faiss::METRIC_L2)
      return "its approximate part is not L2 of dimension " + std::to_string(kEmbeddingDim);
    // Fewer is right in a file whose erasure took rows out of the IVF lists (before tombstones);
    // more is not.
    if (index->ntotal > ntotal || !index->is_trained)
      return "its approximate part holds " + std::to_string(index->ntotal) + " vectors, its main segment " +
             std::to_string(ntotal);
    return KindProblem(*index, ntotal);
  }
};

// ivf and ivfpq: an inverted file over k-means centroids; labels are given as row numbers.
class IvfCandidates : public FaissCandidates {
 protected:
  using FaissCandidates::FaissCandidates;

  const faiss::IndexIVF& ivf() const { return static_cast<const faiss::IndexIVF&>(*index_); }

  // The settings both IVF kinds share on a new structure. The spec already keeps >= 39 training
  // points per centroid where the corpus allows; below that (a handful of faces) FAISS's warning
  // on stderr says nothing useful, so the minimum is lowered to what k-means can run with.
  static void Configure(faiss::IndexIVF& index, const IndexSpec& eff) {
    index.own_fields = true;
    index.nprobe = eff.nprobe;
    index.cp.min_points_per_centroid = 1;
  }

  void AddRows(faiss::Index& index, idx_t n, const float* x, idx_t first_row) const override {
    std::vector<idx_t> rows(static_cast<size_t>(n));
    std::iota(rows.begin(), rows.end(), first_row);
    index.add_with_ids(n, x, rows.data());
  }

  // The inverted-file part of KindProblem, once the subclass has checked the type; counts the
  // tombstones of erased rows.
  std::string IvfProblem(const faiss::IndexIVF& index, int64_t ntotal) {
    if (!index.quantizer || index.quantizer->ntotal != static_cast<int64_t>(index.nlist) ||
        index.quantizer->d != kEmbeddingDim)
      return "its inverted-file quantizer is inconsistent";
    const faiss::InvertedLists* lists = index.invlists;
    if (!lists || lists->nlist != index.nlist || lists->code_size != index.code_size ||
        !(dynamic_cast<const MappedInvertedLists*>(lists) || dynamic_cast<const faiss::ArrayInvertedLists*>(lists)))
      return "its inverted lists are not the arrays FAISS writes";
    // Labels must be row numbers of the flat part: they index the float vectors in the re-rank.
    // -1 marks an erased row's entry.
    tombstones_ = 0;
    std::string problem;
    ForEachEntry(*lists, [&](size_t, size_t, idx_t id) {
      if (id == -1) ++tombstones_;
      else if (id < 0 || id >= ntotal) problem = "its inverted lists name rows outside the index";
    });
    return problem;
  }

  // fn(list, offset, id) for every entry (ids read with memcpy: unaligned in a mapped file).
  template <class Fn>
  static void ForEachEntry(const faiss::InvertedLists& lists, Fn&& fn) {
    for (size_t l = 0; l < lists.nlist; ++l) {
      const size_t n = lists.list_size(l);
      const auto* ids = reinterpret_cast<const char*>(lists.get_ids(l));
      for (size_t i = 0; i < n; ++i) {
        idx_t id = 0;
        std::memcpy(&id, ids + i * sizeof(idx_t), sizeof id);
        fn(l, i, id);
      }
    }
  }

  void Reset(bool keep_training) override {
    // Lists mapped from a file never shrink or grow: a refill gets FAISS's own arrays.
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get());
        keep_training && ivf && !dynamic_cast<faiss::ArrayInvertedLists*>(ivf->invlists))
      ivf->replace_invlists(new faiss::ArrayInvertedLists(ivf->nlist, ivf->code_size), /*own=*/true);
    FaissCandidates::Reset(keep_training);
    tombstones_ = 0;  // the lists are emptied, or the structure dropped
  }

  // An erased row's entry keeps its place in its list as a tombstone: id -1, code Scrubbed().
  // Lists mapped from a writer's file are the file's bytes: scrubbed there (in place, resealed by
  // Save); lists built in memory are scrubbed in memory, and only a whole new file holds that.
  bool ScrubRows(std::span<const int64_t> rows, std::span<char> structure) override {
    faiss::InvertedLists& lists = *static_cast<faiss::IndexIVF&>(*index_).invlists;
    auto* mapped = dynamic_cast<MappedInvertedLists*>(&lists);
    std::vector<bool> erased(static_cast<size_t>(*std::max_element(rows.begin(), rows.end()) + 1));
    for (int64_t row : rows) erased[static_cast<size_t>(row)] = true;
    std::vector<std::pair<size_t, size_t>> entries;  // (list, offset)
    ForEachEntry(lists, [&](size_t l, size_t i, idx_t id) {
      if (id >= 0 && static_cast<size_t>(id) < erased.size() && erased[static_cast<size_t>(id)]) entries.emplace_back(l, i);
    });
    const std::vector<uint8_t> scrubbed = Scrubbed();
    constexpr idx_t kTombstone = -1;
    for (const auto& [l, i] : entries) {
      if (!mapped) {
        lists.update_entry(l, i, kTombstone, scrubbed.data());
        continue;
      }
      std::memcpy(mapped->id_at(l, i), &kTombstone, sizeof kTombstone);
      std::memcpy(mapped->code_at(l, i), scrubbed.data(), scrubbed.size());
    }
    tombstones_ += static_cast<int64_t>(entries.size());
    return mapped && !structure.empty() && mapped->begin() >= structure.data() &&
           mapped->end() <= structure.data() + structure.size();
  }

  // With tombstones in the lists, FAISS is asked to pass over them (an IDSelector on the ids):
  // otherwise they would take candidate places (label -1) and a search could come back short.
  void SearchStructure(idx_t nq, const float* x, idx_t k, float* distances, idx_t* labels) const override {
    if (tombstones_ == 0) return index_->search(nq, x, k, distances, labels);
    faiss::IDSelectorRange live(0, std::numeric_limits<idx_t>::max());
    faiss::SearchParametersIVF params;
    params.nprobe = ivf().nprobe;
    params.max_codes = ivf().max_codes;
    params.sel = &live;
    index_->search(nq, x, k, distances, labels, &params);
  }

  // The code an erased entry keeps (code_size bytes), saying nothing of the face.
  virtual std::vector<uint8_t> Scrubbed() const = 0;

  int64_t tombstones_ = 0;  // entries of erased rows in the lists

  void ApplyQueryParams() override {
    auto& index = static_cast<faiss::IndexIVF&>(*index_);
    if (spec_.nprobe > 0) index.nprobe = std::min<size_t>(spec_.nprobe, index.nlist);
  }

  void SetProbes(int nprobe) override {
    spec_.nprobe = nprobe;
    ApplyQueryParams();
  }

  void DescribeBuilt(IndexSpec& s) const override {
    s.nlist = static_cast<int>(ivf().nlist);
    s.nprobe = static_cast<int>(ivf().nprobe);
  }

  IndexFootprint StructureFootprint(int64_t n) const override {
    // The centroids and each list's place are read; the lists stay in the file (mapped_lists.h).
    return {static_cast<int64_t>(ivf().nlist * (kEmbeddingDim * sizeof(float) + 2 * sizeof(size_t))),
            n * static_cast<int64_t>(ivf().code_size + sizeof(idx_t))};
  }
};

class IvfFlatCandidates final : public IvfCandidates {
 public:
  explicit IvfFlatCandidates(const IndexSpec& spec) : IvfCandidates(spec) {}

 private:
  int64_t MinTrainingVectors(const IndexSpec& eff) const override { return std::max(1, eff.nlist); }

  std::unique_ptr<faiss::Index> NewUntrained(const IndexSpec& eff) const override {
    auto quantizer = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
    auto index = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), kEmbeddingDim, eff.nlist);
    quantizer.release();
    Configure(*index, eff);
    return index;
  }

  std::string KindProblem(const faiss::Index& index, int64_t ntotal) override {
    const auto* ivf = dynamic_cast<const faiss::IndexIVFFlat*>(&index);
    return ivf ? IvfProblem(*ivf, ntotal) : WrongType();
  }

  // An IVF-Flat code is the vector itself: the flat store's erased value.
  std::vector<uint8_t> Scrubbed() const override {
    const std::vector<float> row(kEmbeddingDim, kErasedValue);
    const auto* bytes = reinterpret_cast<const uint8_t*>(row.data());
    return {bytes, bytes + row.size() * sizeof(float)};
  }
};

class IvfPqCandidates final : public IvfCandidates {
 public:
  explicit IvfPqCandidates(const IndexSpec& spec) : IvfCandidates(spec) {}

 private:
  const faiss::IndexIVFPQ& pq() const { return static_cast<const faiss::IndexIVFPQ&>(*index_); }

  int64_t MinTrainingVectors(const IndexSpec& eff) const override {
    return std::max<int64_t>({1, eff.nlist, int64_t{1} << eff.pq_bits});
  }

  std::unique_ptr<faiss::Index> NewUntrained(const IndexSpec& eff) const override {
    auto quantizer = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
    auto index = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), kEmbeddingDim, eff.nlist, eff.pq_m,
                                                     eff.pq_bits);
    quantizer.release();
    Configure(*index, eff);
    index->pq.cp.min_points_per_centroid = 1;
    return index;
  }

  std::string KindProblem(const faiss::Index& index, int64_t ntotal) override {
    const auto* ivf = dynamic_cast<const faiss::IndexIVFPQ*>(&index);
    return ivf ? IvfProblem(*ivf, ntotal) : WrongType();
  }

  std::vector<uint8_t> Scrubbed() const override { return std::vector<uint8_t>(pq().code_size, 0); }

  void DescribeBuilt(IndexSpec& s) const override {
    IvfCandidates::DescribeBuilt(s);
    s.pq_m = static_cast<int>(pq().pq.M);
    s.pq_bits = static_cast<int>(pq().pq.nbits);
  }

  IndexFootprint StructureFootprint(int64_t n) const override {
    IndexFootprint f = IvfCandidates::StructureFootprint(n);
    f.resident_bytes += static_cast<int64_t>((pq().pq.centroids.size() + pq().precomputed_table.size()) * sizeof(float));
    return f;
  }
};

// hnsw: a navigable graph over its own copy of the vectors; labels are insertion order, which is
// the flat row order because every row is added in order.
class HnswCandidates final : public FaissCandidates {
 public:
  explicit HnswCandidates(const IndexSpec& spec) : FaissCandidates(spec) {}

 private:
  const faiss::IndexHNSWFlat& hnsw() const { return static_cast<const faiss::IndexHNSWFlat&>(*index_); }

  int64_t MinTrainingVectors(const IndexSpec& /*eff*/) const override { return 1; }

  std::unique_ptr<faiss::Index> NewUntrained(const IndexSpec& eff) const override {
    auto index = std::make_unique<faiss::IndexHNSWFlat>(kEmbeddingDim, eff.hnsw_m);
    index->hnsw.efConstruction = eff.ef_construction;
    index->hnsw.efSearch = eff.ef_search;
    return index;
  }

  void AddRows(faiss::Index& index, idx_t n, const float* x, idx_t /*first_row*/) const override {
    index.add(n, x);  // labels = rows
  }

  // The graph of a loaded file must stay inside its own rows (FAISS follows it unchecked).
  std::string KindProblem(const faiss::Index& loaded, int64_t /*ntotal*/) override {
    const auto* index = dynamic_cast<const faiss::IndexHNSWFlat*>(&loaded);
    if (!index) return WrongType();
    const faiss::HNSW& g = index->hnsw;
    const int64_t n = index->ntotal;
    if (static_cast<int64_t>(g.levels.size()) != n || static_cast<int64_t>(g.offsets.size()) != n + 1 ||
        g.offsets.back() != g.neighbors.size() || (n > 0 && (g.entry_point < 0 || g.entry_point >= n)) ||
        g.cum_nneighbor_per_level.empty())
      return "its HNSW graph is inconsistent";
    for (size_t i = 1; i < g.offsets.size(); ++i)
      if (g.offsets[i] < g.offsets[i - 1]) return "its HNSW graph is inconsistent";
    for (int64_t i = 0; i < n; ++i)
      if (g.levels[i] < 1 || g.levels[i] > g.max_level + 1 ||
          static_cast<size_t>(g.levels[i]) >= g.cum_nneighbor_per_level.size() ||
          g.offsets[i + 1] - g.offsets[i] != static_cast<size_t>(g.cum_nneighbor_per_level[g.levels[i]]))
        return "its HNSW graph is inconsistent";
    for (faiss::HNSW::storage_idx_t v : g.neighbors)
      if (v < -1 || v >= n) return "its HNSW graph links outside the index";
    if (!index->storage || index->storage->ntotal != n || index->storage->d != kEmbeddingDim)
      return "its HNSW storage is inconsistent";
    return "";
  }

  // FAISS cannot remove HNSW nodes: the erased rows' copies are overwritten, as in the flat store,
  // and the graph keeps routing through them (no embedding is left in a link). FAISS writes the
  // flat storage last, its vectors last of all (their count as floats / 4, then the bytes): the
  // section ends with row after row.
  bool ScrubRows(std::span<const int64_t> rows, std::span<char> structure) override {
    auto& storage = static_cast<faiss::IndexFlat&>(*static_cast<faiss::IndexHNSWFlat&>(*index_).storage);
    const size_t bytes = storage.codes.size();
    constexpr size_t kRowBytes = kEmbeddingDim * sizeof(float);
    bool in_file = structure.size() >= bytes + sizeof(size_t);
    const size_t first = structure.size() - bytes;
    if (in_file) {
      size_t count = 0;
      std::memcpy(&count, structure.data() + first - sizeof count, sizeof count);
      in_file = count == bytes / 4;
    }
    for (int64_t row : rows)
      in_file = in_file && std::memcmp(structure.data() + first + static_cast<size_t>(row) * kRowBytes,
                                       storage.codes.data() + static_cast<size_t>(row) * kRowBytes, kRowBytes) == 0;
    for (int64_t row : rows) {
      float* copy = storage.get_xb() + static_cast<size_t>(row) * kEmbeddingDim;
      std::fill_n(copy, kEmbeddingDim, kErasedValue);
      if (in_file) std::memcpy(structure.data() + first + static_cast<size_t>(row) * kRowBytes, copy, kRowBytes);
    }
    return in_file;
  }

  void ApplyQueryParams() override {
    if (spec_.ef_search > 0) static_cast<faiss::IndexHNSWFlat&>(*index_).hnsw.efSearch = spec_.ef_search;
  }

  void DescribeBuilt(IndexSpec& s) const override {
    s.hnsw_m = hnsw().hnsw.nb_neighbors(1);
    s.ef_construction = hnsw().hnsw.efConstruction;
    s.ef_search = hnsw().hnsw.efSearch;
  }

  IndexFootprint StructureFootprint(int64_t n) const override {  // FAISS reads all of it
    const faiss::HNSW& g = hnsw().hnsw;
    return {n * static_cast<int64_t>(kEmbeddingDim * sizeof(float)) +  // HNSWFlat's own copy
                static_cast<int64_t>(g.neighbors.size() * sizeof(g.neighbors[0]) +
                                     g.levels.size() * sizeof(int) + g.offsets.size() * sizeof(size_t)),
            0};
  }
};

}  // namespace

std::unique_ptr<CandidateStructure> CreateFaissCandidates(const IndexSpec& spec) {
  switch (spec.kind) {
    case IndexKind::kIvf: return std::make_unique<IvfFlatCandidates>(spec);
    case IndexKind::kIvfPq: return std::make_unique<IvfPqCandidates>(spec);
    default: return std::make_unique<HnswCandidates>(spec);
  }
}

}  // namespace facesearch
