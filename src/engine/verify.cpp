// `facesearch verify` (facesearch/verify.h): every consistency promise of the corpus, checked from
// the files on disk, and --repair for the derived state.
#include "facesearch/verify.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/fs.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/models.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

bool VerifyReport::healthy() const {
  return std::none_of(findings.begin(), findings.end(), [](const VerifyFinding& f) { return f.problem; });
}

namespace {

// What repairs an index that a writer left unrecorded, unrecorded or of another kind: a query
// never writes (or trains) an index, it only rebuilds one in memory for itself.
const std::string kRebuiltByWriter =
    "`facesearch verify --repair` (or the next `facesearch index` or `compact`) rebuilds it; until then "
    "each query rebuilds it in memory from the database";

// "3 (ids 4, 9, 12)" or "120 (ids 4, 9, 12, 13, 15, ...)".
std::string CountWithIds(const std::vector<int64_t>& ids) {
  std::string out = std::to_string(ids.size()) + " (id" + (ids.size() == 1 ? " " : "s ");
  for (size_t i = 0; i < ids.size() && i < 5; ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + (ids.size() > 5 ? ", ...)" : ")");
}

// `count` ids spread evenly over the sorted `ids` (all of them when there are no more): the same
// faces on every run, from the oldest to the newest.
std::vector<int64_t> EvenSample(const std::vector<int64_t>& ids, int64_t count) {
  const auto n = static_cast<int64_t>(ids.size());
  if (n <= count) return ids;
  std::vector<int64_t> sample;
  sample.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) sample.push_back(ids[static_cast<size_t>(i * n / count)]);
  return sample;
}

class Checker {
 public:
  Checker(const CorpusConfig& config, const VerifyOptions& options, VerifyReport& report)
      : config_(config), options_(options), paths_(PathsFor(config.corpus_dir)), report_(report) {}

  // Runs every check into report_. Returns false when the database could not be opened at all.
  void Run() {
    CheckPermissions();
    // Leaves an interrupted erasure's scrub for CheckErasure to report: verify only reads.
    auto store = Store::OpenReadOnly(paths_.database, Store::PendingScrub::kLeave);
    if (!store) {
      Add("database", "cannot open " + paths_.database.string() + ": " + store.error().message);
      return;
    }
    CheckDatabase(**store);
    CheckModels(**store);
    CheckAudit(**store);
    CheckErasure(**store);
    CheckIndex(**store);
  }

 private:
  void Add(const std::string& check, std::string message, bool problem = true) {
    report_.findings.push_back({check, std::move(message), problem});
  }
  void Ran(const std::string& check) { report_.checks.push_back(check); }

  void CheckPermissions() {
    Ran("permissions");
    for (std::string& p : CorpusPermissionProblems(config_))
      Add("permissions", "the corpus holds biometric data but " + p);
  }

  void CheckDatabase(Store& store) {
    Ran("database");
    auto problems = store.IntegrityCheck();
    if (!problems) return Add("database", "SQLite cannot check " + paths_.database.string() + ": " +
                                              problems.error().message);
    for (const std::string& p : *problems)
      Add("database", paths_.database.string() + " fails " + p +
                          " (restore the corpus from a backup; --repair does not rewrite SQLite)");
  }

  void CheckModels(Store& store) {
    Ran("models");
    auto identity = store.ModelIdentity();
    if (!identity) return Add("models", "the corpus records no model identity: " + identity.error().message);
    model_identity_ = *identity;
    auto mode = CorpusEmbeddingMode(store);
    const EmbeddingMode m = mode && *mode ? **mode : EmbeddingMode{};
    const std::string expected = ModelIdentity(m.model);
    if (*identity != expected)
      Add("models", "the corpus was built with models '" + *identity + "' but this facesearch uses '" + expected +
                        "': queries and indexing will refuse it");
    const fs::path dir = ResolveModelsDir(config_.models_dir);
    std::vector<ModelId> needed{ModelId::kSface, ModelId::kYunet};
    if (m.model == EmbeddingModel::kDlib) {
      needed = {ModelId::kResnet};
      if (m.alignment != Alignment::k68) needed.push_back(ModelId::kShape5);
      if (m.alignment != Alignment::k5) needed.push_back(ModelId::kShape68);
    }
    for (ModelId id : needed) {
      auto path = VerifiedModelPath(dir, id);
      if (!path) Add("models", path.error().message);
    }
    // The optional detectors' models (only --detector cnn or yunet needs them): checked when present.
    for (ModelId id : {ModelId::kCnnDetector, ModelId::kYunet}) {
      std::error_code ec;
      if (std::find(needed.begin(), needed.end(), id) != needed.end() || !fs::exists(dir / ModelFileName(id), ec))
        continue;
      auto path = VerifiedModelPath(dir, id);
      if (!path) Add("models", path.error().message);
    }
  }

