// Schema upgrades (see migrate.h).
#include <spdlog/spdlog.h>

#include <iterator>
#include <string>

#include "store/meta.h"
#include "store/migrate.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace facesearch::migrate {

const char* const kV2Sql = R"sql(
CREATE TABLE audit(seq INTEGER PRIMARY KEY, at TEXT NOT NULL, user TEXT NOT NULL,
                   action TEXT NOT NULL, params TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                   purpose TEXT NOT NULL DEFAULT '', probe_sha256 TEXT NOT NULL DEFAULT '',
                   results TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX audit_at ON audit(at);
-- An erased image's content hash only: no path, no biometric data. Blocks re-indexing.
CREATE TABLE tombstones(sha256 TEXT PRIMARY KEY, reason TEXT NOT NULL, erased_at TEXT NOT NULL);
-- Biometric data kept only to honour an opt-out request.
CREATE TABLE optouts(id INTEGER PRIMARY KEY AUTOINCREMENT,
                     embedding BLOB NOT NULL CHECK(length(embedding) = 512),
                     threshold REAL NOT NULL, reason TEXT NOT NULL, added_at TEXT NOT NULL);
)sql";

Status CreateV2(sqlite3* db) {
  FS_TRY(sqlite::Exec(db, kV2Sql));
  FS_TRY(meta::Write(db, "audit.head_seq", "0"));
  return meta::Write(db, "audit.head_hash", "");
}

namespace {
const char* const kV3Sql = R"sql(
ALTER TABLE images ADD COLUMN error_kind TEXT;
ALTER TABLE images ADD COLUMN page_url TEXT;
ALTER TABLE images ADD COLUMN source TEXT;
ALTER TABLE images ADD COLUMN captured_at TEXT;
ALTER TABLE images ADD COLUMN licence TEXT;
ALTER TABLE images ADD COLUMN notes TEXT;
CREATE INDEX images_path ON images(path);
-- Inputs that never became an image row: refused (robots.txt, noimageindex...) or failed before
-- any content was read (a malformed manifest row). One row per location, the latest outcome.
CREATE TABLE input_issues(id INTEGER PRIMARY KEY, location TEXT NOT NULL UNIQUE,
                          outcome TEXT NOT NULL CHECK(outcome IN ('error','skipped')),
                          reason TEXT NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL,
                          page_url TEXT, source TEXT, captured_at TEXT, licence TEXT, notes TEXT);
)sql";
}  // namespace

Status CreateV3(sqlite3* db) { return sqlite::Exec(db, kV3Sql); }

namespace {
// SQLite runs these triggers inside every statement that changes the rows, whichever code path
// (or foreign-key cascade) it comes from, so the counts cannot drift from the tables; upserts
// fire the UPDATE triggers. Store::IntegrityCheck compares them with real counts all the same.
const char* const kV4Sql = R"sql(
CREATE TABLE counts(key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counts(key, n) SELECT 'images', COUNT(*) FROM images;
INSERT INTO counts(key, n) SELECT 'images.ok', COUNT(*) FROM images WHERE status = 'ok';
INSERT INTO counts(key, n) SELECT 'images.noface', COUNT(*) FROM images WHERE status = 'noface';
INSERT INTO counts(key, n) SELECT 'images.error', COUNT(*) FROM images WHERE status = 'error';
INSERT INTO counts(key, n) SELECT 'faces', COUNT(*) FROM faces;
INSERT INTO counts(key, n) SELECT 'inputs.skipped', COUNT(*) FROM input_issues WHERE outcome = 'skipped';
CREATE TRIGGER counts_images_insert AFTER INSERT ON images BEGIN
  UPDATE counts SET n = n + 1 WHERE key IN ('images', 'images.' || NEW.status);
END;
CREATE TRIGGER counts_images_delete AFTER DELETE ON images BEGIN
  UPDATE counts SET n = n - 1 WHERE key IN ('images', 'images.' || OLD.status);
END;
CREATE TRIGGER counts_images_status AFTER UPDATE OF status ON images WHEN OLD.status IS NOT NEW.status BEGIN
  UPDATE counts SET n = n - 1 WHERE key = 'images.' || OLD.status;
  UPDATE counts SET n = n + 1 WHERE key = 'images.' || NEW.status;
END;
CREATE TRIGGER counts_faces_insert AFTER INSERT ON faces BEGIN
  UPDATE counts SET n = n + 1 WHERE key = 'faces';
END;
CREATE TRIGGER counts_faces_delete AFTER DELETE ON faces BEGIN
  UPDATE counts SET n = n - 1 WHERE key = 'faces';
END;
CREATE TRIGGER counts_inputs_insert AFTER INSERT ON input_issues WHEN NEW.outcome = 'skipped' BEGIN
  UPDATE counts SET n = n + 1 WHERE key = 'inputs.skipped';
END;
CREATE TRIGGER counts_inputs_delete AFTER DELETE ON input_issues WHEN OLD.outcome = 'skipped' BEGIN
  UPDATE counts SET n = n - 1 WHERE key = 'inputs.skipped';
END;
CREATE TRIGGER counts_inputs_outcome AFTER UPDATE OF outcome ON input_issues
    WHEN (OLD.outcome = 'skipped') IS NOT (NEW.outcome = 'skipped') BEGIN
  UPDATE counts SET n = n + (CASE WHEN NEW.outcome = 'skipped' THEN 1 ELSE -1 END) WHERE key = 'inputs.skipped';
END;
)sql";
}  // namespace

