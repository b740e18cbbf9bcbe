// Store: the accountability and privacy tables (schema v2): the hash-chained audit log, erasure
// with tombstones, and opt-outs. Every write is one BEGIN IMMEDIATE transaction; an erasure and
// its audit record commit together, so an erasure is never unrecorded (and a record never lies).
#include <sstream>

#include "common/json.h"
#include "common/time.h"
#include "store/audit_append.h"
#include "store/audit_chain.h"
#include "store/face_codec.h"
#include "store/meta.h"
#include "store/migrate.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace facesearch {
using sqlite::HasTable;
using sqlite::QueryInt;
using sqlite::Stmt;
using sqlite::Transaction;
using store_audit::AppendAuditInTransaction;
using store_audit::MarkScrubPending;

namespace {

constexpr const char* kHeadSeq = "audit.head_seq";
constexpr const char* kHeadHash = "audit.head_hash";

std::string JoinProbes(const std::vector<std::string>& probes) {
  std::string out;
  for (size_t i = 0; i < probes.size(); ++i) out += (i ? "," : "") + probes[i];
  return out;
}

std::vector<std::string> SplitProbes(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

AuditRecord ReadAuditRow(const Stmt& row) {
  AuditRecord r;
  r.seq = row.Int(0);
  r.at = row.Text(1);
  r.user = row.Text(2);
  r.action = row.Text(3);
  r.params = row.Text(4);
  r.case_id = row.Text(5);
  r.purpose = row.Text(6);
  r.probe_sha256 = SplitProbes(row.Text(7));
  r.results = row.Text(8);
  r.prev_hash = row.Text(9);
  r.hash = row.Text(10);
  return r;
}

constexpr const char* kSelectAudit =
    "SELECT seq, at, user, action, params, case_id, purpose, probe_sha256, results, prev_hash, "
    "hash FROM audit ";

// Deletes one image row and its faces; tombstones its SHA-256. Adds to `counts`.
Status EraseImageRow(sqlite3* db, int64_t image_id, const std::string& reason,
                     const std::string& now, EraseCounts& counts) {
  FS_ASSIGN(Stmt find, Stmt::Prepare(db, "SELECT sha256 FROM images WHERE id = ?"));
  find.Bind(1, image_id);
  FS_ASSIGN(bool found, find.Step());
  if (!found) return Ok();
  if (!find.IsNull(0)) {
    FS_ASSIGN(Stmt tomb, Stmt::Prepare(db,
        "INSERT INTO tombstones(sha256, reason, erased_at) VALUES(?, ?, ?) "
        "ON CONFLICT(sha256) DO UPDATE SET reason = excluded.reason, erased_at = excluded.erased_at"));
    tomb.Bind(1, find.Text(0)).Bind(2, reason).Bind(3, now);
    FS_TRY(tomb.Run());
  }
  FS_ASSIGN(Stmt faces, Stmt::Prepare(db, "DELETE FROM faces WHERE image_id = ?"));
  faces.Bind(1, image_id);
  FS_TRY(faces.Run());
  counts.faces += sqlite3_changes64(db);
  FS_ASSIGN(Stmt image, Stmt::Prepare(db, "DELETE FROM images WHERE id = ?"));
  image.Bind(1, image_id);
  FS_TRY(image.Run());
  counts.images += sqlite3_changes64(db);
  return Ok();
}

Result<std::vector<int64_t>> Ids(Stmt& stmt) {
  std::vector<int64_t> ids;
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return ids;
    ids.push_back(stmt.Int(0));
  }
}

}  // namespace

