// Engine-internal pieces of accountability and privacy, used by query, export, ingest and forget.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "engine/corpus.h"
#include "facesearch/privacy.h"
#include "facesearch/subject.h"
#include "store/store.h"

namespace facesearch {

// Each way the corpus files are not private (CheckCorpusPermissions in facesearch/privacy.h), one
// sentence each naming the file and the chmod that fixes it; empty when there is no corpus.
std::vector<std::string> CorpusPermissionProblems(const CorpusConfig& config);

// Searches are refused when the corpus requires a case and none was given (kInvalidArgument,
// naming --case). Other actions always pass.
Status CheckCaseRequired(Store& store, const AuditContext& who, const std::string& action);

// CheckCaseRequired, then appends the record built from `who` and `event`. Its own transaction.
Status AppendAudit(Store& store, const AuditContext& who, const AuditEvent& event);

// A record for `event` from `who`, the current OS user and no time (the store stamps it).
AuditRecord MakeAuditRecord(const AuditContext& who, const AuditEvent& event);

// Finishes the scrub after an erasure (Store::FinishScrub). One that readers keep busy is left
// marked pending with a warning: the next command to open the corpus finishes it, and `verify`
// reports it meanwhile.
Status FinishScrubOrWarn(Store& store, const CorpusPaths& paths);

// A subject's faces in the corpus (what `forget --subject` erases and `export --subject` writes):
// every face within `threshold` of its template, and the faces its references came from, less those
// marked "not this person", nearest first, each with its distance to the template. A scan of every
// embedding.
struct SubjectFace {
  int64_t face_id = 0;
  float distance = 0;
};
Result<std::vector<SubjectFace>> FacesOfSubject(Store& store, const Subject& subject, float threshold);

// The opt-outs of a corpus, loaded once per command. Thread-safe for concurrent readers.
class OptOutFilter {
 public:
  static Result<OptOutFilter> Load(Store& store);
  // True when `e` is within some opt-out's own threshold.
  bool Matches(const Embedding& e) const;
  // Removes the faces that match; returns how many were removed.
  int RemoveMatching(std::vector<Face>& faces) const;
  bool empty() const { return optouts_.empty(); }

 private:
  std::vector<OptOutRecord> optouts_;
};

}  // namespace facesearch
