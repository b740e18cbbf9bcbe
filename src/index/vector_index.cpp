// FAISS adapter. Every FAISS call is wrapped: FAISS throws faiss::FaissException (and may throw
// std::bad_alloc); nothing thrown here leaves this file.
#include "index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>
#include <random>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "common/fs.h"
#include "common/sha256.h"
#include "search/exact_search.h"
#include "search/int8_index.h"

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

// Checks that a deserialised approximate part is the kind's FAISS type over our dimension and
// holds one entry per flat row; returns why not, or "" when it is.
std::string ApproxProblem(const faiss::Index* index, IndexKind kind, int64_t ntotal) {
  if (!index) return "its approximate part is empty";
  if (index->d != kEmbeddingDim || index->metric_type != faiss::METRIC_L2)
    return "its approximate part is not L2 of dimension " + std::to_string(kEmbeddingDim);
  if (index->ntotal != ntotal || !index->is_trained)
    return "its approximate part holds " + std::to_string(index->ntotal) + " of " +
           std::to_string(ntotal) + " vectors";
  bool right_type = false;
  switch (kind) {
    case IndexKind::kIvf: right_type = dynamic_cast<const faiss::IndexIVFFlat*>(index); break;
    case IndexKind::kIvfPq: right_type = dynamic_cast<const faiss::IndexIVFPQ*>(index); break;
    case IndexKind::kHnsw: right_type = dynamic_cast<const faiss::IndexHNSWFlat*>(index); break;
    default: break;
  }
  if (!right_type) return std::string("its approximate part is not a FAISS ") + IndexKindName(kind) + " index";
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    if (!ivf->quantizer || ivf->quantizer->ntotal != static_cast<int64_t>(ivf->nlist) ||
        ivf->quantizer->d != kEmbeddingDim)
      return "its inverted-file quantizer is inconsistent";
    // Labels must be row numbers of the flat part: they index the float vectors in the re-rank.
    for (size_t l = 0; l < ivf->nlist; ++l) {
      const size_t n = ivf->invlists->list_size(l);
      faiss::InvertedLists::ScopedIds ids(ivf->invlists, l);
      for (size_t i = 0; i < n; ++i)
        if (ids[i] < 0 || ids[i] >= ntotal) return "its inverted lists name rows outside the index";
    }
  }
  return "";
}

// Reads FAISS serialisations straight from a byte range (no copy into a VectorIOReader).
struct SpanReader : faiss::IOReader {
  std::string_view bytes;
  size_t at = 0;
  explicit SpanReader(std::string_view b) : bytes(b) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return 0;
    const size_t n = std::min(nitems, (bytes.size() - at) / size);
    if (n > 0) std::memcpy(ptr, bytes.data() + at, n * size);
    at += n * size;
    return n;
  }
};

// Fixed seed: the same corpus and parameters give the same structure and the same recall figure.
constexpr uint64_t kRecallSeed = 20261126;

