// `facesearch import FILE`: an embed file (facesearch/embed.h) into the corpus, as `index` would
// have added the same inputs: one writer under the write lock, content deduplicated by SHA-256,
// tombstones and opt-outs honoured, batches committed to SQLite and then appended to the index.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "common/json.h"
#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/models.h"
#include "facesearch/embed.h"
#include "facesearch/privacy.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace {

constexpr size_t kBatchImages = 64;  // as index: one transaction (one fsync) per batch

// One batch of rows for Store::AddImages, and the outcomes to report once it is committed.
struct Batch {
  std::vector<std::pair<ImageRecord, std::vector<Face>>> rows;
  std::vector<InputIssue> issues;
  std::vector<std::string> read_again;
  std::vector<FileOutcome> outcomes;
};

ImageRecord RowFor(const EmbeddedImage& r) {
  ImageRecord row;
  row.path = r.path;
  row.provenance = r.provenance;
  if (r.status == EmbeddedImage::Status::kError) {
    row.status = ImageStatus::kError;
    row.error = r.error;
    row.error_kind = r.reason;
    return row;
  }
  row.sha256 = r.sha256;
  row.size = r.size;
  row.width = r.width;
  row.height = r.height;
  row.status = r.faces.empty() ? ImageStatus::kNoFace : ImageStatus::kOk;
  return row;
}

// Decides what `index` would have done with the record and adds it to the batch.
Status Place(Store& store, const OptOutFilter& optouts, bool allow_reindex, std::unordered_set<std::string>& seen,
             EmbeddedImage& r, Batch& batch) {
  FileOutcome o;
  o.path = r.path;
  if (r.status == EmbeddedImage::Status::kIssue || r.status == EmbeddedImage::Status::kError) {
    const bool issue = r.status == EmbeddedImage::Status::kIssue;
    o.result = issue && r.outcome == "skipped" ? FileResult::kSkipped : FileResult::kError;
    o.reason = r.reason;
    o.error = r.error;
    if (issue) batch.issues.push_back(InputIssue{r.path, r.outcome, r.reason, r.error, "", r.provenance});
    else batch.rows.emplace_back(RowFor(r), std::vector<Face>{});
    batch.outcomes.push_back(std::move(o));
    return Ok();
  }
  // The order of index's checks: content the corpus (or this file) holds already, then tombstones.
  FS_ASSIGN(auto known, store.FindImageBySha(r.sha256));
  FS_ASSIGN(bool erased, store.IsTombstoned(r.sha256));
  if (known || !seen.insert(r.sha256).second) {
    o.result = FileResult::kDuplicate;
    batch.read_again.push_back(r.path);
  } else if (erased && !allow_reindex) {
    o.result = FileResult::kErased;
  } else {
    o.optout_faces = optouts.RemoveMatching(r.faces);
    o.faces = static_cast<int>(r.faces.size());
    o.result = r.faces.empty() ? FileResult::kNoFace : FileResult::kAdded;
    batch.rows.emplace_back(RowFor(r), std::move(r.faces));
  }
  batch.outcomes.push_back(std::move(o));
  return Ok();
}

// Commits the batch (one transaction), appends its faces to the index, then reports it.
Status Commit(Store& store, VectorIndex& index, Batch& batch, const std::function<void(const FileOutcome&)>& report) {
  FS_ASSIGN(auto ids, store.AddImages(batch.rows, batch.issues, batch.read_again));
  std::vector<int64_t> flat_ids;
  std::vector<float> vectors;
  for (size_t i = 0; i < batch.rows.size(); ++i)
    for (size_t f = 0; f < batch.rows[i].second.size(); ++f) {
      flat_ids.push_back(ids[i][f]);
      const Embedding& e = batch.rows[i].second[f].embedding;
      vectors.insert(vectors.end(), e.begin(), e.end());
    }
  if (!flat_ids.empty()) FS_TRY(index.Add(flat_ids, vectors));
  for (const FileOutcome& o : batch.outcomes) report(o);
  batch = Batch{};
  return Ok();
}

// The file's tombstones (export --embed-file), added before its images so that erased content
// stays out. Import never erases: a tombstone for content this corpus holds refuses the file.
Status AddTombstones(Store& store, const std::vector<EmbeddedImage>& records, const std::string& file) {
  std::vector<Tombstone> tombstones;
  for (const EmbeddedImage& r : records) {
    if (r.status != EmbeddedImage::Status::kErased) continue;
    FS_ASSIGN(auto held, store.FindImageBySha(r.sha256));
    if (held)
      return Fail(ErrorCode::kInvalidArgument,
                  file + " carries a tombstone for content this corpus holds (SHA-256 " + r.sha256.substr(0, 12) +
                      "...): import does not erase; run `facesearch forget` on it first if it must go");
    tombstones.push_back({r.sha256, r.reason, r.erased_at});
  }
  return tombstones.empty() ? Ok() : store.AddTombstones(tombstones);
}

}  // namespace

Result<IndexSummary> ImportEmbeddings(const CorpusConfig& config, const std::string& file, std::istream* in,
                                      const ImportOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  // Read and checked whole before the corpus is touched: a bad line refuses the file, not half of it.
  FS_ASSIGN(EmbedFile embed, ReadEmbedFile(file, in, kMaxListEntries));
  // Embeddings of other models are refused before a corpus is made for them.
  FS_TRY(CheckEmbedHeader(embed.header, embed.header.mode, file));
  FS_TRY(CheckCorpusPermissions(config));
  CorpusPaths corpus = PathsFor(config.corpus_dir);
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(corpus, config.lock_wait_s));
  FS_ASSIGN(auto store, Store::Open(corpus.database, ModelIdentity(embed.header.mode.model)));
  FS_ASSIGN(auto recorded, CorpusEmbeddingMode(*store));
  FS_TRY(CheckEmbedHeader(embed.header, recorded.value_or(embed.header.mode), file));
  FS_TRY(RecordEmbeddingMode(*store, embed.header.mode));
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, corpus.index_dir, /*persist=*/true));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));

  FS_TRY(AddTombstones(*store, embed.records, file));

  IndexSummary summary;
  summary.files = std::ranges::count_if(
      embed.records, [](const EmbeddedImage& r) { return r.status != EmbeddedImage::Status::kErased; });
  auto report = [&](const FileOutcome& o) {
    CountOutcome(o, summary);
    if (options.on_file) options.on_file(o);
  };
  std::unordered_set<std::string> seen;
  Batch batch;
  for (EmbeddedImage& r : embed.records) {
    if (r.status == EmbeddedImage::Status::kErased) continue;  // added above
    FS_TRY(Place(*store, optouts, options.allow_reindex, seen, r, batch));
    if (batch.outcomes.size() >= kBatchImages) FS_TRY(Commit(*store, *opened.index, batch, report));
  }
  FS_TRY(Commit(*store, *opened.index, batch, report));
  FS_TRY(SaveCorpusIndex(*store, *opened.index, corpus.index_dir));
  FS_TRY(store->Checkpoint());
  summary.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::debug("imported {} in {:.2f} s", file, summary.elapsed_s);
  return summary;
}

}  // namespace facesearch
