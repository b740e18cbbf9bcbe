// The open / catch-up / rebuild protocol that keeps the derived vector index in step with SQLite.
#include "index/corpus_index.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "common/crash_point.h"
#include "common/fs.h"
#include "common/progress.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

// Training has no progress of its own (FAISS's k-means reports nothing): one line before it starts,
// so that minutes of it at millions of faces are not silent.
void SayTraining(const VectorIndex& index) {
  if (index.needs_training())
    spdlog::info("training the {} index on {} faces", IndexKindName(index.spec().kind), index.main_rows());
}

// Streams faces with id > after_id from the Store to `sink` in bounded batches.
Status StreamFaces(Store& store, int64_t after_id, const RowSink& sink, ProgressSink* progress = nullptr) {
  constexpr size_t kBatch = 4096;
  std::vector<int64_t> ids;
  std::vector<float> vectors;
  Status sink_status = Ok();
  int64_t streamed = 0;
  auto flush = [&] {
    if (sink_status && !ids.empty()) sink_status = sink(ids, vectors);
    streamed += static_cast<int64_t>(ids.size());
    ids.clear();
    vectors.clear();
    if (progress) progress->Advance(streamed);
  };
  FS_TRY(store.ForEachEmbedding(after_id, [&](int64_t id, const Embedding& e) {
    if (!sink_status) return;  // the callback cannot stop the statement: skip the rest
    ids.push_back(id);
    vectors.insert(vectors.end(), e.begin(), e.end());
    if (ids.size() == kBatch) flush();
  }));
  flush();
  return sink_status;
}

// Appends the Store's faces with id > after_id to `index`. Returns how many were added.
Result<int64_t> AppendFaces(Store& store, VectorIndex& index, int64_t after_id, ProgressSink* progress = nullptr) {
  const int64_t before = index.ntotal();
  FS_TRY(StreamFaces(
      store, after_id, [&](std::span<const int64_t> ids, std::span<const float> rows) { return index.Add(ids, rows); },
      progress));
  return index.ntotal() - before;
}

void RemoveStaleTempFiles(const fs::path& index_dir) {
  for (const fs::path& stale : StaleIndexTempFiles(index_dir)) {
    std::error_code ec;
    if (fs::remove(stale, ec)) spdlog::info("removed {}, left by an interrupted index write", stale.string());
  }
}

// Whether a compaction of `index` streams its rows into the new file (VectorIndex::CompactToFile)
// instead of gathering them in memory: always for exact, and for a trained FAISS structure kept
// through the compaction (KeepsTrainingAfterErasure); a small one is trained anew in memory.
bool StreamsCompaction(const VectorIndex& index) {
  return index.CanCompactStreaming() &&
         (index.spec().kind == IndexKind::kExact || KeepsTrainingAfterErasure(index.main_rows()));
}

// CompactToFile into index_dir with progress for large indexes, after removing what killed
// writers left there; `more` streams the Store's faces above the index's ids.
Result<SavedFile> StreamCompaction(Store& store, VectorIndex& index, const fs::path& index_dir,
                                   const IndexStamp& stamp, int64_t more_rows) {
  FS_TRY(EnsurePrivateDir(index_dir));
  RemoveStaleTempFiles(index_dir);
  std::unique_ptr<ProgressSink> progress = ProgressFor(index.ntotal() + more_rows);
  const int64_t after = index.max_id();
  return index.CompactToFile(
      index_dir / kIndexFileName, stamp, [&](const RowSink& sink) { return StreamFaces(store, after, sink); },
      more_rows, progress.get());
}

// Rebuilds from every face in the Store, as the corpus's index kind. A first build is routine
// (debug); a repair is a warning.
Result<OpenedIndex> RebuildIndex(Store& store, const IndexSpec& spec, bool train, std::string reason,
                                 spdlog::level::level_enum level = spdlog::level::warn) {
  auto index = VectorIndex::CreateEmpty(spec);
  FS_ASSIGN(const int64_t faces, store.FaceCount());
  std::unique_ptr<ProgressSink> progress = ProgressFor(faces);
  if (progress) progress->Start("reading " + std::to_string(faces) + " faces from the database", faces);
  index->Reserve(faces);
  FS_ASSIGN(int64_t added, AppendFaces(store, *index, 0, progress.get()));
  if (progress) progress->Finish();
  FS_TRY(index->Compact(/*keep_training=*/false));
  if (train) SayTraining(*index);
  FS_TRY(index->Prepare(train));
  spdlog::log(level, "rebuilt the vector index from the database ({} faces): {}{}", added, reason,
              spec.kind == IndexKind::kExact ? "" : std::string(" (index kind ") + IndexKindName(spec.kind) + ")");
  return OpenedIndex{std::move(index), IndexState::kRebuilt, std::move(reason)};
}