Status CreateV4(sqlite3* db) { return sqlite::Exec(db, kV4Sql); }

namespace {
// API users of `facesearch serve` (issue #18). Only a token's SHA-256 is kept: the token itself is
// shown once, by `user add`. A revoked user keeps its row (the audit log names it).
const char* const kUsersV5Sql = R"sql(
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                   role TEXT NOT NULL CHECK(role IN ('searcher','curator','admin','auditor')),
                   token_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT);
)sql";
}  // namespace

Status CreateUsersV5(sqlite3* db) { return sqlite::Exec(db, kUsersV5Sql); }

namespace {
// Subjects (issue #21): named people with reference faces, and faces marked "not this person". A reference's embedding is biometric
// data; one taken from a corpus face goes with that face (ON DELETE CASCADE), so erasing the face
// (forget, opt-out) erases the reference too. Who added it, when and for which case are copied
// from its audit record, whose seq it keeps.
const char* const kSubjectsV6Sql = R"sql(
CREATE TABLE subjects(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
                      created_at TEXT NOT NULL, created_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '');
CREATE TABLE subject_refs(id INTEGER PRIMARY KEY AUTOINCREMENT,
                          subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
                          embedding BLOB NOT NULL CHECK(length(embedding) = 512),
                          source TEXT NOT NULL, photo_sha256 TEXT NOT NULL,
                          face_id INTEGER REFERENCES faces(id) ON DELETE CASCADE,
                          x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
                          added_at TEXT NOT NULL, added_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                          audit_seq INTEGER NOT NULL);
CREATE INDEX subject_refs_subject ON subject_refs(subject_id);
CREATE INDEX subject_refs_face ON subject_refs(face_id);
-- "Not this person": faces a subject's searches must never return.
CREATE TABLE subject_exclusions(subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
                                face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
                                added_at TEXT NOT NULL, added_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                                audit_seq INTEGER NOT NULL, PRIMARY KEY(subject_id, face_id)) WITHOUT ROWID;
CREATE INDEX subject_exclusions_face ON subject_exclusions(face_id);
)sql";
}  // namespace

Status CreateSubjectsV6(sqlite3* db) { return sqlite::Exec(db, kSubjectsV6Sql); }

namespace {
// Near-duplicates and EXIF (issue #20). phash is PerceptualHash's 64 bits as a signed integer;
// NULL on rows from older versions until `index` reads their file again (ingest.cpp). The EXIF
// columns are the file's own claims (PhotoMetadata in types.h); GPS is personal data and goes
// with the row (forget deletes it under secure_delete).
const char* const kMediaV7Sql = R"sql(
ALTER TABLE images ADD COLUMN phash INTEGER;
ALTER TABLE images ADD COLUMN exif_taken_at TEXT;
ALTER TABLE images ADD COLUMN camera_make TEXT;
ALTER TABLE images ADD COLUMN camera_model TEXT;
ALTER TABLE images ADD COLUMN gps_lat REAL;
ALTER TABLE images ADD COLUMN gps_lon REAL;
ALTER TABLE images ADD COLUMN exif_problem TEXT;
)sql";
}  // namespace

Status CreateMediaV7(sqlite3* db) { return sqlite::Exec(db, kMediaV7Sql); }

namespace {
// Videos: an image row is a video when it has a duration; each of its faces is the best face of
// one track, with the frame it was taken from and the first and last times (seconds) the track
// was seen. NULL for still images. Erasing the image row cascades to every face, as for photos.
const char* const kVideosV8Sql = R"sql(
ALTER TABLE images ADD COLUMN duration_s REAL;
ALTER TABLE faces ADD COLUMN video_frame INTEGER;
ALTER TABLE faces ADD COLUMN video_at_s REAL;
ALTER TABLE faces ADD COLUMN video_first_s REAL;
ALTER TABLE faces ADD COLUMN video_last_s REAL;
)sql";
}  // namespace

Status CreateVideosV8(sqlite3* db) { return sqlite::Exec(db, kVideosV8Sql); }