constexpr char kMagic[8] = {'F', 'S', 'V', 'I', 'N', 'D', 'E', 'X'};
constexpr size_t kFixedHeaderV1 = 52;  // bytes before the model identity, format 1
constexpr size_t kFixedHeader = 64;    // format 2
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
  PutLe(out, static_cast<uint32_t>(header.kind), 4);
  PutLe(out, header.flat_size == 0 ? payload.size() : header.flat_size, 8);
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
  if (file.size() < kFixedHeaderV1) return corrupt("is truncated inside its header");
  IndexFileHeader h;
  h.version = static_cast<uint32_t>(GetLe(file, 8, 4));
  h.dimension = static_cast<uint32_t>(GetLe(file, 12, 4));
  h.stamp.generation = static_cast<int64_t>(GetLe(file, 16, 8));
  h.ntotal = static_cast<int64_t>(GetLe(file, 24, 8));
  h.max_face_id = static_cast<int64_t>(GetLe(file, 32, 8));
  h.payload_size = GetLe(file, 40, 8);
  const uint64_t model_len = GetLe(file, 48, 4);
  if (h.version != 1 && h.version != kIndexFormatVersion)
    return corrupt("has index format version " + std::to_string(h.version) + ", this build reads 1 to " +
                   std::to_string(kIndexFormatVersion));
  size_t fixed = kFixedHeaderV1;
  uint64_t kind = 0;
  if (h.version >= 2) {
    if (file.size() < kFixedHeader) return corrupt("is truncated inside its header");
    kind = GetLe(file, 52, 4);
    h.flat_size = GetLe(file, 56, 8);
    fixed = kFixedHeader;
  }
  if (h.dimension != kEmbeddingDim)
    return corrupt("has dimension " + std::to_string(h.dimension) + ", expected " +
                   std::to_string(kEmbeddingDim));
  if (kind > kMaxIndexKind) return corrupt("has an unknown index kind " + std::to_string(kind));
  h.kind = static_cast<IndexKind>(kind);
  if (model_len > kMaxModelIdentity) return corrupt("has an absurd model identity length");
  const size_t digest_at = fixed + model_len;
  if (file.size() < digest_at + kDigestHex) return corrupt("is truncated inside its header");
  const uint64_t available = file.size() - digest_at - kDigestHex;
  if (h.payload_size != available)
    return corrupt("has " + std::to_string(available) + " payload bytes, its header says " +
                   std::to_string(h.payload_size));
  if (h.version == 1) h.flat_size = h.payload_size;
  if (h.flat_size > h.payload_size) return corrupt("has a flat part longer than its payload");
  if (!IsFaissApproximate(h.kind) && h.flat_size != h.payload_size)
    return corrupt("has a second part, which its kind does not have");
  if (h.stamp.generation < 0 || h.ntotal < 0 || h.max_face_id < 0)
    return corrupt("has a negative count in its header");
  h.stamp.model_identity = std::string(file.substr(fixed, model_len));
  const std::string_view body = file.substr(digest_at + kDigestHex);
  Sha256 sha;
  sha.Update(file.substr(0, digest_at));
  sha.Update(body);
  if (sha.FinishHex() != file.substr(digest_at, kDigestHex))
    return corrupt("fails its own SHA-256 check (header or payload damaged)");
  if (payload) *payload = body;
  return h;
}

struct VectorIndex::Int8State {
  search::Int8Index codes;
};

namespace {

const faiss::IndexFlat& FlatOf(const faiss::Index& index) {
  return static_cast<const faiss::IndexFlat&>(*IdMap(index).index);
}

search::FlatView ViewOf(const faiss::Index& index) {
  const auto& map = IdMap(index);
  return search::FlatView{FlatOf(index).get_xb(), map.id_map.data(), static_cast<size_t>(map.ntotal)};
}

// The fewest vectors the kind's structure can be trained on with these parameters.
int64_t MinTrainingVectors(const IndexSpec& s) {
  switch (s.kind) {
    case IndexKind::kIvf: return std::max(1, s.nlist);
    case IndexKind::kIvfPq: return std::max<int64_t>({1, s.nlist, int64_t{1} << s.pq_bits});
    case IndexKind::kHnsw: return 1;
    default: return 0;
  }
}

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

// A new, untrained FAISS structure for an effective spec. The spec already keeps >= 39 training
// points per centroid where the corpus allows; below that (a handful of faces) FAISS's warning
// on stderr says nothing useful, so the minimum is lowered to what k-means can run with.
std::unique_ptr<faiss::Index> NewApprox(const IndexSpec& s) {
  switch (s.kind) {
    case IndexKind::kIvf: {
      auto quantizer = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), kEmbeddingDim, s.nlist);
      quantizer.release();
      ivf->own_fields = true;
      ivf->nprobe = s.nprobe;
      ivf->cp.min_points_per_centroid = 1;
      return ivf;
    }
    case IndexKind::kIvfPq: {
      auto quantizer = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
      auto ivf = std::make_unique<faiss::IndexIVFPQ>(quantizer.get(), kEmbeddingDim, s.nlist, s.pq_m,
                                                     s.pq_bits);
      quantizer.release();
      ivf->own_fields = true;
      ivf->nprobe = s.nprobe;
      ivf->cp.min_points_per_centroid = 1;
      ivf->pq.cp.min_points_per_centroid = 1;
      return ivf;
    }
    case IndexKind::kHnsw: {
      auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(kEmbeddingDim, s.hnsw_m);
      hnsw->hnsw.efConstruction = s.ef_construction;
      hnsw->hnsw.efSearch = s.ef_search;
      return hnsw;
    }
    default: return nullptr;
  }
}

// The HNSW graph of a loaded file must stay inside its own rows (FAISS follows it unchecked).
std::string HnswProblem(const faiss::IndexHNSWFlat& index) {
  const faiss::HNSW& g = index.hnsw;
  const int64_t n = index.ntotal;
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
  if (!index.storage || index.storage->ntotal != n || index.storage->d != kEmbeddingDim)
    return "its HNSW storage is inconsistent";
  return "";
}

}  // namespace