// Scrubs from a loaded index the faces the Store no longer holds (an erasure since the snapshot):
// in place on a large corpus, whose trained structure is kept; by a compaction that trains anew
// on a small one (KeepsTrainingAfterErasure).
Result<int64_t> EraseRemoved(Store& store, VectorIndex& index, bool train) {
  FS_ASSIGN(const std::vector<int64_t> live, store.FaceIds());
  std::vector<int64_t> held = index.ids(), dead;
  std::sort(held.begin(), held.end());
  std::set_difference(held.begin(), held.end(), live.begin(), live.end(), std::back_inserter(dead));
  FS_ASSIGN(const int64_t erased, index.Erase(dead));
  if (!KeepsTrainingAfterErasure(index.main_rows())) {
    FS_TRY(index.Compact(/*keep_training=*/false));
    FS_TRY(index.Prepare(train));
  }
  return erased;
}

// Loads the recorded snapshot and acts on JudgeIndex: keeps it (fresh), catches it up (lagging),
// scrubs what was erased since, or rebuilds it. Errors only for failures that a rebuild could not
// fix either (database errors).
Result<OpenedIndex> LoadOrRepair(Store& store, const fs::path& index_dir, bool train, bool writable) {
  FS_ASSIGN(const IndexSpec spec, CorpusIndexSpec(store));
  auto Rebuild = [&](std::string reason, spdlog::level::level_enum level = spdlog::level::warn) {
    return RebuildIndex(store, spec, train, std::move(reason), level);
  };
  IndexRecord record;
  record.kind = spec.kind;
  FS_ASSIGN(record.generation, store.Generation());
  FS_ASSIGN(record.delete_generation, store.DeleteGeneration());
  auto snap_or = store.GetIndexSnapshot();
  if (!snap_or && snap_or.error().code != ErrorCode::kCorrupt)
    return std::unexpected(snap_or.error());
  if (!snap_or) return Rebuild("the index snapshot record is unreadable: " +
                                          snap_or.error().message);
  record.snapshot = *snap_or;
  if (auto verdict = JudgeIndexRecord(record))
    return Rebuild(verdict->reason, verdict->cause == IndexCause::kNoRecord ? spdlog::level::debug
                                                                            : spdlog::level::warn);
  const IndexSnapshot& snap = *record.snapshot;
  FS_ASSIGN(record.model_identity, store.ModelIdentity());
  auto loaded = VectorIndex::Load(index_dir / snap.file, snap.size, snap.sha256,
                                  IndexStamp{snap.generation, record.model_identity}, spec, writable);
  IndexFileFacts facts;
  if (!loaded) facts.problem = loaded.error().message;
  else facts.loaded = {(*loaded)->ntotal(), (*loaded)->max_id(), (*loaded)->spec().kind};
  const IndexVerdict verdict = JudgeIndex(record, facts);
  switch (verdict.condition) {
    case IndexCondition::kFresh:
      FS_TRY((*loaded)->Prepare(train));  // a file saved before the corpus was large enough to train
      return OpenedIndex{std::move(*loaded), IndexState::kFresh, ""};
    case IndexCondition::kLagging: {
      std::unique_ptr<VectorIndex> index = std::move(*loaded);
      // A writer catching up more faces than a compaction waits for (a bulk import, a grown
      // corpus) streams them from the database into a new file rather than into memory.
      FS_ASSIGN(const int64_t lag, store.CountFacesAfter(snap.max_face_id));
      if (writable && train && index->compaction_due(lag) && StreamsCompaction(*index)) {
        const IndexStamp stamp{record.generation, record.model_identity};
        FS_ASSIGN(const SavedFile saved, StreamCompaction(store, *index, index_dir, stamp, lag));
        CrashPoint("index-saved");
        FS_TRY(store.SetIndexSnapshot(SnapshotOf(*index, record.generation, saved)));
        std::string reason = verdict.reason + "; compacted " + std::to_string(lag) +
                             " faces from the database into a new index file";
        spdlog::info("caught up the vector index: {}", reason);
        return OpenedIndex{std::move(index), IndexState::kCaughtUp, std::move(reason)};
      }
      FS_ASSIGN(int64_t added, AppendFaces(store, *index, snap.max_face_id));
      FS_TRY(index->Prepare(train));
      std::string reason = verdict.reason + "; appended " + std::to_string(added) + " faces";
      spdlog::info("caught up the vector index: {}", reason);
      return OpenedIndex{std::move(index), IndexState::kCaughtUp, std::move(reason)};
    }
    case IndexCondition::kOtherKind: return Rebuild(verdict.reason, spdlog::level::info);
    case IndexCondition::kNeedsRebuild:
      if (verdict.cause == IndexCause::kRemovedSince) {
        std::unique_ptr<VectorIndex> index = std::move(*loaded);
        FS_ASSIGN(const int64_t erased, EraseRemoved(store, *index, train));
        FS_ASSIGN(const int64_t added, AppendFaces(store, *index, index->max_id()));
        FS_TRY(index->Prepare(train));
        std::string reason = verdict.reason + "; scrubbed " + std::to_string(erased) + " erased faces" +
                             (added ? ", appended " + std::to_string(added) : "");
        spdlog::debug("updated the vector index: {}", reason);
        return OpenedIndex{std::move(index), IndexState::kCaughtUp, std::move(reason)};
      }
      return Rebuild(verdict.reason);
    default: return Rebuild(verdict.reason);
  }
}

}  // namespace

