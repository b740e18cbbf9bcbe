// The vector index: a main segment of exact float vectors keyed by face id, with the candidate
// structure of its kind over it (index_spec.h, candidates.h: none for exact, int8 codes, or a
// FAISS IVF-Flat, IVF-PQ or HNSW index whose labels are main-segment rows), plus a delta of rows
// appended since the main segment was written (the file's delta chunks, and rows added in memory),
// which every search scans exactly. Candidates are re-ranked with exact float distances, so every
// distance returned is exact. A loaded index maps its file (index_file.h): nothing is read or
// copied at load beyond headers and checksum tables. Compact folds the delta into a new main
// segment. Derived data: it can always be rebuilt from the Store.
//
// Thread-safety: Search may be called from several threads at once; Add/Erase/Prepare/Compact/
// Save need exclusive use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/progress.h"
#include "facesearch/error.h"
#include "facesearch/types.h"
#include "index/index_file.h"
#include "index/index_spec.h"
#include "search/exact_search.h"

namespace facesearch {

class CandidateStructure;

struct Hit {
  int64_t face_id = 0;
  float distance = 0.f;  // Euclidean (not squared), as dlib reports it
};


// Recall of the candidate structure measured against the exact scan (MeasureRecall).
struct RecallMeasure {
  double recall_at_10 = 1.0;
  int queries = 0;
};

// When the delta is folded into the main segment (SaveCorpusIndex): past this share of the main
// segment's rows, and at least kCompactMinRows (a scan of a delta that small costs nothing).
inline constexpr int64_t kCompactRatioPercent = 10;
inline constexpr int64_t kCompactMinRows = 4096;

// Rows handed over in batches, ids increasing (a streamed compaction's rows from the database).
using RowSink = std::function<Status(std::span<const int64_t> ids, std::span<const float> rows)>;
using RowFeed = std::function<Status(const RowSink& sink)>;


class VectorIndex {
 public:
  // An empty index of `spec`'s kind. Its parameters are used as given (callers pass
  // EffectiveIndexSpec); the approximate structure is trained by the first Prepare with vectors.
  static std::unique_ptr<VectorIndex> CreateEmpty(const IndexSpec& spec = {});
  // Maps and checks `path` (IndexFile::Open: committed size and header checksum against the
  // Store's record, layout, checksum tables, structure, stamp equal to `expected`; every block
  // too for small files), all BEFORE FAISS parses its section (crafted files have crashed FAISS's
  // reader); then checks that the structure is the header's kind, holds no more rows than the
  // main segment (an erasure takes rows out of IVF lists) and names only its rows. The
  // kind is the file's; `params` (re-rank, nprobe, ef_search) apply when they name the same kind.
  // `writable`: erasures and appends go to the file itself (a writer holding the lock). Returns
  // an index prepared without training. Errors: kNotFound (missing file), kIo, kCorrupt.
  static Result<std::unique_ptr<VectorIndex>> Load(const std::filesystem::path& path,
                                                   int64_t expected_size,
                                                   const std::string& expected_checksum,
                                                   const IndexStamp& expected,
                                                   const IndexSpec& params = {}, bool writable = false);
  ~VectorIndex();