VectorIndex::VectorIndex(faiss::Index* index, const IndexSpec& spec) : index_(index), spec_(spec) {
  for (idx_t id : IdMap(*index_).id_map) max_id_ = std::max<int64_t>(max_id_, id);
}

VectorIndex::~VectorIndex() = default;

std::unique_ptr<VectorIndex> VectorIndex::CreateEmpty(const IndexSpec& spec) {
  auto flat = std::make_unique<faiss::IndexFlatL2>(kEmbeddingDim);
  auto map = std::make_unique<faiss::IndexIDMap2>(flat.get());
  flat.release();
  map->own_fields = true;
  return std::unique_ptr<VectorIndex>(new VectorIndex(map.release(), spec));
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::Load(const std::filesystem::path& path,
                                                       int64_t expected_size,
                                                       const std::string& expected_sha256,
                                                       const IndexStamp& expected,
                                                       const IndexSpec& params) {
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

  // FAISS parses straight from the checked bytes (no second copy of the file in memory).
  const std::string_view flat_bytes = payload.substr(0, header->flat_size);
  const std::string_view approx_bytes = payload.substr(header->flat_size);
  std::unique_ptr<faiss::Index> index, approx;
  size_t flat_read = 0, approx_read = 0;
  Status read = Guard(ErrorCode::kCorrupt, "cannot read index file " + path.string(), [&] {
    SpanReader flat_reader(flat_bytes);
    index.reset(faiss::read_index(&flat_reader));
    flat_read = flat_reader.at;
    if (!approx_bytes.empty()) {
      SpanReader approx_reader(approx_bytes);
      approx.reset(faiss::read_index(&approx_reader));
      approx_read = approx_reader.at;
    }
  });
  if (!read) return std::unexpected(read.error());
  if (std::string problem = LayoutProblem(index.get()); !problem.empty())
    return corrupt("has the wrong layout: " + problem);
  if (flat_read != flat_bytes.size() || approx_read != approx_bytes.size())
    return corrupt("has bytes that are not part of its indexes");
  const IndexSpec spec = params.kind == header->kind ? params : IndexSpec{.kind = header->kind};
  auto loaded = std::unique_ptr<VectorIndex>(new VectorIndex(index.release(), spec));
  if (loaded->ntotal() != header->ntotal || loaded->max_id() != header->max_face_id)
    return corrupt("holds " + std::to_string(loaded->ntotal()) + " vectors up to id " +
                   std::to_string(loaded->max_id()) + ", its header says " +
                   std::to_string(header->ntotal) + " up to " + std::to_string(header->max_face_id));
  if (approx) {
    if (std::string problem = ApproxProblem(approx.get(), header->kind, loaded->ntotal()); !problem.empty())
      return corrupt("has the wrong layout: " + problem);
    if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(approx.get()))
      if (std::string problem = HnswProblem(*hnsw); !problem.empty())
        return corrupt("has the wrong layout: " + problem);
    // Query-time parameters of the corpus setting win over those saved in the file.
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(approx.get()); ivf && spec.nprobe > 0)
      ivf->nprobe = std::min<size_t>(spec.nprobe, ivf->nlist);
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(approx.get()); hnsw && spec.ef_search > 0)
      hnsw->hnsw.efSearch = spec.ef_search;
    loaded->approx_ = std::move(approx);
    loaded->approx_ready_ = true;
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
  int8_.reset();  // the codes borrow the flat rows, which may move now
  FS_TRY(Guard(ErrorCode::kIndex, "cannot add to the vector index", [&] {
    index_->add_with_ids(static_cast<idx_t>(ids.size()), vectors.data(),
                         reinterpret_cast<const idx_t*>(ids.data()));
  }));
  max_id_ = std::max(max_id_, *std::max_element(ids.begin(), ids.end()));
  if (approx_ready_) {
    Status added = Guard(ErrorCode::kIndex, "cannot add to the approximate index", [&] {
      std::vector<idx_t> rows(ids.size());
      std::iota(rows.begin(), rows.end(), first_row);
      if (dynamic_cast<faiss::IndexIVF*>(approx_.get()))
        approx_->add_with_ids(static_cast<idx_t>(ids.size()), vectors.data(), rows.data());
      else
        approx_->add(static_cast<idx_t>(ids.size()), vectors.data());  // HNSW: labels = rows
    });
    if (!added) {  // the floats hold the rows: Prepare rebuilds the structure from them
      spdlog::warn("{}; it will be rebuilt", added.error().message);
      approx_.reset();
      approx_ready_ = false;
    }
  }
  return Ok();
}

