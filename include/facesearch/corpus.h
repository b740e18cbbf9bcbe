// The corpus handle: a corpus opened once and searched any number of times (in the spirit of
// LevelDB's DB::Open). It owns the Store, the vector index, the analyzers and the corpus's
// settings, so a long-lived caller (a server, a benchmark, a command with many probes) pays for
// opening the database, checking the index file and loading the models once, not per probe.
//
// Thread-safety: every public member may be called from several threads at once. Searches share
// the index (a reader lock; only a catch-up takes it exclusively); the SQLite connection is used
// by one thread at a time (a mutex around each short use); each concurrent Query analyzes its
// probe with an analyzer of its own, taken from a pool (the models keep scratch buffers and must
// not be shared, and analysis is most of a query's time, so serialising it would serialise the
// handle). The pool grows to the number of queries that ran at once, about 34 MB each.
//
// Other processes: each call first compares the Store's generation with the one the index
// reflects. Faces added since (`index` in another process) are appended to the index in memory;
// a face removed since (`forget`, opt-out) makes it reopen the index as a new open would (the
// eraser's saved file, or a rebuild from SQLite), so an erased face is never answered again.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "facesearch/analyze.h"
#include "facesearch/engine.h"
#include "facesearch/users.h"

namespace facesearch {

struct OpenOptions {
  // Loads the analyzer for this pipeline during Open, so that missing or altered model files fail
  // the open (kModel) rather than the first query. Its embedding, when set, must be the corpus's.
  std::optional<PipelineOptions> preload;
};

// A probe analysed elsewhere (a record of an embed file, facesearch/embed.h; a cluster client
// that embedded the probe once for every shard): its faces in detector order with their
// embeddings and quality, and what made them.
struct EmbeddedProbe {
  PhotoFaces faces;  // path names the probe in results and the audit log; sha256 is audited
  EmbeddingMode mode;
  std::string model_identity;  // ModelIdentity() of the binary that embedded it
};

class Corpus {
 public:
  // Opens the corpus at config.corpus_dir for searching: checks that it exists, its permissions
  // (config.strict_permissions), that it can be written (every query commits an audit record),
  // the model identity, and opens the vector index (OpenCorpusIndex for searching: repaired in
  // memory, saved only when no writer holds the lock). Loads no model: the first Query does.
  // Errors: kNotFound (no corpus), kInvalidArgument (permissions, embedding mode), kIo
  // (read-only file system), kDatabase, kCorrupt, kIndex.
  static Result<std::unique_ptr<Corpus>> Open(const CorpusConfig& config, const OpenOptions& options = {});
  ~Corpus();
  Corpus(const Corpus&) = delete;
  Corpus& operator=(const Corpus&) = delete;

  // Searches the corpus with one probe, as QueryPhotos does for each of its photos, after catching
  // up with other processes' writes. The probe's own failures (unreadable or undecodable image, a
  // --face it does not have) come back in the outcome's `error`; the returned error is for the
  // corpus and the setup (top_k, case required, models, database, audit). The audit record is
  // committed before this returns: no record, no result.
  Result<ProbeOutcome> Query(const ProbeImage& probe, const QueryOptions& options);
  // The same, audited as `audit` (a server's user, case and purpose) instead of the config's.
  Result<ProbeOutcome> Query(const ProbeImage& probe, const QueryOptions& options, const AuditContext& audit);

  // 1:1 comparison of two photos (ComparePhotos in facesearch/analyze.h) with the handle's
  // analyzers, audited as `audit` before it returns. Errors: those of ComparePhotos.
  Result<CompareResult> Compare(const ProbeImage& a, const ProbeImage& b, const CompareOptions& options,
                                const AuditContext& audit);

  // Detection and analysis of one photo with the handle's analyzers (what `faces` prints): boxes,
  // landmarks, scores, quality. Nothing is searched or audited. Errors: those of
  // PhotoAnalyzer::Analyze.
  Result<PhotoFaces> Analyze(const ProbeImage& photo, const PipelineOptions& pipeline);
  // The same, analysed as Query analyses a probe: in the corpus's embedding mode, so that its
  // embeddings compare with the corpus's (an opt-out's face: AddOptOut with the PhotoFaces).
  // Errors: those of Analyze; kInvalidArgument for an embedding that is not the corpus's.
  Result<PhotoFaces> AnalyzeAsProbe(const ProbeImage& photo, const PipelineOptions& pipeline);

  // The corpus's users as stored now (a revocation by another process counts at once), with their
  // token hashes, for FindUserByToken (facesearch/users.h). Errors: kDatabase.
  Result<std::vector<UserRecord>> Users();
  // Live faces in the database now (the counts table): what the default threshold is sized by.
  Result<int64_t> StoredFaceCount();

  // Query for a probe whose faces are already embedded: the same choice of faces (--face,
  // --all-faces, the largest), search, opt-out filter, catch-up and audit record as Query, so
  // the same faces and the same distances come back as for the photo. Errors as Query's, and
  // kInvalidArgument when the probe's model identity or embedding mode is not the corpus's.
  Result<ProbeOutcome> QueryEmbedding(const EmbeddedProbe& probe, const QueryOptions& options);
  Result<ProbeOutcome> QueryEmbedding(const EmbeddedProbe& probe, const QueryOptions& options,
                                      const AuditContext& audit);

  // Searches the corpus with a subject (facesearch/subject.h): one search with the template of its
  // references (SubjectDistance: the matches' distances are to the template, and
  // options.threshold applies to them; their false-match rates are Calibration::ForSubject's). A
  // reference covered by an opt-out is left out. The outcome names the subject (probe_path
  // "subject:NAME", result.subject) and has one probe face, the template; its audit record names
  // the subject and the references' photo hashes. Errors: kNotFound (no such subject),
  // kInvalidArgument (no reference left, case required), those of Query.
  Result<ProbeOutcome> QuerySubject(const std::string& name, const QueryOptions& options);

  // The mode probes are embedded with when `requested` is asked for (unset: the corpus's), read
  // from the corpus now: the calibration of a distance depends on it (facesearch/eval.h). An empty
  // corpus with no mode recorded takes the requested one. Errors: kInvalidArgument when
  // `requested` is not the mode the corpus holds; kDatabase.
  Result<EmbeddingMode> EmbeddingModeFor(const std::optional<EmbeddingMode>& requested = std::nullopt);
  // Catches up with the corpus now, as every call does first: after a `forget` made through this
  // process, the erased faces leave memory before the caller answers.
  Status Refresh();
  // Faces the index holds and the Store generation it reflects (as of the last catch-up).
  int64_t face_count() const;
  int64_t generation() const;

  struct Impl;  // the library's own (src/engine/corpus_handle.h)

 private:
  explicit Corpus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace facesearch
