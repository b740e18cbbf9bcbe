// `facesearch verify`: checks a corpus end to end and, on request, rebuilds its derived state.
// Like engine.h, nothing here prints.
#pragma once

#include <string>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

struct VerifyOptions {
  // Rebuild the derived state (the vector index) from SQLite under the write lock when a check of
  // it found anything, then check again. SQLite, models, permissions and the audit log are never
  // changed: their problems need a person (a backup, scripts/fetch-models.sh, chmod).
  bool repair = false;
  // Compare every face's index vector with its SQLite embedding, not only an evenly spread sample
  // of kVectorSample faces.
  bool full = false;
};

// Faces whose index vector `verify` compares with SQLite when not asked for all of them.
inline constexpr int64_t kVectorSample = 1000;

struct VerifyFinding {
  // "database", "index", "models", "permissions", "audit" or "erasure".
  std::string check;
  std::string message;  // one sentence naming the file or record and, where there is one, the fix
  // false for a note: a state that a crash or a running writer leaves and the next command repairs
  // by itself (a lagging index, no index yet). Notes do not make the corpus unhealthy.
  bool problem = true;
};

struct VerifyReport {
  std::vector<std::string> checks;      // the checks that ran, in order
  std::vector<VerifyFinding> findings;  // after the repair, when one ran
  std::vector<std::string> repairs;     // what --repair did, one sentence each
  int64_t faces = 0;                    // face rows in SQLite
  int64_t index_vectors = -1;           // vectors in the index file on disk; -1 when unreadable
  int64_t vectors_compared = 0;         // faces whose index vector was compared with SQLite
  bool healthy() const;                 // no finding is a problem
};

// Runs every check on the corpus at config.corpus_dir, reading only (with options.repair: takes the
// write lock, waiting for another writer, finishes an interrupted scrub and rebuilds the index
// from SQLite, the source of truth):
//   database     PRAGMA integrity_check and foreign_key_check
//   models       the corpus's model identity equals this build's, and the model files on disk
//                (config.models_dir, $FACESEARCH_MODELS or the cache) match their pins
//   permissions  the corpus directory, index/ and their files are private (0700 / 0600, owned by us)
//   audit        the audit log's hash chain and head
//   erasure      no erasure's scrub was left unfinished by a crash (the erased bytes would remain)
//   index        the index file's record, header, checksum and stamp (generation, models); every
//                id in it has a live face row and every face row is in it (or is newer than a
//                lagging snapshot, which is a note); the index's vector of each face equals its
//                SQLite embedding (an evenly spread sample of kVectorSample faces, all with
//                options.full)
// A damaged corpus is a normal result (report.healthy() false), not an error.
// Errors: kNotFound (no corpus), kBusy/kIo (lock), and database failures that prevent a repair.
Result<VerifyReport> VerifyCorpus(const CorpusConfig& config, const VerifyOptions& options);

}  // namespace facesearch
