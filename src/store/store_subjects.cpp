// Store: subjects and their reference faces (schema v6). Every change is one BEGIN IMMEDIATE
// transaction with its audit record, so a reference always names the record that added it.
#include "common/json.h"
#include "common/time.h"
#include "store/audit_append.h"
#include "store/face_codec.h"
#include "store/meta.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace facesearch {
using sqlite::Stmt;
using sqlite::Transaction;
using store_audit::AppendAuditInTransaction;
using store_audit::MarkScrubPending;

namespace {

Result<std::optional<int64_t>> FindSubjectId(sqlite3* db, const std::string& name) {
  FS_ASSIGN(Stmt find, Stmt::Prepare(db, "SELECT id FROM subjects WHERE name = ?"));
  find.Bind(1, name);
  FS_ASSIGN(bool row, find.Step());
  if (!row) return std::optional<int64_t>{};
  return std::optional<int64_t>{find.Int(0)};
}

std::unexpected<Error> NoSuchSubject(const std::string& name) {
  return Fail(ErrorCode::kNotFound, "no subject named '" + name + "'; `facesearch subject list` shows them");
}

std::unexpected<Error> NameTaken(const std::string& name) {
  return Fail(ErrorCode::kInvalidArgument, "a subject named '" + name +
                                               "' exists already; choose another name, or add references to it "
                                               "with `facesearch subject add --append`");
}

Result<SubjectReference> ReadReference(const Stmt& row) {
  SubjectReference r;
  r.id = row.Int(1);
  auto embedding = codec::DecodeEmbedding(row.Blob(2));
  if (!embedding)
    return Fail(ErrorCode::kCorrupt, "subject reference " + std::to_string(r.id) + " has a malformed embedding");
  r.embedding = *embedding;
  r.source = row.Text(3);
  r.photo_sha256 = row.Text(4);
  if (!row.IsNull(5)) r.face_id = row.Int(5);
  r.box = Box{row.Int(6), row.Int(7), row.Int(8), row.Int(9)};
  r.added_at = row.Text(10);
  r.added_by = row.Text(11);
  r.case_id = row.Text(12);
  r.audit_seq = row.Int(13);
  return r;
}

}  // namespace

Result<std::vector<Subject>> Store::Subjects(const std::optional<std::string>& name) {
  std::vector<Subject> out;
  FS_ASSIGN(bool has, sqlite::HasTable(db_, "subjects"));
  if (!has) return out;  // an older schema opened read-only has none
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(Stmt subjects, Stmt::Prepare(db_,
      "SELECT id, name, created_at, created_by, case_id FROM subjects WHERE ?1 IS NULL OR name = ?1 ORDER BY name"));
  if (name) subjects.Bind(1, *name);
  for (;;) {
    FS_ASSIGN(bool row, subjects.Step());
    if (!row) break;
    Subject& s = out.emplace_back();
    s.id = subjects.Int(0);
    s.name = subjects.Text(1);
    s.created_at = subjects.Text(2);
    s.created_by = subjects.Text(3);
    s.case_id = subjects.Text(4);
  }
  FS_ASSIGN(Stmt excluded, Stmt::Prepare(db_,
      "SELECT face_id, added_at, added_by, case_id, audit_seq FROM subject_exclusions WHERE subject_id = ? "
      "ORDER BY audit_seq, face_id"));
  for (Subject& s : out) {
    excluded.Reset();
    excluded.Bind(1, s.id);
    for (;;) {
      FS_ASSIGN(bool row, excluded.Step());
      if (!row) break;
      s.exclusions.push_back({excluded.Int(0), excluded.Text(1), excluded.Text(2), excluded.Text(3), excluded.Int(4)});
    }
  }
  FS_ASSIGN(Stmt refs, Stmt::Prepare(db_,
      "SELECT subject_id, id, embedding, source, photo_sha256, face_id, x, y, w, h, added_at, added_by, case_id, "
      "audit_seq FROM subject_refs WHERE subject_id = ? ORDER BY id"));
  for (Subject& s : out) {
    refs.Reset();
    refs.Bind(1, s.id);
    for (;;) {
      FS_ASSIGN(bool row, refs.Step());
      if (!row) break;
      FS_ASSIGN(s.references.emplace_back(), ReadReference(refs));
    }
  }
  return out;
}

