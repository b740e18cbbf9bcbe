// `facesearch reindex`: choose the corpus's vector index kind, rebuild it, measure its recall;
// `facesearch compact`: fold the index's delta into its main segment.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/json.h"
#include "common/time.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "facesearch/privacy.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace {

Result<IndexSpec> SpecFor(const ReindexOptions& o, int64_t faces) {
  IndexSpec spec;
  if (o.kind == "auto") {
    spec.kind = AutoIndexKind(faces);
  } else {
    FS_ASSIGN(spec.kind, ParseIndexKind(o.kind));
  }
  spec.nlist = o.nlist;
  spec.nprobe = o.nprobe;
  spec.pq_m = o.pq_m;
  spec.pq_bits = o.pq_bits;
  spec.hnsw_m = o.hnsw_m;
  spec.ef_construction = o.ef_construction;
  spec.ef_search = o.ef_search;
  spec.rerank = o.rerank;
  FS_TRY(ValidateIndexSpec(spec));
  // A parameter the kind does not use is a mistake worth saying (FormatIndexSpec drops it).
  FS_ASSIGN(IndexSpec kept, ParseIndexSpec(FormatIndexSpec(spec)));
  if (!(kept == spec))
    return Fail(ErrorCode::kInvalidArgument,
                std::string("an option given does not apply to a ") + IndexKindName(spec.kind) +
                    " index" +
                    (o.kind == "auto" ? " (what --index auto chose for " + std::to_string(faces) + " faces)"
                                      : std::string()) +
                    "; it uses: " + (FormatIndexParams(spec).empty() ? "no parameters"
                                                                      : FormatIndexParams(kept)));
  return spec;
}

}  // namespace

Result<ReindexSummary> ReindexCorpus(const CorpusConfig& config, const ReindexOptions& options) {
  if (options.recall_queries < 0)
    return Fail(ErrorCode::kInvalidArgument, "--recall-queries must be 0 or more");
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  FS_ASSIGN(IndexSpec spec, SpecFor(options, counts.faces));

  // Setting first, then no snapshot: a crash from here on leaves a corpus whose next open
  // rebuilds the index as the new kind.
  // A settings change: recorded in the audit log (before it takes effect) with the setting.
  // `auto` without parameters keeps following the corpus's size (an empty setting, read by
  // CorpusIndexSpec); any other choice, or auto with parameters, pins the kind.
  const bool follow_size = options.kind == "auto" && options.nlist == 0 && options.nprobe == 0 &&
                           options.pq_m == 0 && options.pq_bits == 0 && options.hnsw_m == 0 &&
                           options.ef_construction == 0 && options.ef_search == 0 && options.rerank == 0;
  const std::string setting = follow_size ? "" : FormatIndexSpec(spec);
  AuditEvent event{"reindex", JsonText({{"setting", follow_size ? "auto" : setting}}), {}, "null"};
  FS_TRY(store->AppendAudit(MakeAuditRecord(config.audit, event)));
  FS_TRY(store->SetMeta(kIndexSpecKey, setting));
  FS_TRY(store->ClearIndexSnapshot());
  const auto start = std::chrono::steady_clock::now();
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, paths.index_dir, /*persist=*/true));
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  FS_ASSIGN(RecallMeasure recall, opened.index->MeasureRecall(options.recall_queries));

  ReindexSummary summary;
  summary.kind = IndexKindName(spec.kind);
  summary.setting = follow_size ? "auto" : FormatIndexSpec(spec);
  summary.params = FormatIndexParams(opened.index->built_spec());
  summary.faces = opened.index->ntotal();
  summary.recall_at_10 = recall.recall_at_10;
  summary.recall_queries = recall.queries;
  summary.build_seconds = build_s;
  const IndexFootprint footprint = opened.index->footprint();
  summary.resident_bytes = footprint.resident_bytes;
  summary.mapped_bytes = footprint.mapped_bytes;
  FS_ASSIGN(summary.generation, store->Generation());
  char recall_text[32], seconds_text[32];
  std::snprintf(recall_text, sizeof recall_text, "%.4f", summary.recall_at_10);
  if (summary.recall_queries == 0) recall_text[0] = '\0';  // not measured (--recall-queries 0, < 2 faces)
  std::snprintf(seconds_text, sizeof seconds_text, "%.3f", summary.build_seconds);
  FS_TRY(store->SetMeta(kIndexBuiltParamsKey, summary.params));
  FS_TRY(store->SetMeta(kIndexRecallKey, recall_text));
  FS_TRY(store->SetMeta(kIndexRecallQueriesKey, std::to_string(summary.recall_queries)));
  FS_TRY(store->SetMeta(kIndexBuildSecondsKey, seconds_text));
  FS_TRY(store->SetMeta(kIndexBuiltGenerationKey, std::to_string(summary.generation)));
  FS_TRY(store->SetMeta(kIndexBuiltAtKey, IsoUtcNow()));
  spdlog::info("reindexed {} faces as {} ({}) in {:.2f} s; recall@10 {:.4f} over {} queries",
               summary.faces, summary.kind, summary.params, build_s, summary.recall_at_10,
               summary.recall_queries);
  return summary;
}

Result<CompactSummary> CompactCorpus(const CorpusConfig& config) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, Store::OpenExisting(paths.database));
  const auto start = std::chrono::steady_clock::now();
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, paths.index_dir, /*persist=*/true));
  VectorIndex& index = *opened.index;
  CompactSummary summary;
  summary.kind = IndexKindName(index.spec().kind);
  summary.rows_before = index.ntotal();
  summary.delta_rows_before = index.delta_rows();
  FS_ASSIGN(auto before, store->GetIndexSnapshot());
  summary.bytes_before = before ? before->size : 0;
  summary.retrained = !KeepsTrainingAfterErasure(index.main_rows());
  // Nothing to fold when the open just streamed a lagging index into a new file (or the last
  // compaction left no delta and no erased row behind).
  FS_ASSIGN(const int64_t live, store->FaceCount());
  const bool needed = index.delta_rows() > 0 || index.ntotal() != live || index.needs_training();
  FS_TRY(SaveCorpusIndex(*store, index, paths.index_dir, /*compact=*/needed));
  FS_ASSIGN(auto after, store->GetIndexSnapshot());
  summary.bytes_after = after ? after->size : 0;
  summary.faces = index.ntotal();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("compacted the {} index: {} rows ({} in the delta) -> {} faces, {} -> {} bytes in {:.2f} s",
               summary.kind, summary.rows_before, summary.delta_rows_before, summary.faces,
               summary.bytes_before, summary.bytes_after, summary.seconds);
  return summary;
}

}  // namespace facesearch