namespace store_audit {

// Appends inside the caller's write transaction; links to the head recorded in meta (not to the
// newest row), so that a deleted newest row stays detectable after later appends.
Result<AuditRecord> AppendAuditInTransaction(sqlite3* db, AuditRecord r) {
  FS_ASSIGN(int64_t head_seq, meta::ReadInt(db, kHeadSeq));
  FS_ASSIGN(std::string head_hash, meta::ReadRequired(db, kHeadHash));
  r.seq = head_seq + 1;
  r.prev_hash = head_seq == 0 ? audit::kGenesisHash : head_hash;
  if (r.at.empty()) r.at = IsoUtcNow();
  r.hash = audit::ChainHash(r);
  FS_ASSIGN(Stmt insert, Stmt::Prepare(db,
      "INSERT INTO audit(seq, at, user, action, params, case_id, purpose, probe_sha256, results, "
      "prev_hash, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  insert.Bind(1, r.seq).Bind(2, r.at).Bind(3, r.user).Bind(4, r.action).Bind(5, r.params);
  insert.Bind(6, r.case_id).Bind(7, r.purpose).Bind(8, JoinProbes(r.probe_sha256));
  insert.Bind(9, r.results).Bind(10, r.prev_hash).Bind(11, r.hash);
  FS_TRY(insert.Run());
  FS_TRY(meta::Write(db, kHeadSeq, std::to_string(r.seq)));
  FS_TRY(meta::Write(db, kHeadHash, r.hash));
  return r;
}

// Marks the caller's erasure transaction as not yet scrubbed. The value is the erasure's audit seq,
// so that finishing one scrub never clears the mark of a later erasure.
Status MarkScrubPending(sqlite3* db, const AuditRecord& erasure) {
  return meta::Write(db, meta::kScrubPending, std::to_string(erasure.seq));
}

}  // namespace store_audit

Result<AuditRecord> Store::AppendAudit(AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(txn.Commit());
  return stored;
}

Status Store::ForEachAudit(const AuditFilter& f, const std::function<void(const AuditRecord&)>& fn) {
  FS_ASSIGN(bool has, HasTable(db_, "audit"));
  if (!has) return Ok();
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, (std::string(kSelectAudit) +
      "WHERE (?1 = '' OR at >= ?1) AND (?2 = '' OR at <= ?2) AND (?3 = '' OR case_id = ?3) "
      "AND (?4 = '' OR user = ?4) ORDER BY seq").c_str()));
  stmt.Bind(1, f.since).Bind(2, f.until).Bind(3, f.case_id).Bind(4, f.user);
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return Ok();
    fn(ReadAuditRow(stmt));
  }
}

Result<AuditCheck> Store::VerifyAudit() {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(bool has, HasTable(db_, "audit"));
  if (!has) return AuditCheck{};
  std::vector<AuditRecord> records;
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, (std::string(kSelectAudit) + "ORDER BY seq").c_str()));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) break;
    records.push_back(ReadAuditRow(stmt));
  }
  FS_ASSIGN(std::optional<std::string> seq, meta::Read(db_, kHeadSeq));
  FS_ASSIGN(std::optional<std::string> hash, meta::Read(db_, kHeadHash));
  std::optional<audit::ChainHead> head;
  if (seq && hash) {
    FS_ASSIGN(int64_t head_seq, meta::ReadInt(db_, kHeadSeq));
    head = audit::ChainHead{head_seq, *hash};
  }
  FS_TRY(txn.Commit());
  return audit::Verify(records, head);
}

Status Store::SetMetaAudited(const std::string& key, const std::string& value, AuditRecord record) {
  if (key.starts_with("audit.") || !key.starts_with("config."))
    return Fail(ErrorCode::kInvalidArgument, "meta key '" + key + "' is not a setting");
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_TRY(meta::Write(db_, key, value));
  FS_TRY(AppendAuditInTransaction(db_, std::move(record)));
  return txn.Commit();
}

Result<bool> Store::IsTombstoned(const std::string& sha256) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT 1 FROM tombstones WHERE sha256 = ?"));
  stmt.Bind(1, sha256);
  return stmt.Step();
}

Result<std::vector<Tombstone>> Store::Tombstones() {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT sha256, reason, erased_at FROM tombstones ORDER BY sha256"));
  std::vector<Tombstone> out;
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return out;
    out.push_back({stmt.Text(0), stmt.Text(1), stmt.Text(2)});
  }
}

Status Store::AddTombstones(const std::vector<Tombstone>& tombstones) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "INSERT OR IGNORE INTO tombstones(sha256, reason, erased_at) VALUES(?, ?, ?)"));
  for (const Tombstone& t : tombstones) {
    stmt.Reset();
    stmt.Bind(1, t.sha256).Bind(2, t.reason).Bind(3, t.erased_at);
    FS_TRY(stmt.Run());
  }
  return txn.Commit();
}

Result<std::vector<int64_t>> Store::FindImagesByPath(const std::string& path) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id FROM images WHERE path = ? ORDER BY id"));
  stmt.Bind(1, path);
  return Ids(stmt);
}

Result<std::vector<int64_t>> Store::FindImagesAddedBefore(const std::string& added_before) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id FROM images WHERE added_at < ? ORDER BY id"));
  stmt.Bind(1, added_before);
  return Ids(stmt);
}

