// The vector index: an exact L2 FAISS index keyed by face id (IndexIDMap2 over IndexFlatL2).
// Derived data: it can always be rebuilt from the Store. FAISS stores and serialises the vectors;
// Search scans them with our own SIMD kernels (src/search/exact_search.h), multithreaded.
//
// Thread-safety: Search may be called from several threads at once; Add/Save need exclusive use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"

namespace faiss {
struct Index;
}

namespace facesearch {

struct Hit {
  int64_t face_id = 0;
  float distance = 0.f;  // Euclidean (not squared), as dlib reports it
};

struct SavedFile {
  int64_t size = 0;
  std::string sha256;
};

class VectorIndex {
 public:
  static std::unique_ptr<VectorIndex> CreateEmpty();
  // Reads `path` fully, checks its size and SHA-256 against the expected values BEFORE handing the
  // bytes to FAISS (crafted files have crashed FAISS's reader), then deserialises and checks the
  // dimension and type. Errors: kNotFound (missing file), kCorrupt (size, checksum or structure).
  static Result<std::unique_ptr<VectorIndex>> Load(const std::filesystem::path& path,
                                                   int64_t expected_size,
                                                   const std::string& expected_sha256);
  ~VectorIndex();

  // ids.size() == vectors.size() / kEmbeddingDim. Adds nothing and fails with kInvalidArgument
  // when the sizes disagree or an id is already in the index (or repeated in `ids`).
  // Errors: kInvalidArgument, kIndex.
  Status Add(std::span<const int64_t> ids, std::span<const float> vectors);
  // Up to k nearest faces, nearest first; fewer when the index holds fewer than k (none for
  // k <= 0). Errors: kIndex.
  Result<std::vector<Hit>> Search(const Embedding& query, int k) const;
  // Search for several probes in one pass over the vectors (each block is compared with every
  // probe while in cache): result[i] is exactly what Search(queries[i], k) returns.
  // Errors: kIndex.
  Result<std::vector<std::vector<Hit>>> SearchBatch(std::span<const Embedding> queries,
                                                    int k) const;
  // Serialises and writes atomically (WriteFileAtomic). Returns size and sha256 of what was written.
  // Errors: kIndex, kIo.
  Result<SavedFile> Save(const std::filesystem::path& path) const;
  int64_t ntotal() const;
  // The largest face id in the index; 0 when it is empty.
  int64_t max_id() const { return max_id_; }

 private:
  // Takes ownership of `index`, which must be an IndexIDMap2 over an IndexFlatL2 of kEmbeddingDim.
  explicit VectorIndex(faiss::Index* index);
  std::unique_ptr<faiss::Index> index_;
  int64_t max_id_ = 0;
};

}  // namespace facesearch