  // ids.size() == vectors.size() / kEmbeddingDim; the ids increasing and above max_id() (faces are
  // appended in id order). The rows go to the delta. Errors: kInvalidArgument (nothing added).
  Status Add(std::span<const int64_t> ids, std::span<const float> vectors);
  // Room for `rows` more rows in the delta, so that a rebuild that knows its size grows the buffer
  // once: growing it by doubling holds the old and the new copy at once (8 GiB of floats at 10M).
  void Reserve(int64_t rows);
  // Scrubs the rows of `face_ids` wherever they are: id -1, floats kErasedValue, int8 codes 0,
  // and their FAISS entries tombstoned or overwritten (no retraining; candidates_faiss.cpp). A
  // mapped writable file is changed in place, its FAISS section included (Save reseals the blocks
  // and the section touched), in time proportional to the erased rows plus a pass over the ids.
  // Ids not in the index are ignored. Returns the rows scrubbed. Errors: kIndex.
  Result<int64_t> Erase(std::span<const int64_t> face_ids);
  // Folds the delta into a new main segment of the live rows (erased rows dropped) and rebuilds
  // the structure: with `keep_training` a trained FAISS structure keeps its centroids and
  // codebooks (no retraining), otherwise it is trained again by Prepare(true). Save then writes a
  // whole new file. Reports progress to `progress` when given. Errors: kIndex.
  Status Compact(bool keep_training, ProgressSink* progress = nullptr);
  // Compact and Save in one pass that never holds the rows (issue #16: the in-memory Compact
  // held 10.6 GiB at 10M faces and cannot run at 30M on 24 GiB): every live row of every
  // segment, then the `more_rows` rows `more` hands over (ids above max_id(), increasing; none
  // when more_rows is 0), go batch by batch into a whole new file at `path` (StreamedIndexFile)
  // while the trained structure is refilled with them, without training; then this index maps
  // the new file writable, as Load does (the caller holds the corpus write lock). Only when
  // CanCompactStreaming(). On failure `path` is untouched, and this index keeps its rows but
  // searches them exactly until it is opened again. Errors: kIndex, kIo, kInvalidArgument.
  Result<SavedFile> CompactToFile(const std::filesystem::path& path, const IndexStamp& stamp,
                                  const RowFeed& more, int64_t more_rows, ProgressSink* progress = nullptr);
  // Whether CompactToFile can run: exact, and the FAISS kinds once trained (not int8).
  bool CanCompactStreaming() const;
  // True when the delta, with `more_rows` rows still to come, has grown past kCompactRatioPercent
  // of the main segment (and kCompactMinRows), or when the main segment is empty and it is not.
  bool compaction_due(int64_t more_rows = 0) const;
  // Builds what is missing over the main segment (into which it first moves the delta of an index
  // with an empty main segment, as after CreateEmpty and Add): int8 codes, and, when `train` is true, the
  // FAISS structure when it is untrained and the main segment holds enough vectors. Training is
  // the one step whose cost grows past minutes (IVF-PQ at 10M faces): readers pass train = false
  // and search exactly until a writer trains (needs_training()). Errors: kIndex.
  Status Prepare(bool train = true);
  // True when searches use the candidate structure of the kind (always true for exact).
  bool prepared() const;
  // True when the kind's structure is missing and the index holds enough vectors to train it:
  // searches scan every row exactly until a writer compacts and trains. False for exact and int8,
  // and for an approximate kind too small to train (which is searched exactly by design).
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
  // Saves as `path` stamped `stamp`. When the index was loaded writable from `path` and neither
  // its main segment nor its structure changed since: reseals the blocks Erase scrubbed and
  // appends the rows added since as a delta chunk, in time proportional to the change. Otherwise
  // writes a whole new file atomically (WriteIndexFile). Prepare first (an unprepared index is
  // saved without its structure). Returns the committed size and checksum. Errors: kIndex, kIo.
  Result<SavedFile> Save(const std::filesystem::path& path, const IndexStamp& stamp);
  // Rows in every segment, erased rows included (the count the Store records).
  int64_t ntotal() const;
  // Rows of the delta (file chunks and rows added since), erased ones included.
  int64_t delta_rows() const;
  // Rows of the main segment.
  int64_t main_rows() const { return static_cast<int64_t>(main_.n); }
  // The mapped file this index was loaded from; null when built in memory or compacted since.
  const IndexFile* file() const { return file_.get(); }
  const IndexSpec& spec() const;
  // IVF kinds: lists visited per query from now on (a pass over every face, like cluster's
  // k-NN graph, trades recall for time); the other kinds ignore it.
  void SetProbes(int nprobe);
  // The parameters the candidate structure really has (nlist, pq_bits... as trained).
  IndexSpec built_spec() const;
  // What a process that opens this index's saved file holds (IndexFootprint): its float vectors and
  // ids mapped, and the structure of its kind, resident or mapped.
  IndexFootprint footprint() const;
  // Every live face id in the index, in insertion order.
  std::vector<int64_t> ids() const;
  // The float vectors stored for `sorted_ids` (increasing; what exact search and re-ranking use),
  // found in one pass over the rows, in memory that grows with the ids asked for, not with the
  // index: (id, its kEmbeddingDim floats) in id order, for the ids the index holds. The pointers
  // are valid until the index next changes.
  std::vector<std::pair<int64_t, const float*>> RowsOf(std::span<const int64_t> sorted_ids) const;
  // The largest face id in the index; 0 when it is empty.
  int64_t max_id() const { return max_id_; }

 private:
  explicit VectorIndex(std::unique_ptr<CandidateStructure> candidates);
  search::FlatView MainView() const;
  // Takes over `other`'s segments, file and structure (CompactToFile's freshly loaded file).
  void Adopt(VectorIndex& other);
  // Makes `ids`/`vectors` the main segment (held in memory), with no delta and no file.
  Status Install(std::vector<int64_t> ids, std::vector<float> vectors, bool keep_training);
  // Every segment: the main one, the file's chunks, the rows added since.
  std::vector<search::FlatView> Segments() const;
  std::unique_ptr<CandidateStructure> candidates_;  // of the kind, over the main segment
  std::shared_ptr<IndexFile> file_;                 // the main segment and chunks, when mapped
  std::string checksum_;                            // of file_, as recorded
  std::vector<int64_t> own_ids_;                    // the main segment when built in memory
  std::vector<float> own_rows_;
  SegmentArrays main_;
  std::vector<SegmentArrays> chunks_;               // file_'s delta chunks
  std::vector<int64_t> new_ids_;                    // rows added since load or compaction
  std::vector<float> new_rows_;
  size_t new_saved_ = 0;                            // of those, rows already appended to file_
  std::vector<std::pair<int, size_t>> dirty_;       // file_ blocks scrubbed in place (segment, block)
  bool structure_dirty_ = false;                    // file_'s structure section scrubbed in place
  bool rewrite_ = true;                             // Save must write a whole file
  int64_t max_id_ = 0;
};

}  // namespace facesearch