  void CheckAudit(Store& store) {
    Ran("audit");
    auto check = store.VerifyAudit();
    if (!check) return Add("audit", "cannot read the audit log: " + check.error().message);
    if (!check->ok)
      Add("audit", "the audit log's hash chain is broken at record " + std::to_string(check->first_bad) +
                       ": " + check->problem);
  }

  void CheckErasure(Store& store) {
    Ran("erasure");
    auto pending = store.ScrubPending();
    if (!pending) return Add("erasure", "cannot read the erasure state: " + pending.error().message);
    if (*pending)
      Add("erasure", "an erasure committed but its scrub did not finish (the process was killed, or "
                     "readers kept the WAL busy): the erased faces' bytes may remain in " +
                         paths_.database.string() + " and its WAL, and a copy of that one file would "
                         "bring them back; --repair (or any other facesearch command) finishes the scrub");
  }

  void CheckIndex(Store& store) {
    Ran("index");
    auto fail = [&](const std::string& what, const Error& e) { Add("index", what + ": " + e.message); };
    auto generation = store.Generation();
    auto delete_generation = store.DeleteGeneration();
    auto snap_or = store.GetIndexSnapshot();
    if (!generation) return fail("cannot read the generation", generation.error());
    if (!delete_generation) return fail("cannot read the delete generation", delete_generation.error());
    if (!snap_or) return fail("the index snapshot record is unreadable", snap_or.error());

    std::vector<int64_t> faces;
    auto each = store.ForEachEmbedding(0, [&](int64_t id, const Embedding&) { faces.push_back(id); });
    if (!each) return fail("cannot read the face rows", each.error());
    report_.faces = static_cast<int64_t>(faces.size());

    for (const fs::path& stale : StaleIndexTempFiles(paths_.index_dir))
      Add("index", stale.string() + " was left by an interrupted index write (it may hold embeddings); "
                   "--repair or the next index removes it",
          /*problem=*/false);
    IndexRecord record{*snap_or, *generation, *delete_generation, model_identity_};
    const std::optional<IndexSnapshot>& snap = record.snapshot;
    if (auto verdict = JudgeIndexRecord(record)) {
      switch (verdict->cause) {
        case IndexCause::kNoRecord:
          if (!faces.empty())
            Add("index", "no index snapshot is recorded for " + std::to_string(faces.size()) +
                             " faces (a first index or an erasure was interrupted); " + kRebuiltByWriter,
                /*problem=*/false);
          return;
        case IndexCause::kUnexpectedFile:
          return Add("index", "the snapshot record names an unexpected file '" + snap->file + "'");
        default:
          return Add("index", "the index snapshot (generation " + std::to_string(snap->generation) +
                                  ") is newer than the database (" + std::to_string(*generation) +
                                  "): restored from another copy?");
      }
    }
    const std::string g = std::to_string(snap->generation);
    const fs::path file = paths_.index_dir / snap->file;
    std::error_code ec;
    IndexFileFacts facts;
    facts.exists = fs::exists(file, ec);
    Result<std::unique_ptr<VectorIndex>> loaded = nullptr;
    if (facts.exists) loaded = VectorIndex::Load(file, snap->size, snap->sha256, IndexStamp{snap->generation, model_identity_});
    if (!loaded) {
      facts.problem = loaded.error().message;
      // A header other than the recorded one is a later save (judged by its stamp); the recorded
      // header over a damaged body is damage.
      std::string checksum;
      if (auto header = IndexFile::ReadHeader(file, &checksum); header && checksum != snap->sha256)
        facts.header = *header;
    }
    if (loaded && *loaded) {
      facts.loaded = {(*loaded)->ntotal(), (*loaded)->max_id(), std::nullopt};
      // An unreadable setting leaves the kind unjudged.
      if (auto spec = CorpusIndexSpec(store)) {
        record.kind = spec->kind;
        facts.loaded->kind = (*loaded)->spec().kind;
      }
    }
    IndexVerdict verdict = JudgeIndex(record, facts);
    switch (verdict.cause) {
      case IndexCause::kFileMissing:
        return Add("index", "index file " + file.string() + " (generation " + g +
                                ") is missing; --repair rebuilds it from the database");
      case IndexCause::kSavedNotRecorded:
        return Add("index", "the index file is intact but newer than its record (generation " +
                                std::to_string(facts.header->stamp.generation) + ", recorded " + g +
                                "): a writer was interrupted between saving and recording it; " + kRebuiltByWriter,
                   /*problem=*/false);
      case IndexCause::kFileUnusable:
        return Add("index", facts.problem + "; --repair rebuilds it from the database");
      default: break;
    }
    report_.index_vectors = (*loaded)->ntotal();
    if (verdict.cause == IndexCause::kContentsDisagree) {
      Add("index", "index file " + file.string() + " holds " + std::to_string(facts.loaded->ntotal) +
                       " vectors up to id " + std::to_string(facts.loaded->max_face_id) +
                       ", its snapshot record says " + std::to_string(snap->ntotal) + " up to " +
                       std::to_string(snap->max_face_id) + "; --repair rebuilds it");
      facts.loaded->ntotal = snap->ntotal;  // reported: judge the rest as if they agreed
      facts.loaded->max_face_id = snap->max_face_id;
      verdict = JudgeIndex(record, facts);
    }
    if (verdict.condition == IndexCondition::kOtherKind) {
      Add("index", std::string("the index file is ") + IndexKindName(*facts.loaded->kind) +
                       " but the corpus is set to " + IndexKindName(record.kind) +
                       " (a reindex was interrupted); " + kRebuiltByWriter,
          /*problem=*/false);
      facts.loaded->kind.reset();  // noted: judge the rest as if it were of the corpus's kind
      verdict = JudgeIndex(record, facts);
    }
    // Opening checked the layout and the checksum tables; every block's checksum is checked here.
    for (const std::string& damaged : (*loaded)->file()->VerifyBlocks())
      Add("index", "index file " + file.string() + " " + damaged + "; --repair rebuilds it");
    CompareVectors(store, **loaded, faces);

    std::vector<int64_t> ids = (*loaded)->ids();
    std::sort(ids.begin(), ids.end());
    std::vector<int64_t> dead, absent;  // in the index without a row; rows not in the index
    std::set_difference(ids.begin(), ids.end(), faces.begin(), faces.end(), std::back_inserter(dead));
    std::set_difference(faces.begin(), faces.end(), ids.begin(), ids.end(), std::back_inserter(absent));

    if (verdict.cause == IndexCause::kCurrent) {
      if (!dead.empty())
        Add("index", "the index holds face ids with no face row in the database: " +
                         CountWithIds(dead) + "; --repair rebuilds it");
      if (!absent.empty())
        Add("index", "faces of the database are missing from the index, which claims to be up to "
                     "date: " + CountWithIds(absent) + "; --repair rebuilds it");
      return;
    }
    const std::string lag = "the index (generation " + g + ") lags the database (generation " +
                            std::to_string(*generation) + ")";
    if (verdict.cause == IndexCause::kRemovedSince) {
      Add("index", lag + " and predates a removal of faces" +
                       (dead.empty() ? "" : ", and still holds erased faces: " + CountWithIds(dead)) +
                       "; --repair (or the next `facesearch index`) scrubs them from the file, and queries leave "
                       "them out meanwhile");
      return;
    }
    if (!dead.empty())
      Add("index", "the index holds face ids with no face row in the database, yet no face was "
                   "removed since it was written: " + CountWithIds(dead) + "; --repair rebuilds it");
    std::vector<int64_t> old_absent;
    std::copy_if(absent.begin(), absent.end(), std::back_inserter(old_absent),
                 [&](int64_t id) { return id <= snap->max_face_id; });
    if (!old_absent.empty())
      Add("index", "faces older than the snapshot are missing from the index: " +
                       CountWithIds(old_absent) + "; --repair rebuilds it");
    if (dead.empty() && old_absent.empty())
      Add("index", lag + " by " + std::to_string(absent.size()) +
                       " new faces (an interrupted or running index); the next index or query appends them",
          /*problem=*/false);
  }

