// The vector index file format: a header of our own around FAISS's serialisations, checked in
// full (lengths, versions, SHA-256, stamp) before FAISS parses a byte of it. VectorIndex
// (vector_index.h) writes and reads files through this unit; the candidate structures of the
// kinds (candidates.h) read their part with ReadFaissIndex.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "facesearch/error.h"
#include "index/index_spec.h"

namespace faiss {
struct Index;
}

namespace facesearch {

// What an index file says it covers; written into its header and checked on load.
struct IndexStamp {
  int64_t generation = 0;      // the Store generation the snapshot reflects
  std::string model_identity;  // the Store's model identity (embedding space)
};

// The header of an index file. Layout of format 2 (integers little-endian):
//   0  8  magic "FSVINDEX"          8  4  format version (kIndexFormatVersion)
//  12  4  dimension                16  8  generation
//  24  8  ntotal                   32  8  largest face id
//  40  8  payload length           48  4  model identity length n (at most 1024)
//  52  4  index kind (IndexKind)   56  8  flat part length f (<= payload length)
//  64  n  model identity          64+n 64 SHA-256 (lowercase hex) of bytes [0, 64+n) + payload
// then the payload: FAISS's serialisation of the IndexIDMap2 (f bytes), then, for ivf, ivfpq and
// hnsw, FAISS's serialisation of the approximate index (the rest; empty while the corpus is too
// small to train it). exact and int8 files have no second part (int8 codes are rebuilt on load).
// Format 1 (still read, always exact) has neither the kind nor f: its identity starts at byte 52.
// Nothing reaches FAISS before the header, its lengths and the checksum over header and payload
// have been checked.
inline constexpr uint32_t kIndexFormatVersion = 2;
struct IndexFileHeader {
  uint32_t version = 0;
  uint32_t dimension = 0;
  IndexStamp stamp;
  int64_t ntotal = 0;
  int64_t max_face_id = 0;
  uint64_t payload_size = 0;
  IndexKind kind = IndexKind::kExact;
  uint64_t flat_size = 0;  // bytes of the flat part; EncodeIndexFile: 0 = the whole payload
};

// Frames FAISS serialisations `payload` with the format-2 header above (version and dimension
// filled in; flat_size 0 means the whole payload is the flat part).
std::string EncodeIndexFile(const IndexFileHeader& header, std::string_view payload);
// Checks the magic, version, dimension, lengths and checksum of a whole index file's bytes.
// On success `payload` (if given) views the FAISS bytes inside `file`. Errors: kCorrupt, with a
// message saying what is wrong (a file without the magic is "not a facesearch index file").
Result<IndexFileHeader> DecodeIndexFile(std::string_view file, std::string_view* payload = nullptr);

// An index file read whole and checked (ReadIndexFile); its two parts view `bytes`.
struct CheckedIndexFile {
  std::string bytes;
  IndexFileHeader header;
  size_t payload_at = 0;  // offset of the payload in `bytes`
  std::string_view flat() const { return std::string_view(bytes).substr(payload_at, header.flat_size); }
  std::string_view structure() const {
    return std::string_view(bytes).substr(payload_at + header.flat_size);
  }
};

// Reads `path` fully, checks its size and SHA-256 against the expected values (the Store's
// record), then its header (DecodeIndexFile) and that the header's stamp equals `expected`. A file
// longer than recorded is refused before it is read into memory. Messages start "index file
// <path>". Errors: kNotFound (missing file), kIo, kCorrupt (size, checksum, header or stamp).
Result<CheckedIndexFile> ReadIndexFile(const std::filesystem::path& path, int64_t expected_size,
                                       const std::string& expected_sha256, const IndexStamp& expected);

// Deserialises one FAISS index straight from `bytes` (no copy into a VectorIOReader) and sets
// `*read` to the bytes it consumed. Throws what FAISS throws (faiss::FaissException,
// std::bad_alloc): callers guard it. Only for bytes ReadIndexFile has checked.
std::unique_ptr<faiss::Index> ReadFaissIndex(std::string_view bytes, size_t* read);

}  // namespace facesearch
