// The inside of the corpus handle (facesearch/corpus.h), shared by its open and catch-up
// (corpus_handle.cpp) and its query (query.cpp).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/corpus.h"
#include "facesearch/analyze.h"
#include "facesearch/corpus.h"

namespace facesearch {

struct Corpus::Impl {
  CorpusConfig config;
  CorpusPaths paths;

  // The one SQLite connection, used by one thread at a time; held only for short reads and the
  // audit append, never while a probe is analysed. Taken after index_mu, never before.
  std::mutex store_mu;
  std::unique_ptr<Store> store;

  // Searches hold it shared; a catch-up or a reopen holds it exclusively.
  mutable std::shared_mutex index_mu;
  std::unique_ptr<VectorIndex> index;
  int64_t generation = 0;  // the Store generation `index` reflects (read before it was opened)

  // Analyzers not in use, by pipeline (PipelineKey): a query takes one or loads one.
  std::mutex pool_mu;
  std::map<std::string, std::vector<std::unique_ptr<PhotoAnalyzer>>> idle;

  // An analyzer for `pipeline` (its embedding resolved) lent to one query, returned to the pool
  // when the lease ends.
  class Lease {
   public:
    Lease(Impl& owner, std::string key, std::unique_ptr<PhotoAnalyzer> analyzer)
        : owner_(&owner), key_(std::move(key)), analyzer_(std::move(analyzer)) {}
    Lease(Lease&&) = default;
    ~Lease();
    PhotoAnalyzer& operator*() const { return *analyzer_; }
    PhotoAnalyzer* operator->() const { return analyzer_.get(); }

   private:
    Impl* owner_;
    std::string key_;
    std::unique_ptr<PhotoAnalyzer> analyzer_;
  };
  Result<Lease> LeaseAnalyzer(const PipelineOptions& pipeline);

  // The embedding mode for the pipeline's --embedding / --model, as WithCorpusEmbedding resolves
  // it. Caller holds store_mu.
  Result<EmbeddingMode> ModeFor(const PipelineOptions& pipeline);

  // Brings the index up to the Store's generation: appends the faces other processes added, or
  // reopens the index when a face was removed since.
  Status CatchUp();
};

}  // namespace facesearch