  // The index's vector of a face must be its SQLite embedding, bit for bit; otherwise one of them
  // was changed behind facesearch's back, and `query` (the index) and `forget --like` (SQLite)
  // disagree about whose face it is. `faces`: the sorted face ids of SQLite.
  void CompareVectors(Store& store, const VectorIndex& index, const std::vector<int64_t>& faces) {
    const std::vector<int64_t> sample = options_.full ? faces : EvenSample(faces, kVectorSample);
    // The sample's rows only, never a table of every face (3.4 GiB at 30M faces).
    const std::vector<std::pair<int64_t, const float*>> rows = index.RowsOf(sample);
    std::vector<std::pair<int64_t, float>> differ;  // face id, distance between the two vectors
    auto each = store.ForEachEmbedding(0, [&](int64_t id, const Embedding& stored) {
      auto row = std::lower_bound(rows.begin(), rows.end(), id, [](const auto& r, int64_t v) { return r.first < v; });
      if (row == rows.end() || row->first != id) return;  // not sampled, or not in the index: the id checks report it
      ++report_.vectors_compared;
      if (std::memcmp(row->second, stored.data(), sizeof stored) == 0) return;
      Embedding vector{};
      std::copy_n(row->second, kEmbeddingDim, vector.begin());
      differ.emplace_back(id, EmbeddingDistance(vector, stored));
    });
    if (!each) return Add("index", "cannot read the face rows: " + each.error().message);
    constexpr size_t kNamed = 10;
    for (size_t i = 0; i < differ.size() && i < kNamed; ++i)
      Add("index", "face " + std::to_string(differ[i].first) + ": its embedding in " +
                       paths_.database.string() + " differs from its vector in the index file " +
                       "(distance " + fmt::format("{:.3f}", differ[i].second) + "): one of them was changed "
                       "behind facesearch's back, and query and forget --like disagree about whose face it "
                       "is; --repair rebuilds the index from SQLite, the source of truth (if SQLite is the "
                       "one changed, restore corpus.sqlite from a backup instead)");
    if (differ.size() > kNamed) {
      std::vector<int64_t> rest;
      for (size_t i = kNamed; i < differ.size(); ++i) rest.push_back(differ[i].first);
      Add("index", "more faces whose SQLite embedding differs from their index vector: " + CountWithIds(rest));
    }
  }

