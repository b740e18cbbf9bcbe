// Store: kept clusters, labels and "different people" links (schema v9). Every change is one
// BEGIN IMMEDIATE transaction with its audit record, so each row names the decision that made it.
#include <map>

#include "common/json.h"
#include "store/audit_append.h"
#include "store/meta.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace facesearch {
using sqlite::Stmt;
using sqlite::Transaction;
using store_audit::AppendAuditInTransaction;

namespace {

// Rows written by a change carry this audit seq until its record is stored (ChangeClusters).
constexpr int64_t kPending = -1;

Decision ReadDecision(const Stmt& row, int first) {
  return Decision{row.Text(first), row.Text(first + 1), row.Text(first + 2), row.Int(first + 3)};
}

Result<int64_t> NewCluster(sqlite3* db) {
  FS_ASSIGN(Stmt insert, Stmt::Prepare(db, "INSERT INTO clusters(created_at, created_by, audit_seq) VALUES('', '', ?)"));
  insert.Bind(1, kPending);
  FS_TRY(insert.Run());
  return sqlite3_last_insert_rowid(db);
}

Status CheckCluster(sqlite3* db, int64_t id) {
  FS_ASSIGN(Stmt find, Stmt::Prepare(db, "SELECT 1 FROM clusters WHERE id = ?"));
  find.Bind(1, id);
  FS_ASSIGN(bool row, find.Step());
  if (!row)
    return Fail(ErrorCode::kNotFound, "no saved cluster " + std::to_string(id) + "; `facesearch cluster list` shows them");
  return Ok();
}

Status WriteLabel(sqlite3* db, const ClusterChange::Label& label) {
  if (label.cluster_id) {
    FS_TRY(CheckCluster(db, *label.cluster_id));
    FS_ASSIGN(Stmt update, Stmt::Prepare(db,
        "UPDATE clusters SET subject_id = ?, labelled_at = '', labelled_by = '', label_case_id = '', "
        "label_audit_seq = ? WHERE id = ?"));
    update.Bind(1, label.subject_id).Bind(2, kPending).Bind(3, *label.cluster_id);
    return update.Run();
  }
  FS_ASSIGN(Stmt upsert, Stmt::Prepare(db,
      "INSERT INTO face_labels(face_id, subject_id, added_at, added_by, audit_seq) VALUES(?, ?, '', '', ?) "
      "ON CONFLICT(face_id) DO UPDATE SET subject_id = excluded.subject_id, audit_seq = excluded.audit_seq"));
  upsert.Bind(1, label.face_id.value_or(0)).Bind(2, label.subject_id).Bind(3, kPending);
  return upsert.Run();
}

// Every row this change wrote gets the stored record's time, user, case and seq.
Status StampPending(sqlite3* db, const AuditRecord& stored) {
  static const char* const kStamps[] = {
      "UPDATE clusters SET created_at = ?1, created_by = ?2, case_id = ?3, audit_seq = ?4 WHERE audit_seq = ?5",
      "UPDATE clusters SET labelled_at = ?1, labelled_by = ?2, label_case_id = ?3, label_audit_seq = ?4 "
      "WHERE label_audit_seq = ?5",
      "UPDATE cluster_faces SET added_at = ?1, added_by = ?2, case_id = ?3, audit_seq = ?4 WHERE audit_seq = ?5",
      "UPDATE face_labels SET added_at = ?1, added_by = ?2, case_id = ?3, audit_seq = ?4 WHERE audit_seq = ?5",
      "UPDATE face_apart SET added_at = ?1, added_by = ?2, case_id = ?3, audit_seq = ?4 WHERE audit_seq = ?5"};
  for (const char* sql : kStamps) {
    FS_ASSIGN(Stmt stamp, Stmt::Prepare(db, sql));
    stamp.Bind(1, stored.at).Bind(2, stored.user).Bind(3, stored.case_id).Bind(4, stored.seq).Bind(5, kPending);
    FS_TRY(stamp.Run());
  }
  return Ok();
}

}  // namespace

Result<std::vector<SavedCluster>> Store::SavedClusters() {
  std::vector<SavedCluster> out;
  FS_ASSIGN(bool has, sqlite::HasTable(db_, "clusters"));
  if (!has) return out;
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(Stmt clusters, Stmt::Prepare(db_,
      "SELECT c.id, c.created_at, c.created_by, c.case_id, c.audit_seq, c.subject_id, s.name, c.labelled_at, "
      "c.labelled_by, c.label_case_id, c.label_audit_seq FROM clusters c LEFT JOIN subjects s ON s.id = c.subject_id "
      "WHERE EXISTS (SELECT 1 FROM cluster_faces f WHERE f.cluster_id = c.id) ORDER BY c.id"));
  std::map<int64_t, size_t> at;
  for (;;) {
    FS_ASSIGN(bool row, clusters.Step());
    if (!row) break;
    SavedCluster& c = out.emplace_back();
    c.id = clusters.Int(0);
    c.created = ReadDecision(clusters, 1);
    if (!clusters.IsNull(5)) c.label = ClusterLabel{clusters.Int(5), clusters.Text(6), ReadDecision(clusters, 7)};
    at[c.id] = out.size() - 1;
  }
  FS_ASSIGN(Stmt members, Stmt::Prepare(db_,
      "SELECT cluster_id, face_id, how, added_at, added_by, case_id, audit_seq FROM cluster_faces ORDER BY face_id"));
  for (;;) {
    FS_ASSIGN(bool row, members.Step());
    if (!row) break;
    auto it = at.find(members.Int(0));
    if (it != at.end()) out[it->second].members.push_back({members.Int(1), members.Text(2), ReadDecision(members, 3)});
  }
  return out;
}

