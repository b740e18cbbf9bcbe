// The vector index: the exact float vectors keyed by face id (FAISS IndexIDMap2 over IndexFlatL2),
// plus the candidate structure of its kind (index_spec.h, candidates.h): none for exact, int8
// codes (search::Int8Index, rebuilt from the floats on load), or a FAISS IVF-Flat, IVF-PQ or HNSW
// index whose labels are row numbers of the flat store. Candidates are re-ranked with exact float
// distances, so every distance returned is exact. The file format is index_file.h. Derived data:
// it can always be rebuilt from the Store.
//
// Thread-safety: Search may be called from several threads at once; Add/Prepare/Save need
// exclusive use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "index/index_file.h"
#include "index/index_spec.h"

namespace faiss {
struct Index;
}

namespace facesearch {

class CandidateStructure;

struct Hit {
  int64_t face_id = 0;
  float distance = 0.f;  // Euclidean (not squared), as dlib reports it
};

struct SavedFile {
  int64_t size = 0;
  std::string sha256;
};

// Recall of the candidate structure measured against the exact scan (MeasureRecall).
struct RecallMeasure {
  double recall_at_10 = 1.0;
  int queries = 0;
};

class VectorIndex {
 public:
  // An empty index of `spec`'s kind. Its parameters are used as given (callers pass
  // EffectiveIndexSpec); the approximate structure is trained by the first Prepare with vectors.
  static std::unique_ptr<VectorIndex> CreateEmpty(const IndexSpec& spec = {});
  // Reads and checks `path` (ReadIndexFile: size and SHA-256 against the Store's record, header,
  // stamp equal to `expected`), all BEFORE handing the bytes to FAISS (crafted files have crashed FAISS's reader); then
  // deserialises and checks the dimension, type and the header's ntotal and largest id, and that
  // the approximate part (if any) is the header's kind and covers every row. The kind is the
  // file's; `params` (re-rank, nprobe, ef_search) apply when they name the same kind. Returns an
  // index prepared without training (int8 codes built; a structure the file lacks is left to
  // Prepare(true)). The bytes are read into memory, not mapped: see ARCHITECTURE.md.
  // Errors: kNotFound (missing file), kCorrupt (size, checksum, header, stamp or structure).
  static Result<std::unique_ptr<VectorIndex>> Load(const std::filesystem::path& path,
                                                   int64_t expected_size,
                                                   const std::string& expected_sha256,
                                                   const IndexStamp& expected,
                                                   const IndexSpec& params = {});
  ~VectorIndex();

  // ids.size() == vectors.size() / kEmbeddingDim. Adds nothing and fails with kInvalidArgument
  // when the sizes disagree or an id is already in the index (or repeated in `ids`). A trained
  // FAISS structure gets the new rows too; int8 codes (and an untrained structure) are left for
  // Prepare, and searches scan exactly until then. Errors: kInvalidArgument, kIndex.
  Status Add(std::span<const int64_t> ids, std::span<const float> vectors);
  // Builds what Add left stale: re-encodes int8 codes, and, when `train` is true, trains and fills
  // the FAISS structure when it is untrained and the index holds enough vectors. Training is the
  // one step whose cost grows past minutes (IVF-PQ at 10M faces): readers pass train = false and
  // search exactly until a writer trains (needs_training()). Errors: kIndex.
  Status Prepare(bool train = true);
  // True when searches use the candidate structure of the kind (always true for exact).
  bool prepared() const;
  // True when the kind's structure is missing and the index holds enough vectors to train it:
  // searches scan every row exactly until Prepare(true) runs. False for exact and int8, and for
  // an approximate kind too small to train (which is searched exactly by design).
  bool needs_training() const;
  // Up to k nearest faces, nearest first; fewer when the index holds fewer than k (none for
  // k <= 0). Errors: kIndex.
  Result<std::vector<Hit>> Search(const Embedding& query, int k) const;
  // Search for several probes in one pass over the vectors (each block is compared with every
  // probe while in cache): result[i] is exactly what Search(queries[i], k) returns.
  // Errors: kIndex.
  Result<std::vector<std::vector<Hit>>> SearchBatch(std::span<const Embedding> queries,
                                                    int k) const;
  // Exact search over the float vectors, whatever the kind (the reference for recall).
  Result<std::vector<std::vector<Hit>>> SearchExactBatch(std::span<const Embedding> queries,
                                                         int k) const;
  // recall@10 of Search against SearchExactBatch over `queries` corpus vectors chosen at random
  // (fixed seed): each query is a stored vector, its own face is left out of both answers (a
  // self-match is trivially found and would flatter the figure), and the share of the exact 10
  // nearest others found in the first 10 is averaged. 1.0 with fewer than 2 vectors.
  Result<RecallMeasure> MeasureRecall(int queries = 200) const;
  // Serialises, frames with a header carrying `stamp` (EncodeIndexFile) and writes atomically
  // (WriteFileAtomic). Prepare first (an unprepared index is saved without its structure).
  // Returns size and sha256 of the whole file written. Errors: kIndex, kIo.
  Result<SavedFile> Save(const std::filesystem::path& path, const IndexStamp& stamp) const;
  int64_t ntotal() const;
  const IndexSpec& spec() const;
  // The parameters the candidate structure really has (nlist, pq_bits... as trained).
  IndexSpec built_spec() const;
  // Bytes held in memory: float vectors and ids, plus codes / lists / graph of the kind.
  int64_t memory_bytes() const;
  // Every face id in the index, in insertion order.
  std::vector<int64_t> ids() const;
  // The float vector stored for `face_id` (what exact search and re-ranking use); nullopt when the
  // index does not hold that id.
  std::optional<Embedding> Vector(int64_t face_id) const;
  // The largest face id in the index; 0 when it is empty.
  int64_t max_id() const { return max_id_; }

 private:
  // Takes ownership of `index`, which must be an IndexIDMap2 over an IndexFlatL2 of kEmbeddingDim.
  VectorIndex(faiss::Index* index, std::unique_ptr<CandidateStructure> candidates);
  std::unique_ptr<faiss::Index> index_;
  std::unique_ptr<CandidateStructure> candidates_;  // of the kind; owns the spec
  int64_t max_id_ = 0;
};

}  // namespace facesearch
