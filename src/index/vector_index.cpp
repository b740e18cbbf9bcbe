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

constexpr char kMagic[8] = {'F', 'S', 'V', 'I', 'N', 'D', 'E', 'X'};
constexpr size_t kFixedHeader = 52;  // bytes before the model identity
constexpr size_t kMaxModelIdentity = 1024;
constexpr size_t kDigestHex = 64;

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

}  // namespace

std::string EncodeIndexFile(const IndexFileHeader& header, std::string_view payload) {
  std::string out(kMagic, sizeof kMagic);
  PutLe(out, kIndexFormatVersion, 4);
  PutLe(out, kEmbeddingDim, 4);
  PutLe(out, static_cast<uint64_t>(header.stamp.generation), 8);
  PutLe(out, static_cast<uint64_t>(header.ntotal), 8);
  PutLe(out, static_cast<uint64_t>(header.max_face_id), 8);
  PutLe(out, payload.size(), 8);
  PutLe(out, header.stamp.model_identity.size(), 4);
  out += header.stamp.model_identity;
  Sha256 sha;
  sha.Update(out);
  sha.Update(payload);
  out += sha.FinishHex();
  out += payload;
  return out;
}

Result<IndexFileHeader> DecodeIndexFile(std::string_view file, std::string_view* payload) {
  auto corrupt = [](const std::string& why) { return Fail(ErrorCode::kCorrupt, why); };
  if (file.size() < sizeof kMagic || file.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0)
    return corrupt("is not a facesearch index file (no FSVINDEX header: a foreign file, or one "
                   "written by a facesearch older than index format 1)");
  if (file.size() < kFixedHeader) return corrupt("is truncated inside its header");
  IndexFileHeader h;
  h.version = static_cast<uint32_t>(GetLe(file, 8, 4));
  h.dimension = static_cast<uint32_t>(GetLe(file, 12, 4));
  h.stamp.generation = static_cast<int64_t>(GetLe(file, 16, 8));
  h.ntotal = static_cast<int64_t>(GetLe(file, 24, 8));
  h.max_face_id = static_cast<int64_t>(GetLe(file, 32, 8));
  h.payload_size = GetLe(file, 40, 8);
  const uint64_t model_len = GetLe(file, 48, 4);
  if (h.version != kIndexFormatVersion)
    return corrupt("has index format version " + std::to_string(h.version) + ", this build reads " +
                   std::to_string(kIndexFormatVersion));
  if (h.dimension != kEmbeddingDim)
    return corrupt("has dimension " + std::to_string(h.dimension) + ", expected " +
                   std::to_string(kEmbeddingDim));
  if (model_len > kMaxModelIdentity) return corrupt("has an absurd model identity length");
  const size_t digest_at = kFixedHeader + model_len;
  if (file.size() < digest_at + kDigestHex) return corrupt("is truncated inside its header");
  const uint64_t available = file.size() - digest_at - kDigestHex;
  if (h.payload_size != available)
    return corrupt("has " + std::to_string(available) + " payload bytes, its header says " +
                   std::to_string(h.payload_size));
  if (h.stamp.generation < 0 || h.ntotal < 0 || h.max_face_id < 0)
    return corrupt("has a negative count in its header");
  h.stamp.model_identity = std::string(file.substr(kFixedHeader, model_len));
  const std::string_view body = file.substr(digest_at + kDigestHex);
  Sha256 sha;
  sha.Update(file.substr(0, digest_at));
  sha.Update(body);
  if (sha.FinishHex() != file.substr(digest_at, kDigestHex))
    return corrupt("fails its own SHA-256 check (header or payload damaged)");
  if (payload) *payload = body;
  return h;
}

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
                                                       const std::string& expected_sha256,
                                                       const IndexStamp& expected) {
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
  std::string_view payload;
  auto header = DecodeIndexFile(*bytes, &payload);
  if (!header) return corrupt(header.error().message);
  if (header->stamp.model_identity != expected.model_identity)
    return corrupt("was built with models '" + header->stamp.model_identity + "', the corpus uses '" +
                   expected.model_identity + "'");
  if (header->stamp.generation != expected.generation)
    return corrupt("is stamped generation " + std::to_string(header->stamp.generation) +
                   ", its record says " + std::to_string(expected.generation));

  std::unique_ptr<faiss::Index> index;
  faiss::VectorIOReader reader;
  reader.data.assign(payload.begin(), payload.end());
  bytes->clear();
  Status read = Guard(ErrorCode::kCorrupt, "cannot read index file " + path.string(),
                      [&] { index.reset(faiss::read_index(&reader)); });
  if (!read) return std::unexpected(read.error());
  if (std::string problem = LayoutProblem(index.get()); !problem.empty())
    return corrupt("has the wrong layout: " + problem);
  auto loaded = std::unique_ptr<VectorIndex>(new VectorIndex(index.release()));
  if (loaded->ntotal() != header->ntotal || loaded->max_id() != header->max_face_id)
    return corrupt("holds " + std::to_string(loaded->ntotal()) + " vectors up to id " +
                   std::to_string(loaded->max_id()) + ", its header says " +
                   std::to_string(header->ntotal) + " up to " + std::to_string(header->max_face_id));
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

Result<SavedFile> VectorIndex::Save(const std::filesystem::path& path, const IndexStamp& stamp) const {
  faiss::VectorIOWriter writer;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot serialise the vector index",
               [&] { faiss::write_index(index_.get(), &writer); }));
  IndexFileHeader header;
  header.stamp = stamp;
  header.ntotal = ntotal();
  header.max_face_id = max_id_;
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

}  // namespace facesearch
