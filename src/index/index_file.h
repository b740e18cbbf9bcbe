// The vector index file format (format 3): segments of raw arrays that a process maps instead of
// reading, with a checksum per block of rows (XXH3-64, libxxhash) instead of one hash of the whole
// file, so that opening costs the same at 3 faces and at 10M. VectorIndex (vector_index.h) writes,
// appends to and maps files through this unit; the FAISS structures of the approximate kinds are
// one section, checked before FAISS parses it (crafted files have crashed FAISS's reader).
//
// Layout (integers little-endian, as the arrays are mapped on this little-endian machine):
//   main header   0 8 magic "FSVINDEX"   8 4 version (3)     12 4 dimension   16 8 generation
//                24 8 rows n            32 8 largest face id 40 4 kind        44 4 identity length m
//                48 8 header length H   56 8 structure length s               64 8 XXH3 of the sums
//                72 8 XXH3 of the structure                  80 4 1 when int8 codes follow
//                84 4 rows per block B  88..120 zero          120 8 XXH3 of [0,120) and [128,H)
//                128 m model identity, then (int8) 128 float offsets and the step; zeros up to H
//   main body    at H: ids n×8, rows n×128 float32, (int8) codes n×128, structure s bytes,
//                sums ceil(n/B)×8 (block b: XXH3 of its ids, rows and codes), zeros to a multiple
//                of 64
//   delta chunks appended after it by later saves, each: 0 8 magic "FSVDELTA" 8 8 rows n
//                16 8 generation 24 8 largest face id 32 8 XXH3 of the sums 40..56 zero
//                56 8 XXH3 of [0,56); then ids n×8, rows n×128 float32, sums, zeros to 64
// An erased row keeps its place: id -1, its floats kErasedValue, its codes 0, and its entries in
// the FAISS structure scrubbed where FAISS serialised them (candidates_faiss.cpp: an inverted-list
// entry's id -1 and its code zeroed, an HNSW copy overwritten), all in place (VectorIndex::Erase).
// The Store records the file's committed length and its main header's checksum (IndexSnapshot
// size and sha256 = "xxh3:<16 hex>"); bytes past the committed length (a killed append) are
// ignored and cut by the next append.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/fs.h"
#include "facesearch/error.h"
#include "index/index_spec.h"

namespace facesearch {

// What an index file says it covers; written into its header and checked on load.
struct IndexStamp {
  int64_t generation = 0;      // the Store generation the snapshot reflects
  std::string model_identity;  // the Store's model identity (embedding space)
};

inline constexpr uint32_t kIndexFormatVersion = 3;
inline constexpr size_t kBlockRows = 4096;  // 2 MiB of floats per checksum
// Every dimension of an erased row: far from any embedding (unit vectors), finite, and no one's.
inline constexpr float kErasedValue = 1000.f;
// Below this many bytes of rows, ids and codes, opening checks every block too (XXH3 reads them
// at several GB/s: a few ms); above, blocks are checked by `verify` and when written.
inline constexpr size_t kCheckAllBlocksBelow = size_t{64} << 20;

// One segment's arrays inside a mapping (or in memory). Writable: erasure scrubs in place.
struct SegmentArrays {
  int64_t* ids = nullptr;
  float* rows = nullptr;
  uint8_t* codes = nullptr;  // the main segment of an int8 file only
  // One little-endian uint64 per block of kBlockRows rows. Not aligned: in the main segment they
  // follow the FAISS structure, of any length, so they are read and written with memcpy
  // (BlockSumAt, SetBlockSum), never through a uint64_t pointer.
  char* sums = nullptr;
  size_t n = 0;
};

// What the main header says.
struct IndexFileHeader {
  IndexStamp stamp;
  int64_t ntotal = 0;  // rows of the main segment
  int64_t max_face_id = 0;
  IndexKind kind = IndexKind::kExact;
  bool has_codes = false;
  std::vector<float> code_offset;  // int8: kEmbeddingDim offsets
  float code_step = 1.f;
};

// What a whole-file write takes: the main segment (and a first chunk of `delta` rows, if any).
struct IndexFileContents {
  IndexFileHeader header;
  std::span<const int64_t> ids;
  std::span<const float> rows;
  std::span<const uint8_t> codes;  // empty, or ids.size() × kEmbeddingDim
  std::string_view structure;      // FAISS's serialisation of the approximate index, or empty
  std::span<const int64_t> delta_ids;
  std::span<const float> delta_rows;
};

// What an index costs a process that opens its saved file: bytes read onto the heap (FAISS
// centroids, codebooks, an HNSW graph and its copy of the vectors) and bytes left in the mapped
// file, paged in on demand and shared through the page cache (float vectors and ids, int8 codes,
// IVF lists). A query's RSS grows with the resident part, not the mapped one.
struct IndexFootprint {
  int64_t resident_bytes = 0;
  int64_t mapped_bytes = 0;
};

// Size and checksum of a saved file, as the Store records them.
struct SavedFile {
  int64_t size = 0;
  std::string checksum;  // "xxh3:" + the main header's XXH3 in hex
};

// Writes a whole index file atomically (WriteFileAtomic). Errors: kIo.
Result<SavedFile> WriteIndexFile(const std::filesystem::path& path, const IndexFileContents& contents);

// A whole index file (a main segment without int8 codes, no delta chunk) whose rows arrive in
// batches: what a compaction writes without holding every row in memory (VectorIndex::
// CompactToFile). The row count is fixed at Create; each block's sum is computed as its rows are
// written (the write-time check of issue #16); Finish writes the structure, the sums and the
// header, and commits atomically (AtomicFileWriter). Destroyed without Finish, it leaves nothing.
class StreamedIndexFile {
 public:
  // `header`'s stamp and kind are written; its counts come from the rows. Errors: kIo.
  static Result<StreamedIndexFile> Create(const std::filesystem::path& path, const IndexFileHeader& header,
                                          int64_t rows);
  // The next rows, in file order; every batch but the last a whole number of blocks (kBlockRows
  // rows). Errors: kInvalidArgument (sizes, more rows than announced), kIo.
  Status Append(std::span<const int64_t> ids, std::span<const float> rows);
  // Errors: kInvalidArgument (fewer rows than announced), kIo.
  Result<SavedFile> Finish(std::string_view structure, int64_t max_face_id);

