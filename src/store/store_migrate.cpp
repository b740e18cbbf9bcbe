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

Status Upgrade(sqlite3* db, int64_t from) {
  if (from >= kSchemaVersion) return Ok();
  if (from < 1) return Fail(ErrorCode::kInternal, "cannot upgrade schema version " + std::to_string(from));
  if (from == 1) FS_TRY(CreateV2(db));
  const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  FS_TRY(sqlite::Exec(db, set_version.c_str()));
  FS_TRY(meta::Write(db, meta::kSchemaVersionKey, std::to_string(kSchemaVersion)));
  spdlog::info("upgraded the corpus database from schema version {} to {} (audit log, erasure "
               "tombstones, opt-outs)", from, kSchemaVersion);
  return Ok();
}

}  // namespace facesearch::migrate
