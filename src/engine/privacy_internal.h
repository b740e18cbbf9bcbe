// Engine-internal pieces of accountability and privacy, used by query, export, ingest and forget.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "facesearch/privacy.h"
#include "store/store.h"

namespace facesearch {

// Each way the corpus files are not private (CheckCorpusPermissions in facesearch/privacy.h), one
// sentence each naming the file and the chmod that fixes it; empty when there is no corpus.
std::vector<std::string> CorpusPermissionProblems(const CorpusConfig& config);

// The corpus's Store for a command that appends audit records (read-write, no model check), or
// for reading only; both after RequireCorpus and CheckCorpusPermissions.
Result<std::unique_ptr<Store>> OpenForAudit(const CorpusConfig& config);
Result<std::unique_ptr<Store>> OpenForReading(const CorpusConfig& config);

// "[1,2,3]"
std::string JsonIdArray(const std::vector<int64_t>& ids);

// Searches are refused when the corpus requires a case and none was given (kInvalidArgument,
// naming --case). Other actions always pass.
Status CheckCaseRequired(Store& store, const AuditContext& who, const std::string& action);

// CheckCaseRequired, then appends the record built from `who` and `event`. Its own transaction.
Status AppendAudit(Store& store, const AuditContext& who, const AuditEvent& event);

// A record for `event` from `who`, the current OS user and no time (the store stamps it).
AuditRecord MakeAuditRecord(const AuditContext& who, const AuditEvent& event);

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
