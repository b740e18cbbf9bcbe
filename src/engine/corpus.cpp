// Corpus layout and the read-only commands (info, export).
#include "engine/corpus.h"
#include "common/json.h"
#include "image/phash.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <set>
#include <string_view>
#include <thread>

#include "engine/privacy_internal.h"
#include "face/models.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

fs::path DefaultCorpusDir() {
  if (const char* env = std::getenv("FACESEARCH_CORPUS"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg)
    return fs::path(xdg) / "facesearch" / "corpus";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".local" / "share" / "facesearch" / "corpus";
}

CorpusPaths PathsFor(const fs::path& corpus_dir) {
  return CorpusPaths{corpus_dir, corpus_dir / "corpus.sqlite", corpus_dir / "index",
                     corpus_dir / "write.lock"};
}

Status RequireCorpus(const CorpusPaths& paths) {
  std::error_code ec;
  if (fs::exists(paths.database, ec)) return Ok();
  return Fail(ErrorCode::kNotFound, "no corpus at " + paths.dir.string() +
                                        ": build one with `facesearch index PATH...` "
                                        "(or choose another with --corpus)");
}

Result<CorpusPaths> CheckExistingCorpus(const CorpusConfig& config) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));
  return paths;
}

Result<std::unique_ptr<Store>> OpenStore(const CorpusPaths& paths, StoreUse use) {
  switch (use) {
    case StoreUse::kRead: return Store::OpenReadOnly(paths.database);
    case StoreUse::kWrite: return Store::OpenExisting(paths.database);
    case StoreUse::kModels: break;
  }
  // The identity expected is that of this build's files for the corpus's model (dlib or SFace).
  FS_ASSIGN(auto store, Store::OpenExisting(paths.database));
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(*store));
  FS_ASSIGN(std::string recorded, store->ModelIdentity());
  const std::string expected = ModelIdentity(mode.value_or(EmbeddingMode{}).model);
  if (recorded != expected)
    return Fail(ErrorCode::kMismatch, "the corpus " + paths.database.string() + " was built with models '" + recorded +
                                          "' but this run uses '" + expected +
                                          "'; use the original model files or start a new corpus");
  return store;
}

Result<std::unique_ptr<Store>> OpenCorpusStore(const CorpusConfig& config, StoreUse use) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  return OpenStore(paths, use);
}

Result<LockedCorpus> OpenLockedCorpus(const CorpusConfig& config, StoreUse use) {
  FS_ASSIGN(CorpusPaths paths, CheckExistingCorpus(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, use));
  return LockedCorpus{std::move(paths), std::move(lock), std::move(store)};
}

Status RequireWritable(const CorpusPaths& paths, const std::string& why) {
  struct statvfs st {};
  if (::statvfs(paths.dir.c_str(), &st) != 0 || !(st.f_flag & ST_RDONLY)) return Ok();
  return Fail(ErrorCode::kIo, "the corpus at " + paths.dir.string() +
                                  " is on a read-only file system, and " + why +
                                  ": remount it read-write (info, verify and audit work read-only)");
}