Result<EraseCounts> Store::Erase(const std::vector<int64_t>& image_ids,
                                 const std::vector<int64_t>& face_ids, const std::string& reason,
                                 const std::function<AuditRecord(const EraseCounts&)>& make_audit,
                                 std::optional<int64_t> subject_id,
                                 const std::optional<IndexSnapshot>& scrubbed_index) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  const std::string now = IsoUtcNow();
  EraseCounts counts;
  if (subject_id) {
    FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM subjects WHERE id = ?"));  // references cascade
    del.Bind(1, *subject_id);
    FS_TRY(del.Run());
  }
  for (int64_t id : image_ids) FS_TRY(EraseImageRow(db_, id, reason, now, counts));
  FS_ASSIGN(Stmt find, Stmt::Prepare(db_, "SELECT image_id FROM faces WHERE id = ?"));
  FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM faces WHERE id = ?"));
  FS_ASSIGN(Stmt left, Stmt::Prepare(db_, "SELECT COUNT(*) FROM faces WHERE image_id = ?"));
  std::vector<int64_t> touched;
  for (int64_t id : face_ids) {
    find.Reset();
    find.Bind(1, id);
    FS_ASSIGN(bool found, find.Step());
    if (!found) continue;
    touched.push_back(find.Int(0));
    find.Reset();
    del.Reset();
    del.Bind(1, id);
    FS_TRY(del.Run());
    counts.faces += sqlite3_changes64(db_);
  }
  for (int64_t image_id : touched) {
    left.Reset();
    left.Bind(1, image_id);
    FS_ASSIGN(bool row, left.Step());
    const bool empty = row && left.Int(0) == 0;
    left.Reset();
    if (empty) FS_TRY(EraseImageRow(db_, image_id, reason, now, counts));
  }
  if (counts.faces > 0) {
    FS_TRY(meta::BumpGeneration(db_, /*removed_faces=*/true));
    FS_ASSIGN(const int64_t generation, meta::ReadInt(db_, meta::kGeneration));
    if (scrubbed_index && scrubbed_index->generation == generation)
      FS_TRY(meta::WriteIndexSnapshot(db_, *scrubbed_index));
  }
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, make_audit(counts)));
  FS_TRY(MarkScrubPending(db_, stored));
  FS_TRY(txn.Commit());
  return counts;
}

Result<int64_t> Store::AddOptOut(const OptOutRecord& o, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt insert, Stmt::Prepare(db_,
      "INSERT INTO optouts(embedding, threshold, reason, added_at, request_id) VALUES(?, ?, ?, ?, ?)"));
  insert.BindBlob(1, codec::EncodeEmbedding(o.embedding)).Bind(2, double{o.threshold});
  insert.Bind(3, o.reason).Bind(4, o.added_at.empty() ? IsoUtcNow() : o.added_at);
  if (!o.request_id.empty()) insert.Bind(5, o.request_id);  // else NULL: added outside any cluster request
  FS_TRY(insert.Run());
  const int64_t id = sqlite3_last_insert_rowid(db_);
  record.results = JsonText({{"optout_id", id}});
  FS_TRY(AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(txn.Commit());
  return id;
}

Result<std::vector<OptOutRecord>> Store::OptOuts() {
  std::vector<OptOutRecord> out;
  FS_ASSIGN(bool has, HasTable(db_, "optouts"));
  if (!has) return out;
  // v10 added request_id; an older schema, opened read-only, has it in its audit log only.
  const std::string request_id =
      version_ >= 10 ? "COALESCE(o.request_id, '') FROM optouts o"
                     : std::string("COALESCE(added.request_id, '') FROM optouts o LEFT JOIN (") +
                           migrate::kOptoutRequestsInAuditSql + ") AS added ON added.optout_id = o.id";
  const std::string sql = "SELECT o.id, o.embedding, o.threshold, o.reason, o.added_at, " + request_id + " ORDER BY o.id";
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, sql.c_str()));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return out;
    auto embedding = codec::DecodeEmbedding(stmt.Blob(1));
    if (!embedding)
      return Fail(ErrorCode::kCorrupt, "opt-out " + std::to_string(stmt.Int(0)) + " has a malformed embedding");
    out.push_back(OptOutRecord{stmt.Int(0), *embedding, static_cast<float>(stmt.Double(2)),
                               stmt.Text(3), stmt.Text(4), stmt.Text(5)});
  }
}

