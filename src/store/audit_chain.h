// The audit log's hash chain: canonical serialisation, hashing and verification. Pure functions
// (no SQLite) so the chain rules are unit-tested on their own.
//
// Canonical form (version 1): the line "facesearch-audit-v1" then, for each field in this order,
// "<name> <byte length>:<bytes>\n": seq, at, user, action, params, case, purpose, probes (hex
// digests joined by ','), results. Length prefixes make the encoding unambiguous whatever bytes
// the fields hold. seq is part of the record, so moving a row to another position breaks the chain.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/privacy_types.h"

namespace facesearch::audit {

inline const std::string kGenesisHash(64, '0');

std::string Canonical(const AuditRecord& record);

// SHA256(prev_hash || Canonical(record)), lowercase hex. Uses record.prev_hash.
std::string ChainHash(const AuditRecord& record);

// What the store recorded about the newest record (meta audit.head_*), to detect deleted tails.
struct ChainHead {
  int64_t seq = 0;
  std::string hash;
};

// Checks records given in seq order: seq runs 1..N without gaps, each prev_hash equals the
// previous record's hash (genesis for the first), each hash recomputes, and the last record
// matches `head` (when head is given; an absent head with records present is itself a problem).
AuditCheck Verify(const std::vector<AuditRecord>& records, const std::optional<ChainHead>& head);

}  // namespace facesearch::audit