std::optional<IndexVerdict> JudgeIndexRecord(const IndexRecord& record) {
  const std::optional<IndexSnapshot>& snap = record.snapshot;
  if (!snap) return IndexVerdict{IndexCondition::kMissing, IndexCause::kNoRecord, "no index snapshot is recorded"};
  if (snap->file != kIndexFileName)
    return IndexVerdict{IndexCondition::kCorrupt, IndexCause::kUnexpectedFile,
                        "the snapshot names an unexpected file '" + snap->file + "'"};
  if (snap->generation > record.generation)
    return IndexVerdict{IndexCondition::kNeedsRebuild, IndexCause::kNewerThanStore,
                        "the snapshot (generation " + std::to_string(snap->generation) +
                            ") is newer than the database (generation " +
                            std::to_string(record.generation) + ")"};
  return std::nullopt;
}

IndexVerdict JudgeIndex(const IndexRecord& record, const IndexFileFacts& file) {
  if (auto verdict = JudgeIndexRecord(record)) return *verdict;
  const IndexSnapshot& snap = *record.snapshot;
  const std::string unusable = "the index file cannot be used: " + file.problem;
  if (!file.exists) return {IndexCondition::kMissing, IndexCause::kFileMissing, unusable};
  if (!file.problem.empty()) {
    // An intact file newer than its record: a crash state the next writer repairs, not damage. One
    // generation past the Store's: scrubbed by an erasure that was killed before its commit
    // (forget.cpp stamps the generation the commit would have made).
    if (const auto& h = file.header; h && h->stamp.model_identity == record.model_identity &&
                                     h->stamp.generation >= snap.generation &&
                                     h->stamp.generation <= record.generation + 1)
      return {IndexCondition::kNeedsRebuild, IndexCause::kSavedNotRecorded, unusable};
    return {IndexCondition::kCorrupt, IndexCause::kFileUnusable, unusable};
  }
  if (const auto& loaded = file.loaded) {
    if (loaded->ntotal != snap.ntotal || loaded->max_face_id != snap.max_face_id)
      return {IndexCondition::kCorrupt, IndexCause::kContentsDisagree,
              "the index file's contents disagree with its snapshot record"};
    if (loaded->kind && *loaded->kind != record.kind)
      return {IndexCondition::kOtherKind, IndexCause::kOtherKind,
              std::string("the index file is ") + IndexKindName(*loaded->kind) + ", the corpus is set to " +
                  IndexKindName(record.kind)};
  }
  if (snap.generation == record.generation) return {IndexCondition::kFresh, IndexCause::kCurrent, ""};
  if (record.delete_generation > snap.generation)
    return {IndexCondition::kNeedsRebuild, IndexCause::kRemovedSince,
            "faces were removed after the snapshot (generation " + std::to_string(snap.generation) +
                ", removal at generation " + std::to_string(record.delete_generation) + ")"};
  return {IndexCondition::kLagging, IndexCause::kNewFaces,
          "the snapshot was at generation " + std::to_string(snap.generation) + ", the database at " +
              std::to_string(record.generation)};
}

Result<IndexSpec> CorpusIndexSpec(Store& store) {
  FS_ASSIGN(std::optional<std::string> text, store.GetMeta(kIndexSpecKey));
  if (!text || text->empty()) {
    FS_ASSIGN(const int64_t faces, store.FaceCount());
    IndexSpec automatic;
    automatic.kind = AutoIndexKind(faces);
    return automatic;
  }
  auto spec = ParseIndexSpec(*text);
  if (spec) return *spec;
  spdlog::warn("{}; searching with the exact index (run `facesearch reindex` to set it again)",
               spec.error().message);
  return IndexSpec{};
}

const char* IndexStateName(IndexState s) {
  switch (s) {
    case IndexState::kFresh: return "fresh";
    case IndexState::kCaughtUp: return "caught-up";
    case IndexState::kRebuilt: return "rebuilt";
  }
  return "rebuilt";
}

