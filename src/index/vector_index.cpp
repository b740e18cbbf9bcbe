// The flat store of exact float vectors, delegating every kind-specific step to the candidate
// structure (candidates.h) and the file format to index_file.h. Every FAISS call is wrapped: FAISS
// throws faiss::FaissException (and may throw std::bad_alloc); nothing thrown here leaves this file.
#include "index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_set>

#include "common/fs.h"
#include "common/sha256.h"
#include "index/candidates.h"

namespace facesearch {
namespace {

using idx_t = faiss::Index::idx_t;

// The only layout we write and accept (LayoutProblem checks loaded files).
const faiss::IndexIDMap2& IdMap(const faiss::Index& index) {
  return static_cast<const faiss::IndexIDMap2&>(index);
}

const faiss::IndexFlat& FlatOf(const faiss::Index& index) {
  return static_cast<const faiss::IndexFlat&>(*IdMap(index).index);
}

search::FlatView ViewOf(const faiss::Index& index) {
  const auto& map = IdMap(index);
  return search::FlatView{FlatOf(index).get_xb(), map.id_map.data(), static_cast<size_t>(map.ntotal)};
}

// Checks that a deserialised index is exactly our layout; returns why not, or "" when it is.
std::string LayoutProblem(const faiss::Index* index) {
  const auto* map = dynamic_cast<const faiss::IndexIDMap2*>(index);
  if (!map) return "it is not an IndexIDMap2";
  if (map->d != kEmbeddingDim) return "its dimension is " + std::to_string(map->d);
  const auto* flat = dynamic_cast<const faiss::IndexFlat*>(map->index);
  if (!flat || flat->metric_type != faiss::METRIC_L2 || flat->d != kEmbeddingDim)
    return "its storage is not a flat L2 index of dimension " + std::to_string(kEmbeddingDim);
  if (map->metric_type != faiss::METRIC_L2) return "its metric is not L2";
  if (map->ntotal != flat->ntotal || map->id_map.size() != static_cast<size_t>(map->ntotal) ||
      map->rev_map.size() != map->id_map.size())
    return "its id map is inconsistent";
  return "";
}

std::vector<std::vector<Hit>> ToHits(const Neighbors& found) {
  std::vector<std::vector<Hit>> result(found.size());
  for (size_t q = 0; q < found.size(); ++q) {
    result[q].reserve(found[q].size());
    // Squared L2 from the kernels; never negative, unlike FAISS's expanded form.
    for (const auto& f : found[q]) result[q].push_back({f.id, std::sqrt(f.dist2)});
  }
  return result;
}

// Fixed seed: the same corpus and parameters give the same structure and the same recall figure.
constexpr uint64_t kRecallSeed = 20261126;

}  // namespace

VectorIndex::VectorIndex(faiss::Index* index, std::unique_ptr<CandidateStructure> candidates)
    : index_(index), candidates_(std::move(candidates)) {
  for (idx_t id : IdMap(*index_).id_map) max_id_ = std::max<int64_t>(max_id_, id);
}

VectorIndex::~VectorIndex() = default;

std::unique_ptr<VectorIndex> VectorIndex::CreateEmpty(const IndexSpec& spec) {
  auto flat = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
  auto map = std::make_unique<faiss::IndexIDMap2>(flat.get());
  flat.release();
  map->own_fields = true;
  return std::unique_ptr<VectorIndex>(new VectorIndex(map.release(), CandidateStructure::Create(spec)));
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::Load(const std::filesystem::path& path,
                                                       int64_t expected_size,
                                                       const std::string& expected_sha256,
                                                       const IndexStamp& expected,
                                                       const IndexSpec& params) {
  auto corrupt = [&](const std::string& why) {
    return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + why);
  };
  FS_ASSIGN(const CheckedIndexFile file, ReadIndexFile(path, expected_size, expected_sha256, expected));
  const IndexFileHeader& header = file.header;
  const std::string cannot_read = "cannot read index file " + path.string();

  // FAISS parses straight from the checked bytes (no second copy of the file in memory).
  const std::string_view flat_bytes = file.flat();
  std::unique_ptr<faiss::Index> index;
  size_t flat_read = 0;
  FS_TRY(Guard(ErrorCode::kCorrupt, cannot_read, [&] { index = ReadFaissIndex(flat_bytes, &flat_read); }));
  if (std::string problem = LayoutProblem(index.get()); !problem.empty())
    return corrupt("has the wrong layout: " + problem);
  if (flat_read != flat_bytes.size()) return corrupt("has bytes that are not part of its indexes");
  // The kind is the file's; the corpus setting's parameters apply when they name the same kind.
  const IndexSpec spec = params.kind == header.kind ? params : IndexSpec{.kind = header.kind};
  auto loaded = std::unique_ptr<VectorIndex>(new VectorIndex(index.release(), CandidateStructure::Create(spec)));
  if (loaded->ntotal() != header.ntotal || loaded->max_id() != header.max_face_id)
    return corrupt("holds " + std::to_string(loaded->ntotal()) + " vectors up to id " +
                   std::to_string(loaded->max_id()) + ", its header says " +
                   std::to_string(header.ntotal) + " up to " + std::to_string(header.max_face_id));
  if (const std::string_view structure = file.structure(); !structure.empty()) {
    std::string problem;
    FS_TRY(Guard(ErrorCode::kCorrupt, cannot_read,
                 [&] { problem = loaded->candidates_->Load(structure, loaded->ntotal()); }));
    if (!problem.empty()) return corrupt(problem);
  }
  FS_TRY(loaded->Prepare(/*train=*/false));  // int8 codes; training is the caller's decision
  return loaded;
}

Status VectorIndex::Add(std::span<const int64_t> ids, std::span<const float> vectors) {
  if (vectors.size() != ids.size() * kEmbeddingDim)
    return Fail(ErrorCode::kInvalidArgument,
                "index add: " + std::to_string(ids.size()) + " ids but " +
                    std::to_string(vectors.size()) + " floats");
  // IndexIDMap2 silently corrupts its reverse map on a repeated id: refuse those up front.
  const auto& rev_map = IdMap(*index_).rev_map;
  std::unordered_set<int64_t> seen;
  for (int64_t id : ids) {
    if (rev_map.count(id) || !seen.insert(id).second)
      return Fail(ErrorCode::kInvalidArgument, "face id " + std::to_string(id) +
                                                   " is already in the vector index");
  }
  if (ids.empty()) return Ok();
  static_assert(sizeof(idx_t) == sizeof(int64_t));
  const idx_t first_row = index_->ntotal;
  candidates_->RowsMoving();
  FS_TRY(Guard(ErrorCode::kIndex, "cannot add to the vector index", [&] {
    index_->add_with_ids(static_cast<idx_t>(ids.size()), vectors.data(),
                         reinterpret_cast<const idx_t*>(ids.data()));
  }));
  max_id_ = std::max(max_id_, *std::max_element(ids.begin(), ids.end()));
  candidates_->Appended(first_row, vectors);
  return Ok();
}

Status VectorIndex::Prepare(bool train) {
  if (ntotal() == 0) return Ok();
  return candidates_->Prepare(ViewOf(*index_), train);
}

bool VectorIndex::needs_training() const { return candidates_->needs_training(ntotal()); }

bool VectorIndex::prepared() const { return candidates_->prepared(); }

const IndexSpec& VectorIndex::spec() const { return candidates_->spec(); }

// Exact search with our SIMD scan (src/search/) over the flat index's own storage: FAISS's
// generic-x86-64 build is compute-bound here, ours runs at memory speed (docs/benchmarks.md).
Result<std::vector<Hit>> VectorIndex::Search(const Embedding& query, int k) const {
  FS_ASSIGN(auto hits, SearchBatch(std::span<const Embedding>(&query, 1), k));
  return std::move(hits.front());
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchExactBatch(std::span<const Embedding> queries,
                                                                    int k) const {
  FS_ASSIGN(const Neighbors found, ExactNeighbors(ViewOf(*index_), queries, k));
  return ToHits(found);
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchBatch(std::span<const Embedding> queries,
                                                               int k) const {
  // Until the structure is built (or with nothing to find) every search is exact.
  if (ntotal() == 0 || k <= 0 || !candidates_->prepared()) return SearchExactBatch(queries, k);
  FS_ASSIGN(const Neighbors found, candidates_->Search(ViewOf(*index_), queries, k));
  return ToHits(found);
}

Result<RecallMeasure> VectorIndex::MeasureRecall(int queries) const {
  const int64_t n = ntotal();
  RecallMeasure m;
  if (n < 2 || queries <= 0) return m;
  const size_t nq = static_cast<size_t>(std::min<int64_t>(queries, n));
  // nq distinct rows at random (fixed seed).
  std::mt19937_64 rng(kRecallSeed);
  std::vector<int64_t> picked;
  if (static_cast<int64_t>(nq) == n) {
    picked.resize(nq);
    std::iota(picked.begin(), picked.end(), int64_t{0});
  } else {
    std::unordered_set<int64_t> seen;
    std::uniform_int_distribution<int64_t> pick(0, n - 1);
    while (picked.size() < nq)
      if (int64_t r = pick(rng); seen.insert(r).second) picked.push_back(r);
  }
  const search::FlatView view = ViewOf(*index_);
  std::vector<Embedding> probes(nq);
  for (size_t i = 0; i < nq; ++i)
    std::copy_n(view.rows + static_cast<size_t>(picked[i]) * kEmbeddingDim, kEmbeddingDim, probes[i].begin());
  constexpr int kAt = 10;
  FS_ASSIGN(auto exact, SearchExactBatch(probes, kAt + 1));
  FS_ASSIGN(auto approx, SearchBatch(probes, kAt + 1));
  int64_t truth = 0, found = 0;
  for (size_t i = 0; i < nq; ++i) {
    const int64_t self = view.ids[picked[i]];
    auto others = [&](std::vector<Hit>& hits) {
      std::erase_if(hits, [&](const Hit& h) { return h.face_id == self; });
      if (hits.size() > static_cast<size_t>(kAt)) hits.resize(kAt);
    };
    others(exact[i]);
    others(approx[i]);
    if (exact[i].empty()) continue;
    truth += static_cast<int64_t>(exact[i].size());
    // A face at the same distance as the exact 10th is as good an answer (ties among duplicates).
    std::unordered_set<int64_t> want;
    for (const Hit& h : exact[i]) want.insert(h.face_id);
    const float last = exact[i].back().distance;
    for (const Hit& h : approx[i]) found += (want.count(h.face_id) || h.distance <= last) ? 1 : 0;
  }
  m.queries = static_cast<int>(nq);
  m.recall_at_10 = truth == 0 ? 1.0 : static_cast<double>(found) / static_cast<double>(truth);
  return m;
}

Result<SavedFile> VectorIndex::Save(const std::filesystem::path& path, const IndexStamp& stamp) const {
  faiss::VectorIOWriter writer;
  size_t flat_size = 0;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot serialise the vector index", [&] {
    faiss::write_index(index_.get(), &writer);
    flat_size = writer.data.size();
    candidates_->Write(writer);
  }));
  IndexFileHeader header;
  header.stamp = stamp;
  header.ntotal = ntotal();
  header.max_face_id = max_id_;
  header.kind = spec().kind;
  header.flat_size = flat_size;
  const std::string bytes = EncodeIndexFile(
      header, std::string_view(reinterpret_cast<const char*>(writer.data.data()), writer.data.size()));
  writer.data.clear();
  writer.data.shrink_to_fit();
  FS_TRY(WriteFileAtomic(path, bytes));
  return SavedFile{static_cast<int64_t>(bytes.size()), Sha256Hex(bytes)};
}

int64_t VectorIndex::ntotal() const { return index_->ntotal; }

std::vector<int64_t> VectorIndex::ids() const {
  const auto& id_map = IdMap(*index_).id_map;
  return std::vector<int64_t>(id_map.begin(), id_map.end());
}

std::optional<Embedding> VectorIndex::Vector(int64_t face_id) const {
  const auto& id_map = IdMap(*index_);
  auto row = id_map.rev_map.find(face_id);
  if (row == id_map.rev_map.end()) return std::nullopt;
  Embedding e{};
  id_map.index->reconstruct(row->second, e.data());
  return e;
}

IndexSpec VectorIndex::built_spec() const { return candidates_->built_spec(ntotal()); }

int64_t VectorIndex::memory_bytes() const {
  const int64_t n = ntotal();
  // The float vectors and their ids (the id map's hash table is not counted), plus the structure.
  return n * static_cast<int64_t>(kEmbeddingDim * sizeof(float) + sizeof(int64_t)) +
         candidates_->memory_bytes(n);
}

}  // namespace facesearch
