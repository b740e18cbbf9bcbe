// `facesearch index`: walk inputs → read + hash → skip known content → decode → analyze → commit.
//
// Threads: N workers each own a FaceAnalyzer clone and take files from a shared counter; the calling
// thread is the only writer. It commits results to SQLite in batches (one transaction each), then
// appends the new vectors to the in-memory index, and saves the index once at the end. A crash
// between those steps loses nothing: the next open of the corpus catches the index up from SQLite.
#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/models.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

const char* FileResultName(FileResult r) {
  switch (r) {
    case FileResult::kAdded: return "added";
    case FileResult::kNoFace: return "noface";
    case FileResult::kDuplicate: return "duplicate";
    case FileResult::kError: return "error";
    case FileResult::kErased: return "erased";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatchImages = 64;
constexpr auto kBatchMaxAge = std::chrono::seconds(2);
constexpr auto kProgressEvery = std::chrono::seconds(1);

bool HasImageExtension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::unordered_set<std::string> kExts = {".jpg", ".jpeg", ".jpe", ".png", ".webp",
                                                        ".bmp", ".tif", ".tiff"};
  return kExts.contains(ext);
}

// Expands the arguments into candidate files, in a deterministic order. Directories are walked
// recursively (symlinked directories are not followed, so links cannot loop) and contribute files
// with an image extension; files named explicitly are always tried. Arguments that do not exist
// become error outcomes.
std::vector<fs::path> CollectFiles(const std::vector<std::string>& args,
                                   std::vector<FileOutcome>& missing) {
  std::vector<std::string> expanded;
  for (const auto& a : args) {
    if (a != "-") {
      expanded.push_back(a);
      continue;
    }
    for (std::string line; std::getline(std::cin, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) expanded.push_back(line);
    }
  }
  std::vector<fs::path> files;
  for (const auto& a : expanded) {
    fs::path p = fs::absolute(a).lexically_normal();
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
      for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && HasImageExtension(it->path())) found.push_back(it->path());
      }
      if (ec) missing.push_back({p.string(), FileResult::kError, 0, "cannot walk directory: " + ec.message()});
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      missing.push_back({p.string(), FileResult::kError, 0, "no such file or directory"});
    }
  }
  return files;
}

// dlib's convolutions call BLAS; with one worker per core, OpenBLAS's own threads only contend.
void LimitBlasThreads(int n) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(n);
}

struct Item {
  FileOutcome outcome;
  ImageRecord record;
  std::vector<Face> faces;
};

// State shared between the workers and the writer.
class Pipeline {
 public:
  // `optouts`: faces matching them are dropped before they are stored. Content erased earlier
  // (tombstoned) is skipped as kErased unless allow_reindex.
  Pipeline(Store& store, std::vector<fs::path> files, DecodeLimits limits, OptOutFilter optouts,
           bool allow_reindex)
      : store_(store), files_(std::move(files)), limits_(limits), optouts_(std::move(optouts)),
        allow_reindex_(allow_reindex) {}

  void Work(FaceAnalyzer& analyzer) {
    for (size_t i = next_++; i < files_.size() && !stop_; i = next_++) Push(Process(analyzer, files_[i]));
  }

