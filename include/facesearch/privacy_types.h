// Value types of the accountability and privacy records (audit log, opt-outs, erasure counts),
// shared by the store, the engine and front ends. No third-party types. See docs/usage.md
// "Privacy and erasure".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/types.h"

namespace facesearch {

// One audit record. Records form a hash chain:
//   hash = SHA256(prev_hash || CanonicalAudit(record))   (hex digests; the first prev_hash is 64 '0')
// so that editing, deleting or reordering a row breaks the chain (audit_chain.h).
struct AuditRecord {
  int64_t seq = 0;                         // 1, 2, 3 ... with no gaps
  std::string at;                          // ISO-8601 UTC, e.g. "2025-02-03T04:05:06Z"
  std::string user;                        // OS user name of the effective uid
  std::string action;                      // "query", "export", "forget", "optout", "config", ...
  std::string params;                      // JSON object text: the subcommand's parameters
  std::string case_id;                     // "" when not given
  std::string purpose;                     // "" when not given
  std::vector<std::string> probe_sha256;   // SHA-256 of each probe image (hex)
  std::string results;                     // JSON text: face ids returned, or counts erased
  std::string prev_hash;                   // hash of record seq-1 (64 '0' for seq 1)
  std::string hash;
};

// Content erased by `forget`: its SHA-256 is refused by later index and import runs.
struct Tombstone {
  std::string sha256;
  std::string reason;     // what erased it
  std::string erased_at;  // ISO-8601 UTC
};

// Filters for listing; empty fields do not filter. Times are ISO-8601 UTC strings compared as text.
struct AuditFilter {
  std::string since;    // at >= since
  std::string until;    // at <= until
  std::string case_id;  // exact
  std::string user;     // exact
};

// Result of checking the chain. ok == false names the first bad record and why.
struct AuditCheck {
  bool ok = true;
  int64_t records = 0;     // rows checked
  int64_t first_bad = 0;   // seq of the first record that fails (0 when ok)
  std::string problem;     // one sentence
  std::string head_hash;   // hash of the last record ("" when the log is empty)
};

// An opt-out: the embedding of a face whose owner asked never to be indexed or found. This is
// biometric data, kept only to honour the request.
struct OptOutRecord {
  int64_t id = 0;
  Embedding embedding{};
  float threshold = 0.6f;
  std::string reason;
  std::string added_at;
  // The --request-id it was added under (a cluster ledger entry: the key that names this opt-out
  // on every replica, whose row ids differ); "" when none.
  std::string request_id;
};

// What one erasure removed.
struct EraseCounts {
  int64_t faces = 0;   // face rows deleted
  int64_t images = 0;  // image rows deleted (each tombstoned when it had a SHA-256)
};

}  // namespace facesearch