namespace {
// Kept clusters (issue #21): `cluster --save` groups, their stable ids and labels, face labels and
// "different people" links. Every row names the audit record of the decision that made it (who,
// when, which case). A face is in one saved cluster at most; erasing it (forget, opt-out) removes
// its membership, labels and links with it (ON DELETE CASCADE); a cluster left empty is dropped
// by the next cluster change. Removing a subject unlabels its clusters.
const char* const kClustersV9Sql = R"sql(
CREATE TABLE clusters(id INTEGER PRIMARY KEY AUTOINCREMENT,
                      created_at TEXT NOT NULL, created_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                      audit_seq INTEGER NOT NULL,
                      subject_id INTEGER REFERENCES subjects(id) ON DELETE SET NULL,
                      labelled_at TEXT, labelled_by TEXT, label_case_id TEXT, label_audit_seq INTEGER);
CREATE TABLE cluster_faces(face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
                           cluster_id INTEGER NOT NULL REFERENCES clusters(id) ON DELETE CASCADE,
                           how TEXT NOT NULL, added_at TEXT NOT NULL, added_by TEXT NOT NULL,
                           case_id TEXT NOT NULL DEFAULT '', audit_seq INTEGER NOT NULL);
CREATE INDEX cluster_faces_cluster ON cluster_faces(cluster_id);
CREATE INDEX cluster_faces_audit ON cluster_faces(audit_seq);
CREATE TABLE face_labels(face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
                         subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
                         added_at TEXT NOT NULL, added_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                         audit_seq INTEGER NOT NULL);
CREATE TABLE face_apart(face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
                        face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
                        added_at TEXT NOT NULL, added_by TEXT NOT NULL, case_id TEXT NOT NULL DEFAULT '',
                        audit_seq INTEGER NOT NULL, PRIMARY KEY(face_a, face_b), CHECK(face_a < face_b)) WITHOUT ROWID;
CREATE INDEX face_apart_b ON face_apart(face_b);
)sql";
}  // namespace

Status CreateClustersV9(sqlite3* db) { return sqlite::Exec(db, kClustersV9Sql); }

namespace {
// Opt-outs across a sharded cluster (docs/scale.md): a cluster removes an opt-out by the request
// id of the ledger entry that added it, because each replica gave it a row id of its own. The id
// is stored on the row rather than looked up in the audit log at each removal: a lookup would scan
// a log that grows with every query, and `optout list` shows it at no cost. Opt-outs added before
// get the request id their audit record holds (`optout add` with --request-id, as a cluster
// replica runs it): one pass over the log, only when there are opt-outs; NULL when none.
const char* const kOptoutRequestsV10Sql = "ALTER TABLE optouts ADD COLUMN request_id TEXT;";
}  // namespace

const char* const kOptoutRequestsInAuditSql =
    "SELECT json_extract(results, '$.optout_id') AS optout_id, json_extract(params, '$.request_id') AS request_id "
    "FROM audit WHERE action = 'optout' AND json_valid(params) AND json_valid(results) "
    "AND json_extract(params, '$.op') = 'add' AND json_extract(params, '$.request_id') IS NOT NULL";

Status CreateOptoutRequestsV10(sqlite3* db) {
  FS_TRY(sqlite::Exec(db, kOptoutRequestsV10Sql));
  FS_ASSIGN(int64_t optouts, sqlite::QueryInt(db, "SELECT COUNT(*) FROM optouts"));
  if (!optouts) return Ok();
  const std::string backfill = std::string("UPDATE optouts SET request_id = added.request_id FROM (") +
                               kOptoutRequestsInAuditSql + ") AS added WHERE added.optout_id = optouts.id";
  return sqlite::Exec(db, backfill.c_str());
}

Status Upgrade(sqlite3* db, int64_t from) {
  if (from >= kSchemaVersion) return Ok();
  if (from < 1) return Fail(ErrorCode::kInternal, "cannot upgrade schema version " + std::to_string(from));
  if (from <= 1) FS_TRY(CreateV2(db));
  if (from <= 2) FS_TRY(CreateV3(db));
  if (from <= 3) FS_TRY(CreateV4(db));
  if (from <= 4) FS_TRY(CreateUsersV5(db));
  if (from <= 5) FS_TRY(CreateSubjectsV6(db));
  if (from <= 6) FS_TRY(CreateMediaV7(db));
  if (from <= 7) FS_TRY(CreateVideosV8(db));
  if (from <= 8) FS_TRY(CreateClustersV9(db));
  if (from <= 9) FS_TRY(CreateOptoutRequestsV10(db));
  const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  FS_TRY(sqlite::Exec(db, set_version.c_str()));
  FS_TRY(meta::Write(db, meta::kSchemaVersionKey, std::to_string(kSchemaVersion)));
  // What each step added, from the first one this database lacked.
  static const char* const kAdded[] = {"audit log, erasure tombstones, opt-outs", "provenance, error kinds, input issues",
                                       "stored counts", "API users", "subjects", "perceptual hashes and EXIF",
                                       "video columns", "kept clusters and labels", "opt-outs' request ids"};
  static_assert(std::size(kAdded) == kSchemaVersion - 1, "one entry per upgrade step");
  std::string added;
  for (int64_t v = from; v < kSchemaVersion; ++v) added += (added.empty() ? "" : ", ") + std::string(kAdded[v - 1]);
  spdlog::info("upgraded the corpus database from schema version {} to {} ({})", from, kSchemaVersion, added);
  if (from <= 6)
    spdlog::info("images indexed before have no perceptual hash and no EXIF yet: run `facesearch index` "
                 "on their folders again to add them (no face is detected again)");
  return Ok();
}

}  // namespace facesearch::migrate