namespace {

// True when `dir` holds nothing but what a corpus's own first run creates (a run cut short), or
// the ledger state a cluster replica records before its first import (cluster/facesearch_cluster/
// ledger.py, STATE_FILE: a replica with no corpus yet replays erasures as nothing erased and must
// still take its shard's first batch).
bool HoldsOnlyCorpusFiles(const CorpusPaths& paths, std::error_code& ec) {
  static const std::set<std::string> kOwn = {"corpus.sqlite", "corpus.sqlite-wal", "corpus.sqlite-shm",
                                             "corpus.sqlite-journal", "index", "write.lock",
                                             "cluster-ledger-applied.json"};
  for (auto it = fs::directory_iterator(paths.dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (!kOwn.contains(it->path().filename().string())) return false;
  return !ec;
}

// Makes the corpus directory ready for a writer. A missing one is created 0700 (parents too). An
// existing corpus keeps its mode (CheckCorpusPermissions warns about a loose one). Any other
// existing directory must be empty: it is then made private, saying so, unless other users may
// write to it (a shared directory such as /tmp), which is refused rather than taken from them.
Status PrepareCorpusDir(const CorpusPaths& paths) {
  std::error_code ec;
  const bool existed = fs::exists(paths.dir, ec);
  FS_TRY(EnsurePrivateDir(paths.dir));
  if (!existed || fs::exists(paths.database, ec)) return Ok();
  const std::string dir = paths.dir.string();
  if (!HoldsOnlyCorpusFiles(paths, ec))
    return Fail(ErrorCode::kInvalidArgument,
                dir + " is not a facesearch corpus (it has no corpus.sqlite) and is not empty: "
                      "name an empty or new directory with --corpus");
  struct stat st {};
  if (::stat(paths.dir.c_str(), &st) != 0)
    return Fail(ErrorCode::kIo, "cannot stat " + dir + ": " + std::strerror(errno));
  const mode_t mode = st.st_mode & 07777;
  if (mode == 0700) return Ok();
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
  const std::string shared = (mode & (S_IWGRP | S_IWOTH)) != 0 ? std::string("writable by other users (mode ") + octal + ")"
                            : st.st_uid != ::geteuid() ? "owned by another user (uid " + std::to_string(st.st_uid) + ")"
                                                       : "";
  if (!shared.empty())
    return Fail(ErrorCode::kInvalidArgument,
                dir + " is " + shared + ": a corpus there would not be private; name a directory "
                      "of your own with --corpus (a new one is created 0700)");
  if (::chmod(paths.dir.c_str(), 0700) != 0)
    return Fail(ErrorCode::kIo, "cannot chmod " + dir + ": " + std::strerror(errno));
  spdlog::warn("made {} private (mode {} -> 0700): the corpus will hold biometric data", dir, octal);
  return Ok();
}

}  // namespace

Result<FileLock> LockCorpusForWriting(const CorpusPaths& paths, double wait_s) {
  FS_TRY(RequireWritable(paths, "this command changes the corpus"));
  FS_TRY(PrepareCorpusDir(paths));
  FS_TRY(EnsurePrivateDir(paths.index_dir));
  return WaitForWriteLock(paths, wait_s);
}

Result<FileLock> WaitForWriteLock(const CorpusPaths& paths, double wait_s) {
  auto lock = FileLock::Acquire(paths.lock, /*exclusive=*/true, /*wait=*/false);
  if (lock || lock.error().code != ErrorCode::kBusy) return lock;
  const std::string busy = "another facesearch process is writing to " + paths.dir.string();
  if (wait_s == 0)
    return Fail(ErrorCode::kBusy, busy + " (--lock-wait 0): try again when it has finished");
  if (wait_s < 0) {
    spdlog::info("{}; waiting for it to finish", busy);
    return FileLock::Acquire(paths.lock, /*exclusive=*/true, /*wait=*/true);
  }
  spdlog::info("{}; waiting up to {:g} s for it to finish", busy, wait_s);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    lock = FileLock::Acquire(paths.lock, /*exclusive=*/true, /*wait=*/false);
    if (lock || lock.error().code != ErrorCode::kBusy) return lock;
    if (std::chrono::steady_clock::now() >= deadline)
      return Fail(ErrorCode::kBusy, busy + ", still after " + fmt::format("{:g}", wait_s) +
                                        " s (--lock-wait): try again later or wait longer");
  }
}

Result<OpenedIndex> OpenIndexForReading(Store& store, const CorpusPaths& paths) {
  auto lock = FileLock::Acquire(paths.lock, /*exclusive=*/true, /*wait=*/false);
  return OpenCorpusIndex(store, paths.index_dir, /*persist=*/lock.has_value(), IndexUse::kSearch);
}

DecodeLimits LimitsFrom(const PipelineOptions& options) {
  DecodeLimits limits;
  limits.max_bytes = options.max_file_bytes;
  limits.max_pixels = options.max_pixels;
  return limits;
}

const char* DetectorName(DetectorKind d) {
  switch (d) {
    case DetectorKind::kHog: return "hog";
    case DetectorKind::kCnn: return "cnn";
    case DetectorKind::kYunet: return "yunet";
  }
  return "?";
}

Result<std::string> ReadProbeBytes(const ProbeImage& probe, size_t max_bytes) {
  if (probe.bytes && probe.bytes->size() > max_bytes)
    return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, probe.name + " is larger than the size limit");
  if (probe.bytes) return *probe.bytes;
  if (!probe.stream) return ReadFile(probe.name, max_bytes);
  std::istream& in = *probe.stream;
  std::string bytes;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.append(buf, static_cast<size_t>(in.gcount()));
    if (bytes.size() > max_bytes)
      return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, "image on stdin is larger than the size limit");
  }
  if (bytes.empty()) return Fail(ErrorCode::kInvalidArgument, "no image data on stdin");
  return bytes;
}