  // Waits up to `timeout` for results; returns what is ready (possibly nothing).
  std::vector<Item> Take(std::chrono::milliseconds timeout) {
    std::unique_lock lock(queue_mu_);
    queue_cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); });
    std::vector<Item> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    return out;
  }

  void Stop() { stop_ = true; }
  std::mutex& store_mutex() { return store_mu_; }
  size_t total() const { return files_.size(); }

 private:
  Item Process(FaceAnalyzer& analyzer, const fs::path& path) {
    Item item;
    item.outcome.path = item.record.path = path.string();
    auto fail = [&](std::string why) {
      item.outcome.result = FileResult::kError;
      item.outcome.error = item.record.error = std::move(why);
      item.record.status = ImageStatus::kError;
      return std::move(item);
    };
    auto bytes = ReadFile(path, static_cast<size_t>(limits_.max_bytes));
    if (!bytes) return fail(bytes.error().message);
    item.record.size = static_cast<int64_t>(bytes->size());
    item.record.sha256 = Sha256Hex(*bytes);
    if (!Claim(*item.record.sha256)) {
      item.outcome.result = FileResult::kDuplicate;
      return item;
    }
    if (!allow_reindex_ && Erased(*item.record.sha256)) {
      item.outcome.result = FileResult::kErased;
      return item;
    }
    auto image = DecodeImage(*bytes, limits_);
    if (!image) return fail(image.error().message);
    item.record.width = image->width;
    item.record.height = image->height;
    auto faces = analyzer.Analyze(*image);
    if (!faces) return fail(faces.error().message);
    item.faces = std::move(*faces);
    item.outcome.optout_faces = optouts_.RemoveMatching(item.faces);  // an all-opted-out image: noface
    item.outcome.faces = static_cast<int>(item.faces.size());
    item.outcome.result = item.faces.empty() ? FileResult::kNoFace : FileResult::kAdded;
    item.record.status = item.faces.empty() ? ImageStatus::kNoFace : ImageStatus::kOk;
    return item;
  }

  // True when this content is new to the corpus and to this run (first claimant wins).
  bool Claim(const std::string& sha) {
    {
      std::lock_guard lock(claimed_mu_);
      if (!claimed_.insert(sha).second) return false;
    }
    std::lock_guard lock(store_mu_);
    auto found = store_.FindImageBySha(sha);
    return found && !found->has_value();
  }

  // True when `forget` erased this content earlier (a tombstone). A read error counts as erased:
  // when in doubt, do not re-index.
  bool Erased(const std::string& sha) {
    std::lock_guard lock(store_mu_);
    auto erased = store_.IsTombstoned(sha);
    return !erased || *erased;
  }

  void Push(Item item) {
    {
      std::lock_guard lock(queue_mu_);
      queue_.push_back(std::move(item));
    }
    queue_cv_.notify_one();
  }

  Store& store_;
  const std::vector<fs::path> files_;
  const DecodeLimits limits_;
  const OptOutFilter optouts_;
  const bool allow_reindex_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex store_mu_, claimed_mu_, queue_mu_;
  std::condition_variable queue_cv_;
  std::unordered_set<std::string> claimed_;
  std::deque<Item> queue_;
};

// Commits a batch to SQLite, then appends its vectors to the index.
Status Commit(Store& store, std::mutex& store_mu, VectorIndex& index, std::vector<Item>& batch) {
  if (batch.empty()) return Ok();
  std::vector<std::pair<ImageRecord, std::vector<Face>>> rows;
  for (auto& item : batch) rows.emplace_back(std::move(item.record), std::move(item.faces));
  Result<std::vector<std::vector<int64_t>>> ids;
  {
    std::lock_guard lock(store_mu);
    ids = store.AddImages(rows);
  }
  if (!ids) return std::unexpected(ids.error());
  std::vector<int64_t> flat_ids;
  std::vector<float> vectors;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t f = 0; f < rows[i].second.size(); ++f) {
      flat_ids.push_back((*ids)[i][f]);
      const Embedding& e = rows[i].second[f].embedding;
      vectors.insert(vectors.end(), e.begin(), e.end());
    }
  }
  batch.clear();
  if (flat_ids.empty()) return Ok();
  return index.Add(flat_ids, vectors);
}

}  // namespace

