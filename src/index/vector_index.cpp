// FAISS adapter. Every FAISS call is wrapped: FAISS throws faiss::FaissException (and may throw
// std::bad_alloc); nothing thrown here leaves this file.
#include "index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <unordered_set>

#include "common/fs.h"
#include "common/sha256.h"
#include "search/exact_search.h"

namespace facesearch {
namespace {

using idx_t = faiss::Index::idx_t;

// The only layout we write and accept (LayoutProblem checks loaded files).
const faiss::IndexIDMap2& IdMap(const faiss::Index& index) {
  return static_cast<const faiss::IndexIDMap2&>(index);
}

// Runs fn, turning exceptions into `code` errors that name `what`.
template <class Fn>
Status Guard(ErrorCode code, const std::string& what, Fn&& fn) {
  try {
    fn();
    return Ok();
  } catch (const faiss::FaissException& e) {
    return Fail(code, what + ": " + e.what());
  } catch (const std::exception& e) {
    return Fail(code, what + ": " + e.what());
  }
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

}  // namespace

VectorIndex::VectorIndex(faiss::Index* index) : index_(index) {
  for (idx_t id : IdMap(*index_).id_map) max_id_ = std::max<int64_t>(max_id_, id);
}

VectorIndex::~VectorIndex() = default;

std::unique_ptr<VectorIndex> VectorIndex::CreateEmpty() {
  auto flat = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
  auto map = std::make_unique<faiss::IndexIDMap2>(flat.get());
  flat.release();
  map->own_fields = true;
  return std::unique_ptr<VectorIndex>(new VectorIndex(map.release()));
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::Load(const std::filesystem::path& path,
                                                       int64_t expected_size,
                                                       const std::string& expected_sha256) {
  auto corrupt = [&](const std::string& why) {
    return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + why);
  };
  if (expected_size < 0) return corrupt("has a negative recorded size");
  // A file longer than recorded is refused by ReadFile before it is read into memory.
  auto bytes = ReadFile(path, static_cast<size_t>(expected_size));
  if (!bytes) {
    if (bytes.error().code == ErrorCode::kDecode) return corrupt("is larger than recorded");
    return std::unexpected(bytes.error());
  }
  if (static_cast<int64_t>(bytes->size()) != expected_size)
    return corrupt("has " + std::to_string(bytes->size()) + " bytes, expected " +
                   std::to_string(expected_size));
  if (Sha256Hex(*bytes) != expected_sha256) return corrupt("fails its SHA-256 check");

  std::unique_ptr<faiss::Index> index;
  faiss::VectorIOReader reader;
  reader.data.assign(bytes->begin(), bytes->end());
  bytes->clear();
  Status read = Guard(ErrorCode::kCorrupt, "cannot read index file " + path.string(),
                      [&] { index.reset(faiss::read_index(&reader)); });
  if (!read) return std::unexpected(read.error());
  if (std::string problem = LayoutProblem(index.get()); !problem.empty())
    return corrupt("has the wrong layout: " + problem);
  return std::unique_ptr<VectorIndex>(new VectorIndex(index.release()));
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
  FS_TRY(Guard(ErrorCode::kIndex, "cannot add to the vector index", [&] {
    index_->add_with_ids(static_cast<idx_t>(ids.size()), vectors.data(),
                         reinterpret_cast<const idx_t*>(ids.data()));
  }));
  max_id_ = std::max(max_id_, *std::max_element(ids.begin(), ids.end()));
  return Ok();
}

// Exact search with our SIMD scan (src/search/) over the flat index's own storage: FAISS's
// generic-x86-64 build is compute-bound here, ours runs at memory speed (docs/benchmarks.md).
Result<std::vector<Hit>> VectorIndex::Search(const Embedding& query, int k) const {
  FS_ASSIGN(auto hits, SearchBatch(std::span<const Embedding>(&query, 1), k));
  return std::move(hits.front());
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchBatch(std::span<const Embedding> queries,
                                                               int k) const {
  const auto& map = IdMap(*index_);
  const auto& flat = static_cast<const faiss::IndexFlat&>(*map.index);
  const search::FlatView view{flat.get_xb(), map.id_map.data(),
                              static_cast<size_t>(map.ntotal)};
  static_assert(sizeof(Embedding) == kEmbeddingDim * sizeof(float));  // contiguous rows
  std::vector<std::vector<search::Neighbor>> found;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot search the vector index", [&] {
    found = search::ExactSearchBatch(view, queries.empty() ? nullptr : queries.front().data(),
                                     queries.size(), k);
  }));
  std::vector<std::vector<Hit>> result(found.size());
  for (size_t q = 0; q < found.size(); ++q) {
    result[q].reserve(found[q].size());
    // Squared L2 from the kernels; never negative, unlike FAISS's expanded form.
    for (const auto& f : found[q]) result[q].push_back({f.id, std::sqrt(f.dist2)});
  }
  return result;
}

Result<SavedFile> VectorIndex::Save(const std::filesystem::path& path) const {
  faiss::VectorIOWriter writer;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot serialise the vector index",
               [&] { faiss::write_index(index_.get(), &writer); }));
  std::string_view bytes(reinterpret_cast<const char*>(writer.data.data()), writer.data.size());
  FS_TRY(WriteFileAtomic(path, bytes));
  return SavedFile{static_cast<int64_t>(bytes.size()), Sha256Hex(bytes)};
}

int64_t VectorIndex::ntotal() const { return index_->ntotal; }

}  // namespace facesearch