const char* RetryStrategyName(RetryStrategy r) {
  switch (r) {
    case RetryStrategy::kNone: return "none";
    case RetryStrategy::kUpsample: return "upsample";
    case RetryStrategy::kThreshold: return "threshold";
    case RetryStrategy::kCnn: return "cnn";
  }
  return "?";
}

namespace {
constexpr std::string_view kSuffix68 = "+lm68", kSuffixBoth = "+lm5+lm68";
constexpr const char* kSfaceMode = "sface";
}  // namespace

const char* EmbeddingModelName(EmbeddingModel model) {
  return model == EmbeddingModel::kSface ? "sface" : "dlib";
}

std::string EmbeddingModeName(const EmbeddingMode& mode) {
  if (mode.model == EmbeddingModel::kSface) return kSfaceMode;
  std::string name = mode.jitter >= 2 ? "jitter:" + std::to_string(mode.jitter) : mode.flip ? "flip" : "plain";
  switch (mode.alignment) {
    case Alignment::k5: return name;
    case Alignment::k68: return name.append(kSuffix68);
    case Alignment::kBoth: return name.append(kSuffixBoth);
  }
  return name;
}

Result<EmbeddingMode> ParseEmbeddingMode(const std::string& text) {
  if (text == kSfaceMode) return EmbeddingMode{.model = EmbeddingModel::kSface};
  std::string base = text;
  Alignment alignment = Alignment::k5;
  if (base.ends_with(kSuffixBoth)) {
    base.resize(base.size() - kSuffixBoth.size());
    alignment = Alignment::kBoth;
  } else if (base.ends_with(kSuffix68)) {
    base.resize(base.size() - kSuffix68.size());
    alignment = Alignment::k68;
  }
  if (base == "plain") return EmbeddingMode{false, 0, alignment};
  if (base == "flip") return EmbeddingMode{true, 0, alignment};
  if (base.starts_with("jitter:")) {
    const std::string n = base.substr(7);
    int jitter = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), jitter);
    if (ec == std::errc() && end == n.data() + n.size() && jitter >= 2 && jitter <= 1000)
      return EmbeddingMode{false, jitter, alignment};
  }
  return Fail(ErrorCode::kInvalidArgument,
              "embedding mode '" + text +
                  "' is not one of plain, flip, jitter:N (N from 2 to 1000), each optionally followed by "
                  "+lm68 (align with the 68-point landmark model) or +lm5+lm68 (the mean over both alignments), "
                  "or sface (the SFace model)");
}

Result<std::optional<EmbeddingMode>> CorpusEmbeddingMode(Store& store) {
  FS_ASSIGN(auto recorded, store.GetMeta(kEmbeddingModeKey));
  if (!recorded) return std::optional<EmbeddingMode>{};
  FS_ASSIGN(EmbeddingMode mode, ParseEmbeddingMode(*recorded));
  return std::optional<EmbeddingMode>{mode};
}