Status Store::RemoveOptOut(int64_t id, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM optouts WHERE id = ?"));
  del.Bind(1, id);
  FS_TRY(del.Run());
  if (sqlite3_changes64(db_) == 0)
    return Fail(ErrorCode::kNotFound, "no opt-out with id " + std::to_string(id) +
                                          " (see `facesearch optout list`)");
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(MarkScrubPending(db_, stored));  // the opt-out's embedding is erased too
  return txn.Commit();
}

Result<std::vector<int64_t>> Store::RemoveOptOutsOfRequest(const std::string& request_id, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt find, Stmt::Prepare(db_, "SELECT id FROM optouts WHERE request_id = ? ORDER BY id"));
  find.Bind(1, request_id);
  FS_ASSIGN(std::vector<int64_t> ids, Ids(find));
  if (ids.empty())
    return Fail(ErrorCode::kNotFound, "no opt-out was added under request id " + request_id +
                                          " (see `facesearch optout list --json`, its request_id)");
  FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM optouts WHERE request_id = ?"));
  del.Bind(1, request_id);
  FS_TRY(del.Run());
  record.results = JsonText({{"optout_ids", ids}});
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(MarkScrubPending(db_, stored));  // the opt-outs' embeddings are erased too
  FS_TRY(txn.Commit());
  return ids;
}

Result<bool> Store::ScrubPending() {
  FS_ASSIGN(std::optional<std::string> mark, meta::Read(db_, meta::kScrubPending));
  return mark.has_value();
}

Status Store::FinishScrub() {
  FS_ASSIGN(std::optional<std::string> mark, meta::Read(db_, meta::kScrubPending));
  if (!mark) return Ok();
  FS_TRY(Checkpoint());
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt clear, Stmt::Prepare(db_, "DELETE FROM meta WHERE key = ? AND value = ?"));
  clear.Bind(1, std::string(meta::kScrubPending)).Bind(2, *mark);
  FS_TRY(clear.Run());
  FS_TRY(txn.Commit());
  // Carries the cleared mark into the main file as well. Best effort: a mark left there only makes
  // a later open repeat a scrub that has nothing left to do.
  (void)Checkpoint();
  return Ok();
}

Status Store::AddUser(const UserRecord& user, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt taken, Stmt::Prepare(db_, "SELECT 1 FROM users WHERE name = ?"));
  taken.Bind(1, user.name);
  FS_ASSIGN(bool exists, taken.Step());
  if (exists)
    return Fail(ErrorCode::kInvalidArgument, "a user named '" + user.name +
                                                 "' exists already (revoked users keep their name): choose another name");
  FS_ASSIGN(Stmt insert, Stmt::Prepare(db_,
      "INSERT INTO users(name, role, token_sha256, created_at) VALUES(?, ?, ?, ?)"));
  insert.Bind(1, user.name).Bind(2, std::string_view(RoleName(user.role))).Bind(3, user.token_sha256);
  insert.Bind(4, IsoUtcNow());
  FS_TRY(insert.Run());
  FS_TRY(AppendAuditInTransaction(db_, std::move(record)));
  return txn.Commit();
}

Result<std::vector<UserRecord>> Store::Users() {
  std::vector<UserRecord> out;
  FS_ASSIGN(bool has, HasTable(db_, "users"));
  if (!has) return out;
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_,
      "SELECT id, name, role, token_sha256, created_at, COALESCE(revoked_at, '') FROM users ORDER BY id"));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return out;
    auto role = ParseRole(stmt.Text(2));
    if (!role) return Fail(ErrorCode::kCorrupt, "user " + stmt.Text(1) + " has an unknown role " + stmt.Text(2));
    out.push_back(UserRecord{stmt.Int(0), stmt.Text(1), *role, stmt.Text(3), stmt.Text(4), stmt.Text(5)});
  }
}

Status Store::RevokeUser(const std::string& name, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt revoke, Stmt::Prepare(db_, "UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"));
  revoke.Bind(1, IsoUtcNow()).Bind(2, name);
  FS_TRY(revoke.Run());
  if (sqlite3_changes64(db_) == 0)
    return Fail(ErrorCode::kNotFound, "no active user named '" + name + "' (see `facesearch user list`)");
  FS_TRY(AppendAuditInTransaction(db_, std::move(record)));
  return txn.Commit();
}

}  // namespace facesearch