Status VectorIndex::Prepare(bool train) {
  const int64_t n = ntotal();
  if (spec_.kind == IndexKind::kExact || n == 0) return Ok();
  if (spec_.kind == IndexKind::kInt8) {
    if (int8_) return Ok();
    return Guard(ErrorCode::kIndex, "cannot build the int8 codes", [&] {
      int8_ = std::make_unique<Int8State>(Int8State{search::Int8Index::Build(ViewOf(*index_))});
    });
  }
  if (approx_ready_ || !train) return Ok();
  const IndexSpec eff = EffectiveIndexSpec(spec_, n);
  if (n < MinTrainingVectors(eff)) return Ok();  // too few to train: searches stay exact
  return Guard(ErrorCode::kIndex, std::string("cannot build the ") + IndexKindName(eff.kind) + " index",
               [&] {
                 OmpThreadsFor threads(n);
                 std::unique_ptr<faiss::Index> approx = NewApprox(eff);
                 const float* x = FlatOf(*index_).get_xb();
                 approx->train(n, x);
                 if (dynamic_cast<faiss::IndexIVF*>(approx.get())) {
                   std::vector<idx_t> rows(static_cast<size_t>(n));
                   std::iota(rows.begin(), rows.end(), idx_t{0});
                   approx->add_with_ids(n, x, rows.data());
                 } else {
                   approx->add(n, x);
                 }
                 approx_ = std::move(approx);
                 approx_ready_ = true;
               });
}

bool VectorIndex::needs_training() const {
  const int64_t n = ntotal();
  if (spec_.kind == IndexKind::kExact || spec_.kind == IndexKind::kInt8 || approx_ready_ || n == 0)
    return false;
  return n >= MinTrainingVectors(EffectiveIndexSpec(spec_, n));
}

bool VectorIndex::prepared() const {
  switch (spec_.kind) {
    case IndexKind::kExact: return true;
    case IndexKind::kInt8: return int8_ != nullptr;
    default: return approx_ready_;
  }
}

// Exact search with our SIMD scan (src/search/) over the flat index's own storage: FAISS's
// generic-x86-64 build is compute-bound here, ours runs at memory speed (docs/benchmarks.md).
Result<std::vector<Hit>> VectorIndex::Search(const Embedding& query, int k) const {
  FS_ASSIGN(auto hits, SearchBatch(std::span<const Embedding>(&query, 1), k));
  return std::move(hits.front());
}

namespace {
std::vector<std::vector<Hit>> ToHits(const std::vector<std::vector<search::Neighbor>>& found) {
  std::vector<std::vector<Hit>> result(found.size());
  for (size_t q = 0; q < found.size(); ++q) {
    result[q].reserve(found[q].size());
    // Squared L2 from the kernels; never negative, unlike FAISS's expanded form.
    for (const auto& f : found[q]) result[q].push_back({f.id, std::sqrt(f.dist2)});
  }
  return result;
}
}  // namespace

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchExactBatch(std::span<const Embedding> queries,
                                                                    int k) const {
  static_assert(sizeof(Embedding) == kEmbeddingDim * sizeof(float));  // contiguous rows
  std::vector<std::vector<search::Neighbor>> found;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot search the vector index", [&] {
    found = search::ExactSearchBatch(ViewOf(*index_), queries.empty() ? nullptr : queries.front().data(),
                                     queries.size(), k);
  }));
  return ToHits(found);
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchBatch(std::span<const Embedding> queries,
                                                               int k) const {
  const int64_t n = ntotal();
  if (spec_.kind == IndexKind::kExact || n == 0 || k <= 0 || !prepared())
    return SearchExactBatch(queries, k);
  const int rerank = EffectiveIndexSpec(spec_, n).rerank;
  const float* q = queries.empty() ? nullptr : queries.front().data();
  if (spec_.kind == IndexKind::kInt8) {
    std::vector<std::vector<search::Neighbor>> found;
    FS_TRY(Guard(ErrorCode::kIndex, "cannot search the int8 index",
                 [&] { found = int8_->codes.SearchBatch(q, queries.size(), k, rerank); }));
    return ToHits(found);
  }
  // FAISS picks max(k, rerank) candidate rows; they are re-ranked exactly below.
  const int per_query = static_cast<int>(std::min<int64_t>(std::max(k, rerank), n));
  std::vector<idx_t> rows(queries.size() * static_cast<size_t>(per_query), -1);
  std::vector<float> approx_dist(rows.size());
  FS_TRY(Guard(ErrorCode::kIndex, "cannot search the approximate index", [&] {
    if (!queries.empty())
      approx_->search(static_cast<idx_t>(queries.size()), q, per_query, approx_dist.data(), rows.data());
  }));
  static_assert(sizeof(idx_t) == sizeof(int64_t));
  return Rerank(queries, k, std::vector<int64_t>(rows.begin(), rows.end()), per_query);
}

