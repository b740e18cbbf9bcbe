// Internal helpers shared by the engine's commands: corpus layout, locking, model loading.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "common/fs.h"
#include "face/analyzer.h"
#include "facesearch/engine.h"
#include "image/decode.h"
#include "index/corpus_index.h"
#include "store/store.h"

namespace facesearch {

// The files of a corpus directory.
struct CorpusPaths {
  std::filesystem::path dir;
  std::filesystem::path database;   // corpus.sqlite
  std::filesystem::path index_dir;  // index/
  std::filesystem::path lock;       // write.lock: held by any process that changes the corpus
};
CorpusPaths PathsFor(const std::filesystem::path& corpus_dir);

// Fails with kNotFound, naming the command that creates a corpus, when `paths` holds none.
Status RequireCorpus(const CorpusPaths& paths);

// The checks every entry point on an existing corpus makes before anything else: that there is one
// (RequireCorpus) and that its files are private (CheckCorpusPermissions). Returns its paths.
Result<CorpusPaths> CheckExistingCorpus(const CorpusConfig& config);

// How an entry point opens the Store of an existing corpus.
enum class StoreUse {
  kRead,    // Store::OpenReadOnly: info, export lists, audit reads
  kWrite,   // Store::OpenExisting: writes that need no model (audit records, erasure, settings)
  kModels,  // Store::Open with this build's model identity: refuses a corpus of other models
};
Result<std::unique_ptr<Store>> OpenStore(const CorpusPaths& paths, StoreUse use);
// CheckExistingCorpus, then OpenStore: for entry points that take no lock in between.
Result<std::unique_ptr<Store>> OpenCorpusStore(const CorpusConfig& config, StoreUse use);

// Fails with kIo, naming the remedy and the commands that still work, when the corpus directory is
// on a read-only file system (a read-only mount or medium). `why` says what needs to write.
Status RequireWritable(const CorpusPaths& paths, const std::string& why);

// Creates the corpus directories (0700) and takes the exclusive write lock, logging while it waits
// for another writer: as long as it takes when wait_s < 0, otherwise at most wait_s seconds
// (CorpusConfig::lock_wait_s). An existing directory that is not a corpus must be empty and not
// shared with other users; it is then made private, with a warning. An existing corpus keeps its
// mode. Errors: kIo, kBusy (still held when the wait ran out), kInvalidArgument (a directory that
// is not a corpus and holds other files, or is shared).
Result<FileLock> LockCorpusForWriting(const CorpusPaths& paths, double wait_s = -1);

// An existing corpus locked for writing, with its Store open (`use`: kWrite or kModels): for the
// changes that must be serialised with erasures (subjects, saved clusters), so that none of them
// names a face a concurrent `forget` is erasing.
struct LockedCorpus {
  CorpusPaths paths;
  FileLock lock;
  std::unique_ptr<Store> store;
};
Result<LockedCorpus> OpenLockedCorpus(const CorpusConfig& config, StoreUse use);

// Takes the exclusive write lock without touching the directories, waiting as LockCorpusForWriting
// does (verify --repair: making the directories private would hide a permission problem).
Result<FileLock> WaitForWriteLock(const CorpusPaths& paths, double wait_s);

// Opens the index for a reader (query, cluster) as OpenCorpusIndex(IndexUse::kSearch) does: it
// never trains an approximate structure. A repair is saved only when the write lock is free at
// that moment, and the lock is released before this returns: readers hold no lock while they
// work, and their audit records take SQLite's own write lock for one short transaction.
// Errors: those of OpenCorpusIndex.
Result<OpenedIndex> OpenIndexForReading(Store& store, const CorpusPaths& paths);

DecodeLimits LimitsFrom(const PipelineOptions& options);

// A probe's bytes: its own, its stream's or its file's. Errors: unreadable file, input over
// max_bytes (kDecode, reason kTooLarge), an empty stream (kInvalidArgument).
Result<std::string> ReadProbeBytes(const ProbeImage& probe, size_t max_bytes);

// The meta key recording a corpus's embedding mode ("plain", "flip", "jitter:N", "sface"). A corpus
// without it was built before modes existed: plain.
inline constexpr const char* kEmbeddingModeKey = "embedding_mode";

// The mode recorded in the corpus (nullopt: none recorded). Errors: a value this build cannot read.
Result<std::optional<EmbeddingMode>> CorpusEmbeddingMode(Store& store);

// The mode `options` asks for: its .embedding, or --model sface's one mode; nullopt: the corpus's.
// Errors: kInvalidArgument when .model and .embedding contradict each other.
Result<std::optional<EmbeddingMode>> RequestedEmbeddingMode(const PipelineOptions& options);

// The mode to use with a corpus whose recorded mode is `corpus` (nullopt: plain) when the user
// asked for options.embedding / options.model (unset: whatever the corpus has). Errors:
// kMismatch when another model is asked for (switching models means re-indexing),
// kInvalidArgument when another mode is — one corpus never mixes them.
Result<EmbeddingMode> ResolveEmbeddingMode(const std::optional<EmbeddingMode>& corpus, const PipelineOptions& options);

// Adds one input's outcome to an index or import run's counts.
void CountOutcome(const FileOutcome& o, IndexSummary& summary);

// For a writer holding the lock: refuses (kInvalidArgument) `mode` when the corpus holds another
// one, and records it in a corpus that has none recorded yet (its first index or import run).
Status RecordEmbeddingMode(Store& store, const EmbeddingMode& mode);

// `options` with .embedding resolved against the corpus at config.corpus_dir (read-only), or
// defaulted to plain when there is no corpus there.
Result<PipelineOptions> WithCorpusEmbedding(const CorpusConfig& config, PipelineOptions options);

// Loads the models named by the config and options, or makes config.analyzer_factory's analyzer.
// Errors: kModel.
Result<std::unique_ptr<FaceAnalyzer>> LoadAnalyzer(const CorpusConfig& config,
                                                   const PipelineOptions& options);

// A face's quality as a probe (FaceQuality in facesearch/config.h): "small" below kSmallFacePixels,
// "blurry" below kBlurrySharpness, "weak_detection" when only a lowered-threshold retry (--retry
// threshold) finds it: HOG's margin below 0, YuNet's score below kYunetScore (its retry keeps
// scores down to 0.5). `detector` is the one that found the face.
FaceQuality AssessFace(const Face& face, double sharpness, DetectorKind detector);

}  // namespace facesearch
