// Audit appends inside a caller's write transaction, private to the store module: every change
// that must never go unrecorded (erasures, opt-outs, subjects) commits with its record.
#pragma once

#include <sqlite3.h>

#include "facesearch/error.h"
#include "facesearch/privacy_types.h"

namespace facesearch::store_audit {

// Appends `r` to the audit chain inside the caller's write transaction: fills seq, prev_hash,
// hash (and `at` when empty), links to the head recorded in meta and moves it. Returns the record
// as stored.
Result<AuditRecord> AppendAuditInTransaction(sqlite3* db, AuditRecord r);

// Marks the caller's transaction as having removed biometric data not yet scrubbed from the WAL
// (Store::FinishScrub); the value is the record's seq.
Status MarkScrubPending(sqlite3* db, const AuditRecord& erasure);

}  // namespace facesearch::store_audit
