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
#include <string_view>
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

// What an index file says it covers; written into its header and checked on load.
struct IndexStamp {
  int64_t generation = 0;      // the Store generation the snapshot reflects
  std::string model_identity;  // the Store's model identity (embedding space)
};

// The header of an index file. Layout (integers little-endian):
//   0  8  magic "FSVINDEX"          8  4  format version (kIndexFormatVersion)
//  12  4  dimension                16  8  generation
//  24  8  ntotal                   32  8  largest face id
//  40  8  payload length           48  4  model identity length n (at most 1024)
//  52  n  model identity          52+n 64 SHA-256 (lowercase hex) of bytes [0, 52+n) + payload
// then the payload: FAISS's serialisation of the IndexIDMap2. Nothing reaches FAISS before the
// header, its lengths and the checksum over header and payload have been checked.
inline constexpr uint32_t kIndexFormatVersion = 1;
struct IndexFileHeader {
  uint32_t version = 0;
  uint32_t dimension = 0;
  IndexStamp stamp;
  int64_t ntotal = 0;
  int64_t max_face_id = 0;
  uint64_t payload_size = 0;
};

// Frames a FAISS serialisation `payload` with the header above (version and dimension filled in).
std::string EncodeIndexFile(const IndexFileHeader& header, std::string_view payload);
// Checks the magic, version, dimension, lengths and checksum of a whole index file's bytes.
// On success `payload` (if given) views the FAISS bytes inside `file`. Errors: kCorrupt, with a
// message saying what is wrong (a file without the magic is "not a facesearch index file").
Result<IndexFileHeader> DecodeIndexFile(std::string_view file, std::string_view* payload = nullptr);

class VectorIndex {
 public:
  static std::unique_ptr<VectorIndex> CreateEmpty();
  // Reads `path` fully, checks its size and SHA-256 against the expected values (the Store's
  // record), then its header (DecodeIndexFile) and that the header's stamp equals `expected`,
  // all BEFORE handing the bytes to FAISS (crafted files have crashed FAISS's reader); then
  // deserialises and checks the dimension, type and the header's ntotal and largest id.
  // Errors: kNotFound (missing file), kCorrupt (size, checksum, header, stamp or structure).
  static Result<std::unique_ptr<VectorIndex>> Load(const std::filesystem::path& path,
                                                   int64_t expected_size,
                                                   const std::string& expected_sha256,
                                                   const IndexStamp& expected);
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
  // Serialises, frames with a header carrying `stamp` (EncodeIndexFile) and writes atomically
  // (WriteFileAtomic). Returns size and sha256 of the whole file written. Errors: kIndex, kIo.
  Result<SavedFile> Save(const std::filesystem::path& path, const IndexStamp& stamp) const;
  int64_t ntotal() const;
  // Every face id in the index, in insertion order.
  std::vector<int64_t> ids() const;
  // The largest face id in the index; 0 when it is empty.
  int64_t max_id() const { return max_id_; }

 private:
  // Takes ownership of `index`, which must be an IndexIDMap2 over an IndexFlatL2 of kEmbeddingDim.
  explicit VectorIndex(faiss::Index* index);
  std::unique_ptr<faiss::Index> index_;
  int64_t max_id_ = 0;
};

}  // namespace facesearch
