// Keeps the vector index consistent with the Store (the protocol of ../shared/RELIABILITY.md).
//
// On open: map the snapshot named in the Store's meta table after checking its committed size and
// header checksum; if it is missing, corrupt or foreign, rebuild from SQLite; if it lags (snapshot
// generation older than the Store's), append the faces newer than the snapshot, and scrub the
// faces erased since (VectorIndex::Erase). Writers that add commit SQLite first, then append to
// the index, then record the snapshot; erasure scrubs the index first (forget.cpp). A crash at any
// point leaves a corpus that the next open repairs.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/error.h"
#include "common/progress.h"
#include "index/vector_index.h"
#include "store/store.h"

namespace facesearch {

enum class IndexState {
  kFresh,     // snapshot on disk matched the Store
  kCaughtUp,  // snapshot lagged; newer faces were appended
  kRebuilt,   // snapshot missing, corrupt or unusable; rebuilt from SQLite
};
const char* IndexStateName(IndexState s);  // "fresh", "caught-up", "rebuilt"

struct OpenedIndex {
  std::unique_ptr<VectorIndex> index;
  IndexState state = IndexState::kFresh;
  std::string reason;  // why it was caught up or rebuilt (for logs and `info`)
};

inline constexpr const char* kIndexFileName = "faces.faiss";

// The one judgement of a corpus's index against its Store, shared by OpenCorpusIndex (which acts
// on it), `verify` (which reports it) and `info` (which names it), so that they cannot drift apart.
enum class IndexCondition {
  kFresh,         // the file holds the Store's current generation
  kLagging,       // older, and no face was removed since: appending the newer faces catches it up
  kNeedsRebuild,  // removed faces since (scrubbed from the file, not rebuilt: VectorIndex::Erase),
                  // a record newer than the Store, or a save never recorded
  kCorrupt,       // the record names another file, or the file fails its checks or its record
  kOtherKind,     // intact and current or lagging, but of another kind than the corpus setting
  kMissing,       // no snapshot recorded, or its file is absent
};
// Why, finer than the condition (each belongs to one condition).
enum class IndexCause {
  kCurrent,            // fresh
  kNewFaces,           // lagging
  kRemovedSince,       // needs rebuild: the erased faces are scrubbed from the loaded file
  kNewerThanStore,     // needs rebuild: restored from another copy?
  kSavedNotRecorded,   // needs rebuild: a writer was killed between saving and recording (or an
                       // erasure between scrubbing the file and committing)
  kUnexpectedFile,     // corrupt
  kFileUnusable,       // corrupt
  kContentsDisagree,   // corrupt
  kOtherKind,          // other kind
  kNoRecord,           // missing
  kFileMissing,        // missing
};
struct IndexVerdict {
  IndexCondition condition = IndexCondition::kFresh;
  IndexCause cause = IndexCause::kCurrent;
  std::string reason;  // what was found, for logs ("" when fresh)
};

// What the Store records.
struct IndexRecord {
  std::optional<IndexSnapshot> snapshot;  // none recorded
  int64_t generation = 0;                 // Store::Generation
  int64_t delete_generation = 0;          // Store::DeleteGeneration
  std::string model_identity;             // Store::ModelIdentity
  IndexKind kind = IndexKind::kExact;     // CorpusIndexSpec
};
// What reading the recorded file found. Unset parts are not judged.
struct IndexFileFacts {
  bool exists = true;
  std::string problem;  // why it failed its checks (VectorIndex::Load); "" when it passed them
  std::optional<IndexFileHeader> header;  // of a file that failed, when its own header is intact
  struct Loaded {
    int64_t ntotal = 0;
    int64_t max_face_id = 0;
    std::optional<IndexKind> kind;
  };
  std::optional<Loaded> loaded;  // the index the file holds
};

// Judges the record alone; nullopt when the file must be read to decide (then JudgeIndex). A
// record this refuses names no file that may be read (its name is not ours).
std::optional<IndexVerdict> JudgeIndexRecord(const IndexRecord& record);
// Judges record and file: the record's verdict, else the file's checks, its counts against the
// record, its kind, then the generations.
IndexVerdict JudgeIndex(const IndexRecord& record, const IndexFileFacts& file);

// Meta keys of the corpus's index setting (`facesearch reindex`): the requested spec
// (FormatIndexSpec; 0 parameters = defaults for the size at each build), kept by every later
// rebuild, catch-up and repair; absent = exact. The other keys record the last reindex.
inline constexpr const char* kIndexSpecKey = "search_index.spec";
inline constexpr const char* kIndexBuiltParamsKey = "search_index.built_params";
inline constexpr const char* kIndexRecallKey = "search_index.recall_at_10";
inline constexpr const char* kIndexRecallQueriesKey = "search_index.recall_queries";
inline constexpr const char* kIndexBuildSecondsKey = "search_index.build_seconds";
inline constexpr const char* kIndexBuiltGenerationKey = "search_index.built_generation";
inline constexpr const char* kIndexBuiltAtKey = "search_index.built_at";

// The corpus's index setting. When none is recorded (no `reindex` yet, or `reindex --index auto`
// without parameters, which records an empty setting), the kind `reindex --index
// auto` would pick for the corpus's current face count (exact below 200,000 faces), with default
// parameters; so a corpus that grows past a threshold is rebuilt as the faster kind by the next
// command that opens its index. An unreadable setting is logged and read as exact (searches stay
// correct, only slower). Errors: kDatabase.
Result<IndexSpec> CorpusIndexSpec(Store& store);

// Who opens the index. Writers (index, reindex, forget, verify --repair) train an approximate
// structure that must be built anew (after an erasure, a growth past a kind's threshold, a
// damaged file). Searches (query, cluster) never train: at 10M faces training IVF-PQ takes
// many minutes, and a command that should be quick must not do long work silently (issue #16).
// They scan every face exactly instead, say so once on stderr, and leave the structure, and the
// file, to the next writer.
enum class IndexUse { kWrite, kSearch };

// Opens the index for `store`, repairing as described above. When `persist` is true and the index
// was caught up or rebuilt, it is saved and the snapshot recorded (caller must hold the corpus
// write lock); with IndexUse::kSearch an index left untrained is not saved. Errors: kIndex,
// kDatabase, kIo.
Result<OpenedIndex> OpenCorpusIndex(Store& store, const std::filesystem::path& index_dir,
                                    bool persist, IndexUse use = IndexUse::kWrite);

// Appends the Store's faces newer than index.max_id() to `index` and prepares it without
// training (IndexUse::kSearch): how a reader that keeps its index open catches up with faces
// another process added. Only for additions: after a removal the index must be opened anew.
// Returns how many faces were appended. Errors: kDatabase, kIndex.
Result<int64_t> AppendNewFaces(Store& store, VectorIndex& index);

// Erasure keeps the trained structure (IVF centroids, PQ codebooks, int8 offsets and step) of a
// main segment of at least this many faces: each of those centroids is an average over hundreds
// of faces or more (1,024 IVF lists, 256 PQ centroids per sub-space, a 1e-4 quantile range), not
// anyone's embedding, and training them again at 10M costs minutes. Below it, an erasure
// compacts and trains anew (seconds), since a centroid over a few faces can be one of them.
inline constexpr int64_t kKeepTrainingFrom = 100'000;

// Progress on stderr (a ProgressBar) for a step over `rows` rows from kProgressFrom, unless the log
// level hides info (-q); null otherwise: smaller steps take well under a second.
inline constexpr int64_t kProgressFrom = 50'000;
std::unique_ptr<ProgressSink> ProgressFor(int64_t rows);
bool KeepsTrainingAfterErasure(int64_t main_rows);

// Folds the delta into the main segment (VectorIndex::Compact, keeping the training from
// kKeepTrainingFrom faces) and prepares it with training, with progress on stderr for large
// indexes. Errors: kIndex.
Status CompactIndex(VectorIndex& index);

// Saves `index` into index_dir and records the snapshot for the Store's current generation, after
// removing the temporary files that killed writers left behind (they may hold embeddings).
// Caller must hold the corpus write lock and have added every committed face to `index`.
// Compacts first when `compact` is true, the delta is due (VectorIndex::compaction_due) or the
// structure must be trained: exact and large trained indexes by streaming their rows into the new
// file (VectorIndex::CompactToFile: memory bounded at any size), the others in memory
// (CompactIndex); prepares `index` (VectorIndex::Prepare) before saving it. A loaded index whose
// main segment did not change is saved by appending its new rows and resealing scrubbed blocks.
// A writer whose index lags the Store by more than a compaction waits for (a bulk import) is
// caught up the same streaming way when opened (OpenCorpusIndex), not through memory.
Status SaveCorpusIndex(Store& store, VectorIndex& index, const std::filesystem::path& index_dir,
                       bool compact = false);

// The Store's record of `index` saved as `saved`, stamped `generation`.
IndexSnapshot SnapshotOf(const VectorIndex& index, int64_t generation, const SavedFile& saved);

// Temporary files of interrupted index writes ("faces.faiss.tmp.<pid>") in index_dir.
std::vector<std::filesystem::path> StaleIndexTempFiles(const std::filesystem::path& index_dir);

}  // namespace facesearch