 private:
  StreamedIndexFile(AtomicFileWriter out, IndexFileHeader header, size_t rows)
      : out_(std::move(out)), header_(std::move(header)), rows_(rows) {}
  AtomicFileWriter out_;
  IndexFileHeader header_;
  size_t rows_ = 0;     // announced
  size_t written_ = 0;  // appended so far
  size_t header_size_ = 0;
  std::vector<uint64_t> sums_;
};

// XXH3-64 of one block's arrays (rows [first, first+count) of `seg`).
uint64_t BlockSum(const SegmentArrays& seg, size_t first, size_t count);

// A mapped index file whose structure has been checked: header (its checksum, and the record's),
// the layout against the committed length, every sums table against its checksum, the structure
// section against its checksum, every chunk header; and, for files under kCheckAllBlocksBelow,
// every block. The arrays stay mapped for the object's lifetime (MAP_SHARED and writable for a
// writer, so an erasure reaches the file; MAP_PRIVATE otherwise). Thread-safety: const members
// concurrently.
class IndexFile {
 public:
  // Maps `path`'s first `expected_size` bytes. Errors: kNotFound (missing file), kIo, kCorrupt
  // (messages start "index file <path> ": size, checksums, layout, stamp).
  static Result<std::shared_ptr<IndexFile>> Open(const std::filesystem::path& path, int64_t expected_size,
                                                 const std::string& expected_checksum,
                                                 const IndexStamp& expected, bool writable);
  // Reads just the main header of `path` and checks its own checksum: what `info` and a judgement
  // of a damaged file need. Errors: kNotFound, kIo, kCorrupt.
  static Result<IndexFileHeader> ReadHeader(const std::filesystem::path& path, std::string* checksum = nullptr);
  ~IndexFile();
  IndexFile(const IndexFile&) = delete;
  IndexFile& operator=(const IndexFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const IndexFileHeader& header() const { return header_; }
  const SegmentArrays& main() const { return main_; }
  const std::vector<SegmentArrays>& chunks() const { return chunks_; }
  std::string_view structure() const { return structure_; }
  // The generation and largest id of the last chunk, or of the main header without chunks.
  int64_t generation() const { return generation_; }
  int64_t max_face_id() const { return max_face_id_; }
  int64_t size() const { return static_cast<int64_t>(size_); }
  bool writable() const { return writable_; }

  // Gives back this process's pages of [begin, begin + bytes) inside a writable (MAP_SHARED)
  // mapping, once read: a pass over every row (a compaction) then holds one batch of the file, not
  // all of it (their contents stay in the file and the page cache). No-op for a private mapping,
  // whose pages may hold a reader's own scrubs, and for bytes outside the mapping.
  void ReleasePages(const void* begin, size_t bytes) const;
  // Checks every block of every segment; returns one line per damaged block (none: empty).
  std::vector<std::string> VerifyBlocks() const;
  // The structure section's bytes, to scrub an erased row's entries in place (writable files
  // only; empty otherwise). Reseal with structure_changed afterwards.
  std::span<char> mutable_structure() const;
  // After rows were scrubbed in place: recomputes the sums of the blocks `dirty` names (segment
  // -1 = main, i = chunk i; block number), the structure's checksum when `structure_changed`, the
  // sums tables' and headers' checksums, stamps the main header with `generation`, and flushes
  // the mapping (msync). Writable files only. Returns the new checksum. Errors: kIo.
  Result<std::string> Reseal(std::span<const std::pair<int, size_t>> dirty, int64_t generation,
                             bool structure_changed = false);
  // Appends a chunk of `ids`/`rows` stamped `generation` after the committed length (cutting
  // bytes a killed append left there) and fsyncs it. Returns the new committed length (the
  // checksum is unchanged). The mapping is not extended. Errors: kIo.
  Result<int64_t> AppendChunk(std::span<const int64_t> ids, std::span<const float> rows, int64_t generation,
                              int64_t max_face_id);

 private:
  IndexFile() = default;
  std::string CheckLayout();
  std::filesystem::path path_;
  int fd_ = -1;
  char* map_ = nullptr;
  size_t size_ = 0;    // the committed length (grows with AppendChunk)
  size_t mapped_ = 0;  // the mapped length
  bool writable_ = false;
  IndexFileHeader header_;
  size_t header_size_ = 0;
  SegmentArrays main_;
  std::vector<SegmentArrays> chunks_;
  std::vector<size_t> chunk_offsets_;
  std::string_view structure_;
  int64_t generation_ = 0;
  int64_t max_face_id_ = 0;
};

}  // namespace facesearch