Result<Subject> Store::AddSubjectReferences(const std::string& name, bool append,
                                            const std::vector<SubjectReference>& refs, AuditRecord record) {
  {
    FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
    FS_ASSIGN(std::optional<int64_t> id, FindSubjectId(db_, name));
    if (id && !append) return NameTaken(name);
    if (!id && append) return NoSuchSubject(name);
    if (!id) {
      FS_ASSIGN(Stmt insert, Stmt::Prepare(db_,
          "INSERT INTO subjects(name, created_at, created_by, case_id) VALUES(?, ?, ?, ?)"));
      insert.Bind(1, name).Bind(2, IsoUtcNow()).Bind(3, record.user).Bind(4, record.case_id);
      FS_TRY(insert.Run());
      id = sqlite3_last_insert_rowid(db_);
    }
    record.results = JsonText({{"subject_id", *id}, {"references", refs.size()}});
    FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
    FS_ASSIGN(Stmt insert, Stmt::Prepare(db_,
        "INSERT INTO subject_refs(subject_id, embedding, source, photo_sha256, face_id, x, y, w, h, added_at, "
        "added_by, case_id, audit_seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    for (const SubjectReference& r : refs) {
      insert.Reset();
      insert.Bind(1, *id).BindBlob(2, codec::EncodeEmbedding(r.embedding)).Bind(3, r.source).Bind(4, r.photo_sha256);
      if (r.face_id) insert.Bind(5, *r.face_id);
      else insert.BindNull(5);
      insert.Bind(6, r.box.x).Bind(7, r.box.y).Bind(8, r.box.w).Bind(9, r.box.h);
      insert.Bind(10, stored.at).Bind(11, stored.user).Bind(12, stored.case_id).Bind(13, stored.seq);
      FS_TRY(insert.Run());
    }
    FS_TRY(txn.Commit());
  }
  FS_ASSIGN(std::vector<Subject> found, Subjects(name));
  if (found.empty()) return NoSuchSubject(name);  // removed by another process in between
  return found.front();
}

Status Store::ExcludeFromSubject(const std::string& name, const std::vector<int64_t>& face_ids, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(std::optional<int64_t> id, FindSubjectId(db_, name));
  if (!id) return NoSuchSubject(name);
  FS_ASSIGN(Stmt face, Stmt::Prepare(db_, "SELECT COUNT(*) FROM faces WHERE id = ?"));
  FS_ASSIGN(Stmt reference, Stmt::Prepare(db_, "SELECT COUNT(*) FROM subject_refs WHERE subject_id = ? AND face_id = ?"));
  for (int64_t f : face_ids) {
    face.Reset();
    face.Bind(1, f);
    FS_ASSIGN(bool row, face.Step());
    if (!row || face.Int(0) == 0)
      return Fail(ErrorCode::kNotFound, "--face-id " + std::to_string(f) + " names no face in the corpus; nothing was changed");
    reference.Reset();
    reference.Bind(1, *id).Bind(2, f);
    FS_ASSIGN(row, reference.Step());
    if (row && reference.Int(0) > 0)
      return Fail(ErrorCode::kInvalidArgument, "face " + std::to_string(f) + " is one of subject '" + name +
                                                   "''s references: it cannot also be 'not this person'; nothing was changed");
  }
  record.results = JsonText({{"subject_id", *id}, {"excluded", face_ids}});
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_ASSIGN(Stmt insert, Stmt::Prepare(db_,
      "INSERT OR IGNORE INTO subject_exclusions(subject_id, face_id, added_at, added_by, case_id, audit_seq) "
      "VALUES(?, ?, ?, ?, ?, ?)"));
  for (int64_t f : face_ids) {
    insert.Reset();
    insert.Bind(1, *id).Bind(2, f).Bind(3, stored.at).Bind(4, stored.user).Bind(5, stored.case_id).Bind(6, stored.seq);
    FS_TRY(insert.Run());
  }
  return txn.Commit();
}

Status Store::RenameSubject(const std::string& from, const std::string& to, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(std::optional<int64_t> id, FindSubjectId(db_, from));
  if (!id) return NoSuchSubject(from);
  FS_ASSIGN(std::optional<int64_t> taken, FindSubjectId(db_, to));
  if (taken) return NameTaken(to);
  FS_ASSIGN(Stmt update, Stmt::Prepare(db_, "UPDATE subjects SET name = ? WHERE id = ?"));
  update.Bind(1, to).Bind(2, *id);
  FS_TRY(update.Run());
  record.results = JsonText({{"subject_id", *id}});
  FS_TRY(AppendAuditInTransaction(db_, std::move(record)));
  return txn.Commit();
}

Status Store::RemoveSubject(const std::string& name, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(std::optional<int64_t> id, FindSubjectId(db_, name));
  if (!id) return NoSuchSubject(name);
  FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM subjects WHERE id = ?"));  // references cascade
  del.Bind(1, *id);
  FS_TRY(del.Run());
  record.results = JsonText({{"subject_id", *id}});
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(MarkScrubPending(db_, stored));  // the references' embeddings leave the WAL too
  return txn.Commit();
}

}  // namespace facesearch
