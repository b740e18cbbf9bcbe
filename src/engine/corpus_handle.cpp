// The corpus handle: open once, then catch up with other processes at each call.
#include "engine/corpus_handle.h"

#include <spdlog/spdlog.h>

#include "engine/privacy_internal.h"
#include "index/corpus_index.h"

namespace facesearch {

namespace {

// Every pipeline setting that changes what an analyzer does: analyzers are pooled by it.
std::string PipelineKey(const PipelineOptions& p) {
  return fmt::format("{} {} {} {} {} {} {} {} {} {}", static_cast<int>(p.detector), p.upsample,
                     RetryStrategyName(p.retry), p.retry_threshold, p.yunet_score,
                     EmbeddingModeName(p.embedding.value_or(EmbeddingMode{})), p.min_face, p.detect_max_side,
                     p.max_file_bytes, p.max_pixels);
}

}  // namespace

Corpus::Corpus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Corpus::~Corpus() = default;

Result<std::unique_ptr<Corpus>> Corpus::Open(const CorpusConfig& config, const OpenOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  FS_ASSIGN(impl->paths, CheckExistingCorpus(config));
  FS_TRY(RequireWritable(impl->paths, "a query must commit its audit record before it shows a result"));
  FS_ASSIGN(impl->store, OpenStore(impl->paths, StoreUse::kModels));
  if (options.preload) {
    PipelineOptions pipeline = *options.preload;
    FS_ASSIGN(pipeline.embedding, impl->ModeFor(pipeline));
    FS_TRY(impl->LeaseAnalyzer(pipeline));  // loaded, and back in the pool at once
  }
  // The generation is read before the index is opened: a face added in between is appended
  // again by the first catch-up (nothing newer than the index's last id is), never missed.
  FS_ASSIGN(impl->generation, impl->store->Generation());
  FS_ASSIGN(OpenedIndex opened, OpenIndexForReading(*impl->store, impl->paths));
  impl->index = std::move(opened.index);
  return std::unique_ptr<Corpus>(new Corpus(std::move(impl)));
}

Result<EmbeddingMode> Corpus::EmbeddingModeFor(const std::optional<EmbeddingMode>& requested) {
  std::lock_guard store_lock(impl_->store_mu);
  PipelineOptions pipeline;
  pipeline.embedding = requested;
  return impl_->ModeFor(pipeline);
}

int64_t Corpus::face_count() const {
  std::shared_lock lock(impl_->index_mu);
  return impl_->index->ntotal();
}

int64_t Corpus::generation() const {
  std::shared_lock lock(impl_->index_mu);
  return impl_->generation;
}

Status Corpus::Refresh() { return impl_->CatchUp(); }

Result<std::vector<UserRecord>> Corpus::Users() {
  std::lock_guard store_lock(impl_->store_mu);
  return impl_->store->Users();
}

Result<int64_t> Corpus::StoredFaceCount() {
  std::lock_guard store_lock(impl_->store_mu);
  return impl_->store->FaceCount();
}

Result<EmbeddingMode> Corpus::Impl::ModeFor(const PipelineOptions& pipeline) {
  FS_ASSIGN(auto recorded, CorpusEmbeddingMode(*store));
  if (!recorded) {
    FS_ASSIGN(CorpusCounts counts, store->Counts());
    if (counts.images == 0) {  // the first index run sets it
      FS_ASSIGN(auto requested, RequestedEmbeddingMode(pipeline));
      return requested.value_or(EmbeddingMode{});
    }
  }
  return ResolveEmbeddingMode(recorded, pipeline);
}

Corpus::Impl::Lease::~Lease() {
  if (!analyzer_) return;  // moved from
  std::lock_guard lock(owner_->pool_mu);
  owner_->idle[key_].push_back(std::move(analyzer_));
}

Result<Corpus::Impl::Lease> Corpus::Impl::LeaseAnalyzer(const PipelineOptions& pipeline) {
  std::string key = PipelineKey(pipeline);
  {
    std::lock_guard lock(pool_mu);
    auto& free = idle[key];
    if (!free.empty()) {
      std::unique_ptr<PhotoAnalyzer> analyzer = std::move(free.back());
      free.pop_back();
      return Lease(*this, std::move(key), std::move(analyzer));
    }
  }
  // Loading takes a fraction of a second; other queries go on meanwhile.
  FS_ASSIGN(auto analyzer, PhotoAnalyzer::Load(config, pipeline));
  return Lease(*this, std::move(key), std::move(analyzer));
}

Status Corpus::Impl::CatchUp() {
  auto read_generations = [&]() -> Result<std::pair<int64_t, int64_t>> {
    std::lock_guard store_lock(store_mu);
    FS_ASSIGN(const int64_t now, store->Generation());
    FS_ASSIGN(const int64_t deleted, store->DeleteGeneration());
    return std::pair{now, deleted};
  };
  FS_ASSIGN(auto seen, read_generations());
  {
    std::shared_lock lock(index_mu);
    if (seen.first == generation) return Ok();
  }
  std::unique_lock lock(index_mu);
  FS_ASSIGN(seen, read_generations());  // another thread may have caught up meanwhile
  const auto [now, deleted] = seen;
  if (now == generation) return Ok();
  if (deleted > generation || now < generation) {
    // A face was removed (or the database was replaced): an erased face must never be answered,
    // and an index cannot drop one cheaply, so open it anew as Open did.
    std::unique_lock store_lock(store_mu);
    FS_ASSIGN(OpenedIndex opened, OpenIndexForReading(*store, paths));
    index = std::move(opened.index);
    spdlog::info("faces were removed from the corpus since it was opened (generation {} to {}): reopened its "
                 "index ({} faces)", generation, now, index->ntotal());
  } else {
    std::unique_lock store_lock(store_mu);
    FS_ASSIGN(const int64_t added, AppendNewFaces(*store, *index));
    spdlog::debug("caught up with the corpus (generation {} to {}): appended {} faces", generation, now, added);
  }
  generation = now;
  return Ok();
}

}  // namespace facesearch
