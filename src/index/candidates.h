// The part of a vector index that differs by kind (index_spec.h): the structure that picks
// candidates for the exact re-rank. VectorIndex (vector_index.h) owns the exact float vectors and
// their ids and hands a view of them to every call; CandidateStructure::Create picks the
// implementation of a kind once, and VectorIndex delegates to it instead of asking for the kind:
//   exact         ExactCandidates  none: every search scans the floats
//   int8          Int8Candidates   search::Int8Index codes, saved in the file (mapped on load)
//   ivf, ivfpq    IvfCandidates    FAISS IndexIVFFlat / IndexIVFPQ (candidates_faiss.cpp)
//   hnsw          HnswCandidates   FAISS IndexHNSWFlat (candidates_faiss.cpp)
// The FAISS structures' labels are row numbers of the flat store, and they are the second part of
// an index file (index_file.h). Internal to src/index/.
//
// Thread-safety: as VectorIndex (Search concurrently; everything else exclusively).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "index/index_file.h"
#include "index/index_spec.h"
#include "search/exact_search.h"

namespace faiss {
struct IOWriter;
}

namespace facesearch {

using Neighbors = std::vector<std::vector<search::Neighbor>>;

// What an erasure did to the structure's file section (CandidateStructure::EraseRows).
enum class StructureErasure {
  kUntouched,  // nothing of the section changed (exact, int8: their bytes are the blocks')
  kInPlace,    // the erased entries were scrubbed in the section: reseal its checksum
  kWholeFile,  // no section to scrub (built in memory, read-only, or not where FAISS writes it):
               // only a whole new file holds the change
};

class CandidateStructure {
 public:
  // The empty, untrained structure of spec.kind; `spec` is used as given (callers pass
  // EffectiveIndexSpec or a corpus setting whose 0 parameters are filled at build time).
  static std::unique_ptr<CandidateStructure> Create(const IndexSpec& spec);
  virtual ~CandidateStructure() = default;
  CandidateStructure(const CandidateStructure&) = delete;
  CandidateStructure& operator=(const CandidateStructure&) = delete;

  const IndexSpec& spec() const { return spec_; }
  // IVF kinds: visit `nprobe` lists per query from now on (capped at nlist); the others ignore it.
  virtual void SetProbes(int /*nprobe*/) {}

  // Drops the structure's contents for a compaction (the flat rows are about to change). With
  // `keep_training` a trained FAISS structure keeps its coarse centroids and codebooks, and the
  // next Prepare refills it with every row, without training.
  virtual void Reset(bool /*keep_training*/) {}
  // A compaction that streams its rows (VectorIndex::CompactToFile) empties the structure with
  // Reset(true), then refills it batch by batch in row order, without training, then EndRefill.
  // Whether this kind, as it is now, can: exact (nothing to fill) and the trained FAISS kinds; not
  // int8, whose codes are built over every row at once (and are 128 bytes a face anyway).
  virtual bool CanRefillInBatches() const { return false; }
  // `n` rows numbered from `first_row`. Errors: kIndex.
  virtual Status RefillBatch(const float* /*rows*/, int64_t /*n*/, int64_t /*first_row*/) { return Ok(); }
  virtual void EndRefill() {}
  // Builds what is missing over `flat` (never empty), training only when `train` is true and the
  // structure needs it. Errors: kIndex.
  virtual Status Prepare(const search::FlatView& flat, bool train);
  // True when searches use the structure (always for exact).
  virtual bool prepared() const { return true; }
  // True when the structure is missing and `n` vectors are enough to train it.
  virtual bool needs_training(int64_t n) const;
  // Up to k nearest rows per query, nearest first, with exact squared distances and the view's
  // ids. Called only when prepared(), with a non-empty `flat` and k > 0. Errors: kIndex.
  virtual Result<Neighbors> Search(const search::FlatView& flat, std::span<const Embedding> queries,
                                   int k) const = 0;
  // The parameters the structure really has over `n` vectors (as trained, when it is).
  virtual IndexSpec built_spec(int64_t n) const { return EffectiveIndexSpec(spec_, n); }
  // The structure's part of VectorIndex::footprint() over `n` vectors (codes, lists, graph).
  virtual IndexFootprint footprint(int64_t /*n*/) const { return {}; }
  // Appends the structure's serialisation (an index file's second part) to `out`; nothing when
  // there is none. Throws what FAISS throws.
  virtual void Write(faiss::IOWriter& out) const;
  // The int8 codes (flat.n * kEmbeddingDim bytes) an index file keeps for this kind, with their
  // parameters set in `header`; empty for the other kinds.
  virtual std::span<const uint8_t> Codes(IndexFileHeader& /*header*/) const { return {}; }
  // Adopts what a checked index file holds for this kind over its main rows `flat`: the FAISS
  // structure section, or the int8 codes (header.has_codes; `codes` borrowed, mapped). Returns why
  // it cannot be used ("" when it can), phrased to follow "index file <path> ". Throws what
  // FAISS's reader throws.
  virtual std::string Load(const search::FlatView& flat, const IndexFileHeader& header,
                           std::string_view structure, uint8_t* codes);
  // Scrubs the flat rows `rows` (erased from the flat store already) from the structure: their
  // int8 codes zeroed (in the mapped file, through the codes Load borrowed), their IVF list
  // entries tombstoned (id -1, code scrubbed; searches skip them), HNSW's copies overwritten.
  // `structure` is the writable file section the structure was loaded from (empty when there is
  // none): the FAISS kinds scrub the same bytes there. Errors: kIndex.
  virtual Result<StructureErasure> EraseRows(std::span<const int64_t> /*rows*/, std::span<char> /*structure*/) {
    return StructureErasure::kUntouched;
  }

 protected:
  explicit CandidateStructure(const IndexSpec& spec) : spec_(spec) {}
  IndexSpec spec_;
};

// The structures of the FAISS kinds (candidates_faiss.cpp).
std::unique_ptr<CandidateStructure> CreateFaissCandidates(const IndexSpec& spec);

// Runs fn, turning exceptions into `code` errors that name `what`.
template <class Fn>
Status Guard(ErrorCode code, const std::string& what, Fn&& fn) {
  try {
    fn();
    return Ok();
  } catch (const std::exception& e) {
    return Fail(code, what + ": " + e.what());
  }
}

// The exact k nearest rows of `flat` per query (our SIMD scan). Errors: kIndex.
Result<Neighbors> ExactNeighbors(const search::FlatView& flat, std::span<const Embedding> queries, int k);

}  // namespace facesearch