Result<std::vector<std::pair<int64_t, ClusterLabel>>> Store::FaceLabels() {
  std::vector<std::pair<int64_t, ClusterLabel>> out;
  FS_ASSIGN(bool has, sqlite::HasTable(db_, "face_labels"));
  if (!has) return out;
  FS_ASSIGN(Stmt labels, Stmt::Prepare(db_,
      "SELECT l.face_id, l.subject_id, s.name, l.added_at, l.added_by, l.case_id, l.audit_seq FROM face_labels l "
      "JOIN subjects s ON s.id = l.subject_id ORDER BY l.face_id"));
  for (;;) {
    FS_ASSIGN(bool row, labels.Step());
    if (!row) break;
    out.emplace_back(labels.Int(0), ClusterLabel{labels.Int(1), labels.Text(2), ReadDecision(labels, 3)});
  }
  return out;
}

Result<std::vector<ApartLink>> Store::ApartLinks() {
  std::vector<ApartLink> out;
  FS_ASSIGN(bool has, sqlite::HasTable(db_, "face_apart"));
  if (!has) return out;
  FS_ASSIGN(Stmt links, Stmt::Prepare(db_,
      "SELECT face_a, face_b, added_at, added_by, case_id, audit_seq FROM face_apart ORDER BY face_a, face_b"));
  for (;;) {
    FS_ASSIGN(bool row, links.Step());
    if (!row) break;
    out.push_back({links.Int(0), links.Int(1), ReadDecision(links, 2)});
  }
  return out;
}

Result<std::vector<int64_t>> Store::ChangeClusters(const ClusterChange& change, AuditRecord record) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  if (change.replace_all) FS_TRY(sqlite::Exec(db_, "DELETE FROM cluster_faces"));
  std::vector<int64_t> ids;
  FS_ASSIGN(Stmt member, Stmt::Prepare(db_,
      "INSERT INTO cluster_faces(face_id, cluster_id, how, added_at, added_by, audit_seq) VALUES(?, ?, ?, '', '', ?) "
      "ON CONFLICT(face_id) DO UPDATE SET cluster_id = excluded.cluster_id, how = excluded.how, "
      "audit_seq = excluded.audit_seq"));
  for (const ClusterWrite& group : change.groups) {
    if (group.id) FS_TRY(CheckCluster(db_, *group.id));
    int64_t id = group.id.value_or(0);
    if (!group.id) {
      FS_ASSIGN(id, NewCluster(db_));
    }
    ids.push_back(id);
    for (int64_t face : group.faces) {
      member.Reset();
      member.Bind(1, face).Bind(2, id).Bind(3, group.how).Bind(4, kPending);
      FS_TRY(member.Run());
    }
  }
  FS_ASSIGN(Stmt insert_apart, Stmt::Prepare(db_,
      "INSERT OR IGNORE INTO face_apart(face_a, face_b, added_at, added_by, audit_seq) VALUES(?, ?, '', '', ?)"));
  for (auto [a, b] : change.apart) {
    insert_apart.Reset();
    insert_apart.Bind(1, std::min(a, b)).Bind(2, std::max(a, b)).Bind(3, kPending);
    FS_TRY(insert_apart.Run());
  }
  if (change.label) FS_TRY(WriteLabel(db_, *change.label));
  for (const auto& [key, value] : change.meta) FS_TRY(meta::Write(db_, key, value));
  // Clusters left without a face (by this change, or by erasures since) go now.
  std::vector<int64_t> dropped;
  FS_ASSIGN(Stmt empty, Stmt::Prepare(db_,
      "SELECT id FROM clusters c WHERE NOT EXISTS (SELECT 1 FROM cluster_faces f WHERE f.cluster_id = c.id) ORDER BY id"));
  for (;;) {
    FS_ASSIGN(bool row, empty.Step());
    if (!row) break;
    dropped.push_back(empty.Int(0));
  }
  FS_ASSIGN(Stmt drop, Stmt::Prepare(db_, "DELETE FROM clusters WHERE id = ?"));
  for (int64_t id : dropped) {
    drop.Reset();
    drop.Bind(1, id);
    FS_TRY(drop.Run());
  }
  Json results = Json::object();
  for (const auto& [key, count] : change.results) results[key] = count;
  results["clusters"] = ids;
  results["dropped"] = dropped;
  record.results = JsonText(results);
  FS_ASSIGN(AuditRecord stored, AppendAuditInTransaction(db_, std::move(record)));
  FS_TRY(StampPending(db_, stored));
  FS_TRY(txn.Commit());
  return ids;
}

}  // namespace facesearch