Result<OpenedIndex> OpenCorpusIndex(Store& store, const fs::path& index_dir, bool persist,
                                    IndexUse use) {
  const bool train = use == IndexUse::kWrite;
  // Only a writer maps the file writable: a reader that scrubs erased faces (a removal its Store
  // shows, the file not yet) does so in its private copy of the pages.
  FS_ASSIGN(OpenedIndex opened, LoadOrRepair(store, index_dir, train, /*writable=*/persist && train));
  const VectorIndex& index = *opened.index;
  if (index.needs_training()) {  // only for IndexUse::kSearch: a writer has trained it by now
    spdlog::warn("the {} index must be trained again{}{}: this search compares the probe with all {} "
                 "faces exactly (slower, never less accurate); the next `facesearch index`, "
                 "`facesearch reindex` or `facesearch verify --repair` trains it",
                 IndexKindName(index.spec().kind), opened.reason.empty() ? "" : " (",
                 opened.reason.empty() ? "" : opened.reason + ")", index.ntotal());
    return opened;  // not saved: saving would train (SaveCorpusIndex prepares what it writes)
  }
  // A search does not compact either: folding millions of faces added outside the index (an
  // `index` killed before it saved, a bulk import) into the main segment took a query 205 s and
  // 10.6 GiB at 10M faces. It searches the delta from memory and leaves the fold to a writer.
  if (persist && opened.state != IndexState::kFresh && use == IndexUse::kSearch && index.main_rows() > 0 &&
      index.compaction_due()) {
    spdlog::warn("{} faces are not yet in the saved index: this search reads them from the database and "
                 "compares them exactly; `facesearch compact` (or the next `facesearch index`) folds them in",
                 index.delta_rows());
    return opened;
  }
  if (persist && opened.state != IndexState::kFresh)
    FS_TRY(SaveCorpusIndex(store, *opened.index, index_dir));
  return opened;
}

Result<int64_t> AppendNewFaces(Store& store, VectorIndex& index) {
  FS_ASSIGN(const int64_t added, AppendFaces(store, index, index.max_id()));
  FS_TRY(index.Prepare(/*train=*/false));
  return added;
}

std::vector<fs::path> StaleIndexTempFiles(const fs::path& index_dir) {
  std::vector<fs::path> found;
  const std::string prefix = std::string(kIndexFileName) + ".tmp.";
  std::error_code ec;
  for (auto it = fs::directory_iterator(index_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename().string().starts_with(prefix)) found.push_back(it->path());
  std::sort(found.begin(), found.end());
  return found;
}

std::unique_ptr<ProgressSink> ProgressFor(int64_t rows) {
  if (rows < kProgressFrom || !spdlog::should_log(spdlog::level::info)) return nullptr;
  return std::make_unique<ProgressBar>();
}

bool KeepsTrainingAfterErasure(int64_t main_rows) { return main_rows >= kKeepTrainingFrom; }

Status CompactIndex(VectorIndex& index) {
  std::unique_ptr<ProgressSink> progress = ProgressFor(index.ntotal());
  FS_TRY(index.Compact(KeepsTrainingAfterErasure(index.main_rows()), progress.get()));
  SayTraining(index);
  return index.Prepare(/*train=*/true);
}

Status SaveCorpusIndex(Store& store, VectorIndex& index, const fs::path& index_dir, bool compact) {
  compact = compact || index.compaction_due() || index.needs_training() ||
            (index.delta_rows() > 0 && !index.prepared() && index.main_rows() == 0);
  FS_ASSIGN(const int64_t generation, store.Generation());
  FS_ASSIGN(std::string model_identity, store.ModelIdentity());
  const IndexStamp stamp{generation, std::move(model_identity)};
  SavedFile saved;
  if (compact && StreamsCompaction(index)) {
    FS_ASSIGN(saved, StreamCompaction(store, index, index_dir, stamp, 0));
  } else {
    if (compact) FS_TRY(CompactIndex(index));
    FS_TRY(index.Prepare());
    FS_TRY(EnsurePrivateDir(index_dir));
    RemoveStaleTempFiles(index_dir);
    FS_ASSIGN(saved, index.Save(index_dir / kIndexFileName, stamp));
  }
  CrashPoint("index-saved");
  return store.SetIndexSnapshot(SnapshotOf(index, generation, saved));
}

IndexSnapshot SnapshotOf(const VectorIndex& index, int64_t generation, const SavedFile& saved) {
  const IndexFootprint f = index.footprint();
  return IndexSnapshot{generation,    index.max_id(),  index.ntotal(),
                       saved.size,    saved.checksum,  kIndexFileName,
                       IndexKindName(index.spec().kind), f.resident_bytes + f.mapped_bytes, f.mapped_bytes};
}

}  // namespace facesearch