Result<IndexSummary> IndexPaths(const CorpusConfig& config, const std::vector<std::string>& paths,
                                const IndexOptions& options) {
  const auto start = Clock::now();
  auto seconds_since_start = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  IndexSummary summary;
  auto report = [&](const FileOutcome& o) {
    switch (o.result) {
      case FileResult::kAdded: ++summary.added; summary.faces += o.faces; break;
      case FileResult::kNoFace: ++summary.noface; break;
      case FileResult::kDuplicate: ++summary.duplicates; break;
      case FileResult::kError: ++summary.errors; break;
      case FileResult::kErased: ++summary.erased; break;
    }
    summary.optout_faces += o.optout_faces;
    if (options.on_file) options.on_file(o);
  };

  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(PipelineOptions resolved, WithCorpusEmbedding(config, options.pipeline));
  FS_ASSIGN(auto analyzer, LoadAnalyzer(config, resolved));
  CorpusPaths corpus = PathsFor(config.corpus_dir);
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(corpus));
  FS_ASSIGN(auto store, Store::Open(corpus.database, ModelIdentity()));
  // Under the lock: the mode chosen above still agrees with the corpus (a first run records it).
  FS_ASSIGN(auto recorded, CorpusEmbeddingMode(*store));
  if (recorded) {
    FS_TRY(ResolveEmbeddingMode(recorded, resolved.embedding));
  } else {
    FS_ASSIGN(CorpusCounts counts, store->Counts());
    if (counts.images > 0) FS_TRY(ResolveEmbeddingMode(std::nullopt, resolved.embedding));
    FS_TRY(store->SetMeta(kEmbeddingModeKey, EmbeddingModeName(*resolved.embedding)));
  }
  spdlog::debug("embedding mode {}, retry {}", EmbeddingModeName(*resolved.embedding),
                RetryStrategyName(resolved.retry));
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, corpus.index_dir, /*persist=*/true));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));

  std::vector<FileOutcome> missing;
  std::vector<fs::path> files = CollectFiles(paths, missing);
  for (const auto& m : missing) report(m);
  summary.files = static_cast<int64_t>(files.size());

  int jobs = options.jobs > 0 ? options.jobs : static_cast<int>(std::thread::hardware_concurrency());
  jobs = std::clamp(jobs, 1, std::max(1, static_cast<int>(files.size())));
  if (jobs > 1) LimitBlasThreads(1);
  spdlog::info("indexing {} files with {} worker(s) into {}", files.size(), jobs, corpus.dir.string());

  Pipeline pipeline(*store, std::move(files), LimitsFrom(resolved), std::move(optouts),
                    options.allow_reindex);
  std::vector<std::unique_ptr<FaceAnalyzer>> analyzers;
  analyzers.push_back(std::move(analyzer));
  for (int j = 1; j < jobs; ++j) analyzers.push_back(analyzers.front()->Clone());
  std::atomic<int> running{jobs};
  std::vector<std::thread> workers;
  for (int j = 0; j < jobs; ++j)
    workers.emplace_back([&, j] {
      pipeline.Work(*analyzers[j]);
      --running;
    });

  Status status = Ok();
  std::vector<Item> batch;
  int64_t done = 0;
  auto last_flush = Clock::now(), last_progress = Clock::now();
  while (true) {
    bool finished = running == 0;  // read before Take so the final results are drained
    for (Item& item : pipeline.Take(std::chrono::milliseconds(200))) {
      ++done;
      report(item.outcome);
      if (item.outcome.result != FileResult::kDuplicate && item.outcome.result != FileResult::kErased)
        batch.push_back(std::move(item));
    }
    if (status && (batch.size() >= kBatchImages || (finished && !batch.empty()) ||
                   Clock::now() - last_flush > kBatchMaxAge)) {
      status = Commit(*store, pipeline.store_mutex(), *opened.index, batch);
      last_flush = Clock::now();
      if (!status) pipeline.Stop();
    }
    if (options.on_progress && (finished || Clock::now() - last_progress > kProgressEvery)) {
      options.on_progress({done, static_cast<int64_t>(pipeline.total()), summary.faces,
                           summary.errors, seconds_since_start()});
      last_progress = Clock::now();
    }
    if (finished) break;
  }
  for (auto& w : workers) w.join();
  if (!status) return std::unexpected(status.error());

  FS_TRY(SaveCorpusIndex(*store, *opened.index, corpus.index_dir));
  FS_TRY(store->Checkpoint());
  summary.elapsed_s = seconds_since_start();
  return summary;
}

}  // namespace facesearch