Result<std::optional<EmbeddingMode>> RequestedEmbeddingMode(const PipelineOptions& options) {
  if (!options.model || *options.model == EmbeddingModel::kDlib) {
    if (options.model && options.embedding && options.embedding->model != EmbeddingModel::kDlib)
      return Fail(ErrorCode::kInvalidArgument, "--embedding sface is the SFace model: leave out --model dlib");
    return options.embedding;
  }
  if (options.embedding && options.embedding->model != EmbeddingModel::kSface)
    return Fail(ErrorCode::kInvalidArgument, "--embedding " + EmbeddingModeName(*options.embedding) +
                                                 " is a mode of dlib's model; the SFace model has one mode: "
                                                 "leave out --embedding");
  return std::optional<EmbeddingMode>{EmbeddingMode{.model = EmbeddingModel::kSface}};
}

Result<EmbeddingMode> ResolveEmbeddingMode(const std::optional<EmbeddingMode>& corpus, const PipelineOptions& options) {
  FS_ASSIGN(std::optional<EmbeddingMode> requested, RequestedEmbeddingMode(options));
  EmbeddingMode have = corpus.value_or(EmbeddingMode{});
  const std::optional<EmbeddingModel> model = requested ? std::optional{requested->model} : options.model;
  if (model && *model != have.model) {
    const std::string name = EmbeddingModelName(*model);
    return Fail(ErrorCode::kMismatch,
                "this corpus holds embeddings of the " + std::string(EmbeddingModelName(have.model)) + " model ('" +
                    EmbeddingModeName(have) + "'); a corpus has one model, whose distances mean nothing to "
                    "another's: switching to " + name + " means indexing the photos again into a new corpus "
                    "(facesearch --corpus NEW_DIR index --model " + name + " PATH...)");
  }
  if (!requested || *requested == have) return have;
  return Fail(ErrorCode::kInvalidArgument,
              "this corpus holds '" + EmbeddingModeName(have) + "' embeddings; '" +
                  EmbeddingModeName(*requested) + "' ones cannot be mixed with them or searched against "
                  "them (leave out --embedding, or index into a new corpus with --embedding " +
                  EmbeddingModeName(*requested) + ")");
}

Status RecordEmbeddingMode(Store& store, const EmbeddingMode& mode) {
  FS_ASSIGN(auto recorded, CorpusEmbeddingMode(store));
  FS_ASSIGN(CorpusCounts counts, store.Counts());
  // A corpus with images but no mode recorded was built before modes existed: plain.
  PipelineOptions asked;
  asked.embedding = mode;
  if (recorded || counts.images > 0) FS_TRY(ResolveEmbeddingMode(recorded, asked));
  if (recorded) return Ok();
  return store.SetMeta(kEmbeddingModeKey, EmbeddingModeName(mode));
}

Result<PipelineOptions> WithCorpusEmbedding(const CorpusConfig& config, PipelineOptions options) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_ASSIGN(std::optional<EmbeddingMode> requested, RequestedEmbeddingMode(options));
  if (!RequireCorpus(paths)) {
    options.embedding = requested.value_or(EmbeddingMode{});
    return options;
  }
  FS_ASSIGN(auto store, Store::OpenReadOnly(paths.database));
  FS_ASSIGN(auto corpus, CorpusEmbeddingMode(*store));
  if (!corpus) {
    FS_ASSIGN(CorpusCounts counts, store->Counts());
    if (counts.images == 0) {  // an empty corpus takes the first indexing run's mode
      options.embedding = requested.value_or(EmbeddingMode{});
      return options;
    }
  }
  FS_ASSIGN(options.embedding, ResolveEmbeddingMode(corpus, options));
  return options;
}

Result<EmbeddingMode> ResolvedEmbeddingMode(const CorpusConfig& config, const PipelineOptions& options) {
  FS_ASSIGN(PipelineOptions resolved, WithCorpusEmbedding(config, options));
  return *resolved.embedding;
}

