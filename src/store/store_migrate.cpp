// Schema upgrades (see migrate.h).
#include <spdlog/spdlog.h>

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
// Videos: an image row is a video when it has a duration; each of its faces is the best face of
// one track, with the frame it was taken from and the first and last times (seconds) the track
// was seen. NULL for still images. Erasing the image row cascades to every face, as for photos.
const char* const kV5Sql = R"sql(
ALTER TABLE images ADD COLUMN duration_s REAL;
ALTER TABLE faces ADD COLUMN video_frame INTEGER;
ALTER TABLE faces ADD COLUMN video_at_s REAL;
ALTER TABLE faces ADD COLUMN video_first_s REAL;
ALTER TABLE faces ADD COLUMN video_last_s REAL;
)sql";
}  // namespace

Status CreateVideosV5(sqlite3* db) { return sqlite::Exec(db, kV5Sql); }

Status Upgrade(sqlite3* db, int64_t from) {
  if (from >= kSchemaVersion) return Ok();
  if (from < 1) return Fail(ErrorCode::kInternal, "cannot upgrade schema version " + std::to_string(from));
  if (from <= 1) FS_TRY(CreateV2(db));
  if (from <= 2) FS_TRY(CreateV3(db));
  if (from <= 3) FS_TRY(CreateV4(db));
  if (from <= 4) FS_TRY(CreateVideosV5(db));
  const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  FS_TRY(sqlite::Exec(db, set_version.c_str()));
  FS_TRY(meta::Write(db, meta::kSchemaVersionKey, std::to_string(kSchemaVersion)));
  spdlog::info("upgraded the corpus database from schema version {} to {} ({}{}{}video columns)", from,
               kSchemaVersion, from <= 1 ? "audit log, erasure tombstones, opt-outs, " : "",
               from <= 2 ? "provenance, error kinds, input issues, " : "", from <= 3 ? "stored counts, " : "");
  return Ok();
}

}  // namespace facesearch::migrate