  const CorpusConfig& config_;
  const VerifyOptions& options_;
  CorpusPaths paths_;
  VerifyReport& report_;
  std::string model_identity_;
};

bool Found(const VerifyReport& report, const std::string& check) {
  return std::any_of(report.findings.begin(), report.findings.end(),
                     [&](const VerifyFinding& f) { return f.check == check; });
}

// Rebuilds the index from SQLite, the source of truth, and says so in report.repairs.
Status RebuildIndex(const CorpusPaths& paths, VerifyReport& report) {
  std::vector<std::string> before;
  for (const VerifyFinding& f : report.findings)
    if (f.check == "index") before.push_back(f.message);
  FS_ASSIGN(auto store, Store::OpenExisting(paths.database));
  FS_TRY(EnsurePrivateDir(paths.index_dir));
  FS_TRY(store->ClearIndexSnapshot());  // a routine rebuild, not a "repair" warning in the log
  FS_ASSIGN(OpenedIndex rebuilt, OpenCorpusIndex(*store, paths.index_dir, /*persist=*/true));
  FS_ASSIGN(int64_t generation, store->Generation());
  std::string what = "rebuilt the index from the database: " + std::to_string(rebuilt.index->ntotal()) +
                     " faces at generation " + std::to_string(generation) +
                     ", taking SQLite as the source of truth (it was: ";
  for (size_t i = 0; i < before.size(); ++i) what += (i ? "; " : "") + before[i];
  report.repairs.push_back(what + ")");
  return Ok();
}

}  // namespace

Result<VerifyReport> VerifyCorpus(const CorpusConfig& config, const VerifyOptions& options) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  VerifyReport report;
  std::optional<FileLock> lock;
  if (options.repair) {
    // Not LockCorpusForWriting: it would chmod the corpus directory and hide a permission problem.
    FS_ASSIGN(FileLock held, WaitForWriteLock(paths, config.lock_wait_s));
    lock = std::move(held);
  }
  Checker(config, options, report).Run();
  if (!options.repair || (!Found(report, "index") && !Found(report, "erasure"))) return report;

  if (Found(report, "erasure")) {
    FS_ASSIGN(auto store, Store::OpenExisting(paths.database));  // which finishes the scrub
    FS_ASSIGN(bool pending, store->ScrubPending());
    if (!pending)
      report.repairs.push_back("finished the interrupted erasure's scrub: the WAL is checkpointed into " +
                               paths.database.string() + " and truncated, so the erased faces' bytes "
                               "are in neither");
  }
  if (Found(report, "index")) FS_TRY(RebuildIndex(paths, report));
  VerifyReport after;
  Checker(config, options, after).Run();
  after.repairs = std::move(report.repairs);
  return after;
}

}  // namespace facesearch