Result<std::unique_ptr<FaceAnalyzer>> LoadAnalyzer(const CorpusConfig& config,
                                                   const PipelineOptions& options) {
  if (config.analyzer_factory) return config.analyzer_factory(options);
  fs::path dir = ResolveModelsDir(config.models_dir);
  spdlog::debug("loading models from {}", dir.string());
  AnalyzerOptions a;
  // SFace aligns on YuNet's landmarks: its faces are always YuNet's (hog is only the default).
  const bool sface = options.embedding && options.embedding->model == EmbeddingModel::kSface;
  if (sface && options.detector == DetectorKind::kCnn)
    return Fail(ErrorCode::kInvalidArgument,
                "--model sface aligns faces on YuNet's landmarks: leave out --detector cnn (it detects with yunet)");
  const DetectorKind detector = sface ? DetectorKind::kYunet : options.detector;
  a.detector = detector;
  a.upsample = options.upsample;
  a.min_score = options.yunet_score;
  a.embedding = options.embedding.value_or(EmbeddingMode{});
  a.min_face = options.min_face;
  a.detect_max_side = options.detect_max_side;
  switch (options.retry) {
    case RetryStrategy::kNone: break;
    case RetryStrategy::kUpsample:  // YuNet runs on the image as it is: no doubled retry
      if (detector != DetectorKind::kYunet) a.retry.push_back({detector, options.upsample + 1, 0.0});
      break;
    case RetryStrategy::kThreshold:
      if (detector == DetectorKind::kHog)
        a.retry.push_back({DetectorKind::kHog, options.upsample, options.retry_threshold});
      if (detector == DetectorKind::kYunet && options.yunet_score > kYunetRetryScore)
        a.retry.push_back({DetectorKind::kYunet, 0, 0.0, kYunetRetryScore});
      break;
    case RetryStrategy::kCnn:
      if (detector == DetectorKind::kHog) a.retry.push_back({DetectorKind::kCnn, options.upsample, 0.0});
      break;
  }
  return LoadDlibAnalyzer(dir, a);
}

namespace {

// Describes the index files against the Store without repairing anything: JudgeIndex over the
// record and the file's checks at open (FAISS does not parse it, so counts and kind are not judged), in the
// documented words of `index_state`: a file the next open rebuilds for being behind the Store
// (faces removed since, a record newer than the Store) is "lagging" as well.
std::string DescribeIndex(Store& store, const CorpusPaths& paths, CorpusInfo& info) {
  auto snap = store.GetIndexSnapshot();
  auto delete_generation = store.DeleteGeneration();
  if (!snap || !*snap || !delete_generation) return "missing";
  const IndexSnapshot& s = **snap;
  info.index_vectors = s.ntotal;
  info.index_bytes = s.size;
  info.index_kind = s.kind;
  // Snapshots saved before index format 2 were exact: float vectors and ids, which every kind
  // maps; those saved before the split recorded the sum only, so their structure counts as
  // resident until the next save.
  const int64_t rows = s.ntotal * static_cast<int64_t>(kEmbeddingDim * 4 + 8);
  info.index_memory_bytes = s.memory_bytes >= 0 ? s.memory_bytes : rows;
  info.index_mapped_bytes = s.mapped_bytes >= 0 ? s.mapped_bytes : std::min(rows, info.index_memory_bytes);
  info.index_resident_bytes = info.index_memory_bytes - info.index_mapped_bytes;
  const IndexRecord record{*snap, info.generation, *delete_generation, info.model_identity};
  IndexFileFacts facts;
  if (!JudgeIndexRecord(record)) {  // the file it names may be read
    const fs::path file = paths.index_dir / s.file;
    std::error_code ec;
    facts.exists = fs::exists(file, ec);
    if (facts.exists) {  // mapped and checked as every open does (IndexFile::Open), not read
      auto opened = IndexFile::Open(file, s.size, s.sha256, IndexStamp{s.generation, info.model_identity},
                                    /*writable=*/false);
      if (!opened) {
        facts.problem = opened.error().message;
        // A header other than the recorded one is a later save, judged by its stamp (as verify
        // does): a writer killed between saving and recording leaves "lagging", not "corrupt".
        std::string checksum;
        if (auto header = IndexFile::ReadHeader(file, &checksum); header && checksum != s.sha256)
          facts.header = *header;
      }
    }
  }
  switch (JudgeIndex(record, facts).condition) {
    case IndexCondition::kFresh: return "fresh";
    case IndexCondition::kMissing: return "missing";
    case IndexCondition::kCorrupt: return "corrupt";
    default: return "lagging";
  }
}

}  // namespace

