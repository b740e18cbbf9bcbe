// Accountability and privacy: the audit log, corpus settings, erasure (`forget`), opt-outs and
// permission checks. Like engine.h, nothing here prints; see docs/usage.md "Privacy and erasure".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/engine.h"
#include "facesearch/privacy_types.h"

namespace facesearch {

// ---- audit log ---------------------------------------------------------------------------------

// What an audited command did. AppendAudit adds the time (UTC), the OS user of the effective uid
// and config.audit (case, purpose).
struct AuditEvent {
  std::string action;                     // "query", "export", "compare", "cluster", ...
  std::string params;                     // JSON object text of the command's parameters
  std::vector<std::string> probe_sha256;  // SHA-256 of each probe image
  std::string results;                    // JSON text: ids of the faces returned, or counts
};

// Appends one record to the corpus's hash-chained audit log, in its own transaction. Searches
// (query, export, compare, cluster) are refused with kInvalidArgument when the corpus setting
// require-case is true and config.audit.case_id is empty. A front end calls this BEFORE it shows
// any result, and shows nothing when it fails. Errors: kNotFound (no corpus), kInvalidArgument,
// kDatabase, kBusy.
Status AppendAudit(const CorpusConfig& config, const AuditEvent& event);

// Calls fn for each record matching `filter`, oldest first. Read-only.
Status ListAudit(const CorpusConfig& config, const AuditFilter& filter,
                 const std::function<void(const AuditRecord&)>& fn);

// Checks the whole chain; a broken chain is a normal result (check.ok == false), not an error.
Result<AuditCheck> VerifyAuditLog(const CorpusConfig& config);

// What a corpus holds, in a form two replicas of one shard can compare (a cluster erasure's
// receipt, docs/scale.md): the live faces and the SHA-256 of their sorted lines
// "<image sha256> <x>,<y>,<w>,<h>", equal for equal content whatever the face ids. Read-only.
struct LiveFaces {
  int64_t faces = 0;
  std::string digest;  // lowercase hex; that of the empty text for an empty corpus
};
Result<LiveFaces> LiveFacesDigest(const CorpusConfig& config);

// ---- settings ----------------------------------------------------------------------------------

// Known settings and their defaults: require-case = false. Setting one is audited.
// Errors: kInvalidArgument for an unknown key or a malformed value.
Result<std::vector<std::pair<std::string, std::string>>> ListSettings(const CorpusConfig& config);
Status SetSetting(const CorpusConfig& config, const std::string& key, const std::string& value);

// ---- erasure -----------------------------------------------------------------------------------

// Which faces and images to erase; every selector given is applied (their union is erased).
struct ForgetRequest {
  std::vector<std::string> images;      // image files (by content hash, else by path) or SHA-256 digests
  std::vector<int64_t> face_ids;
  std::string like_photo;               // every face within `threshold` of its largest face
  std::optional<float> threshold;       // unset: the corpus model's SamePersonDistance (dlib: 0.6)
  std::optional<int64_t> older_than_s;  // images added more than this many seconds ago
  // A subject (facesearch/subject.h): every face within `threshold` of its template (the distance
  // `query --subject` ranks by), the corpus faces its references came from, and the subject with
  // its references.
  std::string subject;
  PipelineOptions pipeline;             // for like_photo
};

struct ForgetSummary {
  EraseCounts erased;
  int64_t faces_left = 0;
};

// Erases in one transaction with its audit record (counts only, never embeddings), tombstones the
// erased images' SHA-256 (so `index` skips them), rebuilds and saves the vector index under the
// write lock, then checkpoints the WAL (TRUNCATE) so no erased bytes remain in the corpus files.
// Errors: kNotFound (no corpus, or an --image/--face-id that names nothing), kModel, kDecode, ...
Result<ForgetSummary> Forget(const CorpusConfig& config, const ForgetRequest& request);

// ---- opt-out -----------------------------------------------------------------------------------

struct PhotoFaces;  // facesearch/analyze.h

struct OptOutRequest {
  ProbeImage photo;  // the largest face in it is the person opting out (a file, or uploaded bytes)
  std::optional<float> threshold;  // unset: the corpus model's SamePersonDistance (dlib: 0.6)
  std::string reason;
  PipelineOptions pipeline;
};

struct OptOutResult {
  int64_t id = 0;
  EraseCounts erased;  // matching faces that were already in the corpus
};

// Stores the face's embedding (biometric data kept only to honour the opt-out) and erases every
// matching face already indexed, like Forget. Ingest then skips matching faces and queries never
// return them. Errors: kInvalidArgument when the photo has no face; those of Forget.
Result<OptOutResult> AddOptOut(const CorpusConfig& config, const OptOutRequest& request);
// The same for a photo already analysed in the corpus's embedding mode (a server's resident
// analyzers: Corpus::AnalyzeAsProbe), so that no models are loaded for it; request.photo is not
// read again.
Result<OptOutResult> AddOptOut(const CorpusConfig& config, const OptOutRequest& request, const PhotoFaces& photo);
Result<std::vector<OptOutRecord>> ListOptOuts(const CorpusConfig& config);
Status RemoveOptOut(const CorpusConfig& config, int64_t id);
// Removes the opt-out(s) added under `request_id` (`optout add` run with --request-id: a cluster
// ledger entry, the same on every replica while the row ids differ) and scrubs their embeddings.
// Returns their ids. Errors: kNotFound when none was added under it; those of RemoveOptOut.
Result<std::vector<int64_t>> RemoveOptOutsOfRequest(const CorpusConfig& config, const std::string& request_id);

// ---- permissions -------------------------------------------------------------------------------

// Checks that the corpus directory and index/ are 0700-private and every file in them is
// accessible to its owner only. Logs a warning naming each offender and the chmod that fixes it;
// with config.strict_permissions fails with kInvalidArgument instead. Ok when there is no corpus.
Status CheckCorpusPermissions(const CorpusConfig& config);

// Creates `path` for biometric output (`export --output`, `query --html`, `faces --crop`)
// exclusively (O_EXCL, O_NOFOLLOW) with mode 0600 and returns its descriptor, which the caller
// closes. Refuses (kInvalidArgument) a parent directory that others can list or write or that its
// group can write, a symlink, something other than a regular file, and an existing file of
// another user's or that group or others can access. An existing private file of the caller's
// (an earlier output) is unlinked and created anew. Errors: kInvalidArgument, kIo.
Result<int> CreatePrivateOutputFile(const std::filesystem::path& path);
// CreatePrivateOutputFile, then `data` written, fsynced and closed; on failure the file is
// removed. Errors: those of CreatePrivateOutputFile, kIo.
Status WritePrivateOutputFile(const std::filesystem::path& path, std::string_view data);

// ---- parsing helpers ---------------------------------------------------------------------------

// "30d", "12h", "45m", "90s", "2w" → seconds. Errors: kInvalidArgument.
Result<int64_t> ParseDuration(std::string_view text);
// A time bound for filters: "2025-02-03", "2025-02-03T04:05:06Z" or a duration ago ("7d"), as
// ISO-8601 UTC text. A bare date is the start of that day, or its last second when end_of_day.
Result<std::string> ParseTimeBound(std::string_view text, bool end_of_day);

}  // namespace facesearch