Result<std::vector<std::vector<Hit>>> VectorIndex::Rerank(std::span<const Embedding> queries, int k,
                                                          const std::vector<int64_t>& rows,
                                                          int per_query) const {
  const search::FlatView view = ViewOf(*index_);
  const search::Kernels& kernels = search::BestKernels();
  std::vector<std::vector<search::Neighbor>> found(queries.size());
  for (size_t qi = 0; qi < queries.size(); ++qi) {
    search::TopK top(static_cast<size_t>(k));
    for (int c = 0; c < per_query; ++c) {
      const int64_t row = rows[qi * static_cast<size_t>(per_query) + static_cast<size_t>(c)];
      if (row < 0 || row >= static_cast<int64_t>(view.n)) continue;  // FAISS pads with -1
      float d2 = 0;
      kernels.l2sqr(queries[qi].data(), view.rows + static_cast<size_t>(row) * kEmbeddingDim, 1, &d2);
      top.Push(row, d2);  // ties broken by row, like the exact scan
    }
    found[qi] = top.TakeSorted();
    search::MapIds(view, found[qi]);
  }
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
    if (approx_ready_ && approx_) faiss::write_index(approx_.get(), &writer);
  }));
  IndexFileHeader header;
  header.stamp = stamp;
  header.ntotal = ntotal();
  header.max_face_id = max_id_;
  header.kind = spec_.kind;
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

IndexSpec VectorIndex::built_spec() const {
  IndexSpec s = EffectiveIndexSpec(spec_, ntotal());
  if (!approx_ready_ || !approx_) return s;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(approx_.get())) {
    s.nlist = static_cast<int>(ivf->nlist);
    s.nprobe = static_cast<int>(ivf->nprobe);
  }
  if (const auto* pq = dynamic_cast<const faiss::IndexIVFPQ*>(approx_.get())) {
    s.pq_m = static_cast<int>(pq->pq.M);
    s.pq_bits = static_cast<int>(pq->pq.nbits);
  }
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(approx_.get())) {
    s.hnsw_m = hnsw->hnsw.nb_neighbors(1);
    s.ef_construction = hnsw->hnsw.efConstruction;
    s.ef_search = hnsw->hnsw.efSearch;
  }
  return s;
}

int64_t VectorIndex::memory_bytes() const {
  const int64_t n = ntotal();
  // The float vectors and their ids (the id map's hash table is not counted).
  int64_t bytes = n * static_cast<int64_t>(kEmbeddingDim * sizeof(float) + sizeof(int64_t));
  if (int8_) bytes += static_cast<int64_t>(int8_->codes.code_bytes() + 2 * kEmbeddingDim * sizeof(float));
  if (!approx_ready_ || !approx_) return bytes;
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(approx_.get())) {
    bytes += static_cast<int64_t>(ivf->nlist * kEmbeddingDim * sizeof(float));  // centroids
    bytes += n * static_cast<int64_t>(ivf->code_size + sizeof(idx_t));           // lists
    if (const auto* pq = dynamic_cast<const faiss::IndexIVFPQ*>(ivf))
      bytes += static_cast<int64_t>((pq->pq.centroids.size() + pq->precomputed_table.size()) * sizeof(float));
  } else if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(approx_.get())) {
    const faiss::HNSW& g = hnsw->hnsw;
    bytes += n * static_cast<int64_t>(kEmbeddingDim * sizeof(float));  // HNSWFlat's own copy
    bytes += static_cast<int64_t>(g.neighbors.size() * sizeof(g.neighbors[0]) +
                                  g.levels.size() * sizeof(int) + g.offsets.size() * sizeof(size_t));
  }
  return bytes;
}

}  // namespace facesearch