Result<int64_t> CorpusFaceCount(const CorpusConfig& config) {
  const CorpusPaths paths = PathsFor(config.corpus_dir);
  if (!RequireCorpus(paths)) return 0;
  FS_ASSIGN(auto store, Store::OpenReadOnly(paths.database));
  return store->FaceCount();
}

Result<CorpusInfo> GetCorpusInfo(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  CorpusPaths paths = PathsFor(config.corpus_dir);
  CorpusInfo info;
  info.corpus_dir = config.corpus_dir;
  info.database = paths.database;
  FS_ASSIGN(info.counts, store->Counts());
  FS_ASSIGN(info.model_identity, store->ModelIdentity());
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(*store));
  info.embedding_mode = EmbeddingModeName(mode.value_or(EmbeddingMode{}));
  info.model = EmbeddingModelName(mode.value_or(EmbeddingMode{}).model);
  FS_ASSIGN(info.generation, store->Generation());
  FS_ASSIGN(auto version, store->GetMeta("schema_version"));
  info.schema_version = version ? std::atoi(version->c_str()) : 0;
  info.index_state = DescribeIndex(*store, paths, info);
  FS_ASSIGN(IndexSpec spec, CorpusIndexSpec(*store));
  FS_ASSIGN(auto recorded, store->GetMeta(kIndexSpecKey));
  info.index_setting = recorded && !recorded->empty() ? FormatIndexSpec(spec) : "auto";
  if (info.index_kind.empty()) info.index_kind = IndexKindName(spec.kind);  // no index yet
  auto meta = [&](const char* key) -> Result<std::string> {
    FS_ASSIGN(auto v, store->GetMeta(key));
    return v.value_or("");
  };
  FS_ASSIGN(std::string recall, meta(kIndexRecallKey));
  FS_ASSIGN(info.index_built_at, meta(kIndexBuiltAtKey));
  if (!info.index_built_at.empty()) {  // reindexed at least once
    if (!recall.empty()) info.index_recall_at_10 = std::atof(recall.c_str());
    FS_ASSIGN(info.index_params, meta(kIndexBuiltParamsKey));
    FS_ASSIGN(std::string queries, meta(kIndexRecallQueriesKey));
    info.index_recall_queries = std::atoi(queries.c_str());
    FS_ASSIGN(std::string seconds, meta(kIndexBuildSecondsKey));
    info.index_build_seconds = std::atof(seconds.c_str());
    FS_ASSIGN(std::string generation, meta(kIndexBuiltGenerationKey));
    info.index_built_generation = std::atoll(generation.c_str());
  }
  return info;
}

Status ListInputIssues(const CorpusConfig& config, const std::function<void(const InputIssue&)>& fn) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  return store->ForEachInputIssue(fn);
}

Result<DuplicateReport> FindDuplicateImages(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  FS_ASSIGN(std::vector<ImageHash> images, store->ImageHashes());
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  DuplicateReport report;
  report.images_hashed = static_cast<int64_t>(images.size());
  report.images_unhashed = counts.images_ok + counts.images_noface - report.images_hashed;
  std::vector<uint64_t> hashes;
  for (const ImageHash& i : images) hashes.push_back(i.phash);
  for (const std::vector<size_t>& members : GroupNearDuplicates(hashes)) {
    DuplicateGroup& g = report.groups.emplace_back();
    for (size_t m : members) {
      g.image_ids.push_back(images[m].image_id);
      g.images.push_back(images[m].path);
    }
  }
  return report;
}

// Export is audited like a search: the record (with the number of faces) is committed before the
// first face is handed to `fn`, so it needs write access to the corpus.
Status ExportFaces(const CorpusConfig& config, const std::function<void(const FaceRecord&)>& fn, bool xmp) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_TRY(RequireWritable(paths, "an export must commit its audit record before it shows a face"));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  FS_TRY(AppendAudit(*store, config.audit,
                     {"export", xmp ? JsonText({{"xmp", true}}) : "{}", {}, JsonText({{"faces", counts.faces}})}));
  return store->ForEachFace(fn);
}

}  // namespace facesearch
