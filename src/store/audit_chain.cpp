// The audit hash chain (see audit_chain.h).
#include "store/audit_chain.h"

#include "common/sha256.h"

namespace facesearch::audit {

namespace {

void Field(std::string& out, const char* name, const std::string& value) {
  out += name;
  out += ' ';
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += '\n';
}

AuditCheck Bad(AuditCheck check, int64_t seq, std::string problem) {
  check.ok = false;
  check.first_bad = seq;
  check.problem = std::move(problem);
  return check;
}

}  // namespace

std::string Canonical(const AuditRecord& r) {
  std::string probes;
  for (size_t i = 0; i < r.probe_sha256.size(); ++i) {
    if (i) probes += ',';
    probes += r.probe_sha256[i];
  }
  std::string out = "facesearch-audit-v1\n";
  Field(out, "seq", std::to_string(r.seq));
  Field(out, "at", r.at);
  Field(out, "user", r.user);
  Field(out, "action", r.action);
  Field(out, "params", r.params);
  Field(out, "case", r.case_id);
  Field(out, "purpose", r.purpose);
  Field(out, "probes", probes);
  Field(out, "results", r.results);
  return out;
}

std::string ChainHash(const AuditRecord& record) {
  Sha256 h;
  h.Update(record.prev_hash);
  h.Update(Canonical(record));
  return h.FinishHex();
}

AuditCheck Verify(const std::vector<AuditRecord>& records, const std::optional<ChainHead>& head) {
  AuditCheck check;
  std::string expected_prev = kGenesisHash;
  int64_t expected_seq = 1;
  for (const AuditRecord& r : records) {
    check.records++;
    if (r.seq != expected_seq) {
      return Bad(check, expected_seq,
                 r.seq > expected_seq
                     ? "record " + std::to_string(expected_seq) + " is missing (the next one is " +
                           std::to_string(r.seq) + "): records were deleted"
                     : "record " + std::to_string(r.seq) + " appears out of order");
    }
    if (r.prev_hash != expected_prev)
      return Bad(check, r.seq, "record " + std::to_string(r.seq) +
                                   " does not link to the record before it: records were "
                                   "deleted, inserted or reordered");
    if (ChainHash(r) != r.hash)
      return Bad(check, r.seq, "record " + std::to_string(r.seq) +
                                   " was altered: its content no longer matches its hash");
    expected_prev = r.hash;
    ++expected_seq;
  }
  check.head_hash = records.empty() ? "" : records.back().hash;
  const int64_t last = expected_seq - 1;
  if (!head) {
    if (last > 0) return Bad(check, 1, "the chain head record is missing from the corpus metadata");
    return check;
  }
  if (head->seq > last)
    return Bad(check, last + 1, "record " + std::to_string(last + 1) +
                                    " is missing: the log once held " + std::to_string(head->seq) +
                                    " records; the newest were deleted");
  if (head->seq < last || head->hash != check.head_hash)
    return Bad(check, head->seq < last ? head->seq + 1 : last,
               "the newest records disagree with the recorded chain head (seq " +
                   std::to_string(head->seq) + "): records were added or replaced outside facesearch");
  return check;
}

}  // namespace facesearch::audit
