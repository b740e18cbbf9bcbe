// Store: opening, schema and identity checks, and the meta table (generations, index snapshot).
// Image and face rows are in store_rows.cpp.
//
// File mode: Open creates the database file itself (open(2), O_EXCL, mode 0600) before SQLite
// sees it. SQLite's unix VFS creates the -wal and -shm files with the mode of the database file,
// so they are 0600 too; no process-wide umask change is needed.
#include "store/store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "common/time.h"
#include "store/meta.h"
#include "store/migrate.h"
#include "store/sqlite.h"

namespace facesearch {
namespace fs = std::filesystem;
using sqlite::DbFail;
using sqlite::Exec;
using sqlite::QueryInt;
using sqlite::Stmt;
using sqlite::Transaction;

namespace meta {

Result<std::optional<std::string>> Read(sqlite3* db, const std::string& key) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db, "SELECT value FROM meta WHERE key = ?"));
  stmt.Bind(1, key);
  FS_ASSIGN(bool row, stmt.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.Text(0));
}

Result<std::string> ReadRequired(sqlite3* db, const std::string& key) {
  FS_ASSIGN(std::optional<std::string> value, Read(db, key));
  if (!value) return Fail(ErrorCode::kCorrupt, "corpus database lacks the meta key " + key);
  return *value;
}

Result<int64_t> ReadInt(sqlite3* db, const std::string& key) {
  FS_ASSIGN(std::string text, ReadRequired(db, key));
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    return Fail(ErrorCode::kCorrupt, "meta key " + key + " is not an integer: '" + text + "'");
  return v;
}

Status Write(sqlite3* db, const std::string& key, const std::string& value) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db, "INSERT INTO meta(key, value) VALUES(?, ?) "
                                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  stmt.Bind(1, key).Bind(2, value);
  return stmt.Run();
}

Status BumpGeneration(sqlite3* db, bool removed_faces) {
  FS_ASSIGN(int64_t gen, ReadInt(db, kGeneration));
  const std::string next = std::to_string(gen + 1);
  FS_TRY(Write(db, kGeneration, next));
  if (removed_faces) FS_TRY(Write(db, kDeleteGeneration, next));
  return Ok();
}

Status WriteIndexSnapshot(sqlite3* db, const IndexSnapshot& snap) {
  FS_TRY(Write(db, "index.generation", std::to_string(snap.generation)));
  FS_TRY(Write(db, "index.max_face_id", std::to_string(snap.max_face_id)));
  FS_TRY(Write(db, "index.ntotal", std::to_string(snap.ntotal)));
  FS_TRY(Write(db, "index.size", std::to_string(snap.size)));
  FS_TRY(Write(db, "index.sha256", snap.sha256));
  FS_TRY(Write(db, "index.file", snap.file));
  FS_TRY(Write(db, "index.kind", snap.kind));
  FS_TRY(Write(db, "index.memory_bytes", std::to_string(snap.memory_bytes)));
  return Write(db, "index.mapped_bytes", std::to_string(snap.mapped_bytes));
}

}  // namespace meta

namespace {

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, uri TEXT NOT NULL,
                     added_at TEXT NOT NULL);
CREATE TABLE images(id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE, path TEXT NOT NULL,
                    source_id INTEGER REFERENCES sources(id), size INTEGER NOT NULL,
                    width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,
                    status TEXT NOT NULL CHECK(status IN ('ok','noface','error')), error TEXT,
                    added_at TEXT NOT NULL);
CREATE TABLE faces(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids never reused: a stale index id can never name another person
                   image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                   x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
                   landmarks TEXT NOT NULL, det_score REAL NOT NULL,
                   embedding BLOB NOT NULL CHECK(length(embedding) = 512), added_at TEXT NOT NULL);
CREATE INDEX faces_image ON faces(image_id);
)sql";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

Result<DbPtr> OpenConnection(const std::string& name, int flags) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
  DbPtr db(raw);
  if (!raw) return Fail(ErrorCode::kDatabase, "cannot allocate an SQLite connection");
  if (rc != SQLITE_OK) return DbFail(raw, "cannot open " + name);
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 10000);
  return db;
}

// Creates the database file with mode 0600 if it does not exist yet.
Status CreatePrivateFile(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Ok();
    return Fail(ErrorCode::kIo, "cannot create " + path.string() + ": " + std::strerror(errno));
  }
  const bool chmod_ok = ::fchmod(fd, 0600) == 0;  // the umask may have removed bits we want
  ::close(fd);
  if (!chmod_ok) return Fail(ErrorCode::kIo, "cannot chmod " + path.string());
  return Ok();
}

Status ApplyWritePragmas(sqlite3* db) {
  FS_TRY(Exec(db, "PRAGMA foreign_keys=ON"));
  FS_TRY(Exec(db, "PRAGMA secure_delete=ON"));
  FS_TRY(Exec(db, "PRAGMA synchronous=FULL"));
  FS_ASSIGN(Stmt wal, Stmt::Prepare(db, "PRAGMA journal_mode=WAL"));
  FS_ASSIGN(bool row, wal.Step());
  if (!row || wal.Text(0) != "wal")
    return Fail(ErrorCode::kDatabase, "cannot switch the database to WAL mode");
  return Ok();
}

// Percent-encodes a path for an SQLite URI filename.
std::string ImmutableUri(const fs::path& path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string uri = "file:";
  std::error_code ec;
  for (unsigned char c : fs::absolute(path, ec).string()) {
    if (std::isalnum(c) || std::string_view("/-._~").find(static_cast<char>(c)) !=
                               std::string_view::npos) {
      uri += static_cast<char>(c);
    } else {
      uri += '%';
      uri += kHex[c >> 4];
      uri += kHex[c & 0xf];
    }
  }
  return uri + "?immutable=1";
}

// Checks an existing schema: known version, matching meta row. Runs inside a transaction.
// Read-only opens accept older versions (min_version 1) since they cannot upgrade them.
Status CheckSchema(sqlite3* db, const fs::path& path, int64_t min_version = kSchemaVersion) {
  FS_ASSIGN(int64_t version, QueryInt(db, "PRAGMA user_version"));
  if (version == 0)
    return Fail(ErrorCode::kMismatch, path.string() + " is not a facesearch corpus database");
  if (version < min_version || version > kSchemaVersion)
    return Fail(ErrorCode::kMismatch,
                path.string() + " has schema version " + std::to_string(version) +
                    " but this facesearch supports version " + std::to_string(kSchemaVersion) +
                    "; use a matching facesearch release");
  FS_ASSIGN(int64_t recorded, meta::ReadInt(db, meta::kSchemaVersionKey));
  if (recorded != version)
    return Fail(ErrorCode::kCorrupt, path.string() + ": schema_version in meta (" +
                                         std::to_string(recorded) + ") disagrees with user_version");
  return Ok();
}

// Creates the schema in an empty database, or upgrades (migrate.h) and checks an existing one and
// its model identity (skipped when model_identity is null).
Status InitOrCheck(sqlite3* db, const fs::path& path, const std::string* model_identity) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db, /*immediate=*/true));
  FS_ASSIGN(int64_t version, QueryInt(db, "PRAGMA user_version"));
  FS_ASSIGN(int64_t objects, QueryInt(db, "SELECT COUNT(*) FROM sqlite_master"));
  if (version == 0 && objects == 0) {
    if (!model_identity) return Fail(ErrorCode::kNotFound, "no corpus database at " + path.string());
    FS_TRY(Exec(db, kSchemaSql));
    FS_TRY(migrate::CreateV2(db));
    FS_TRY(migrate::CreateV3(db));
    FS_TRY(migrate::CreateV4(db));
    FS_TRY(migrate::CreateUsersV5(db));
    FS_TRY(migrate::CreateSubjectsV6(db));
    FS_TRY(migrate::CreateMediaV7(db));
    FS_TRY(migrate::CreateVideosV8(db));
    FS_TRY(migrate::CreateClustersV9(db));
    FS_TRY(migrate::CreateOptoutRequestsV10(db));
    const std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
    FS_TRY(Exec(db, set_version.c_str()));
    FS_TRY(meta::Write(db, meta::kSchemaVersionKey, std::to_string(kSchemaVersion)));
    FS_TRY(meta::Write(db, meta::kModelIdentity, *model_identity));
    FS_TRY(meta::Write(db, meta::kGeneration, "0"));
    FS_TRY(meta::Write(db, meta::kDeleteGeneration, "0"));
    FS_TRY(meta::Write(db, meta::kCreatedAt, IsoUtcNow()));
    return txn.Commit();
  }
  if (version >= 1 && version < kSchemaVersion) FS_TRY(migrate::Upgrade(db, version));
  FS_TRY(CheckSchema(db, path));
  FS_ASSIGN(std::string recorded, meta::ReadRequired(db, meta::kModelIdentity));
  if (model_identity && recorded != *model_identity)
    return Fail(ErrorCode::kMismatch,
                "the corpus " + path.string() + " was built with models '" + recorded +
                    "' but this run uses '" + *model_identity +
                    "'; use the original model files or start a new corpus");
  return txn.Commit();
}

Result<DbPtr> OpenReadOnlyConnection(const std::string& name, int flags, const fs::path& path) {
  FS_ASSIGN(DbPtr db, OpenConnection(name, flags));
  FS_TRY(Exec(db.get(), "PRAGMA query_only=ON"));
  FS_TRY(Exec(db.get(), "PRAGMA foreign_keys=ON"));
  FS_ASSIGN(Transaction txn, Transaction::Begin(db.get(), /*immediate=*/false));
  FS_TRY(CheckSchema(db.get(), path, /*min_version=*/1));
  FS_TRY(txn.Commit());
  return db;
}

bool IsReservedMetaKey(const std::string& key) {
  return key == meta::kSchemaVersionKey || key == meta::kModelIdentity ||
         key == meta::kGeneration || key == meta::kDeleteGeneration ||
         key == meta::kCreatedAt || key.starts_with("index.") || key.starts_with("audit.") ||
         key.starts_with("erasure.") || key.starts_with("cluster.");
}

std::string Unscrubbed(const fs::path& path) {
  return "the erased faces' bytes may remain in " + path.string() +
         " (a copy of that one file would bring them back)";
}

// An erasure whose process died between its commit and its scrub left the erased rows in the WAL
// and their old bytes in the main file: every open that can write finishes that scrub first. (The
// erasing process may also still be running; then it finds the scrub done.)
void FinishInterruptedScrub(Store& store, const fs::path& path) {
  auto pending = store.ScrubPending();
  if (!pending || !*pending) return;
  auto finished = store.FinishScrub();
  if (finished)
    spdlog::info("finished the scrub of an erasure that was interrupted (or is still finishing): the "
                 "erased faces' bytes are gone from {} and its WAL", path.string());
  else
    spdlog::warn("an erasure was interrupted before its scrub, which cannot be finished yet ({}): {} "
                 "until the next command finishes it", finished.error().message, Unscrubbed(path));
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const fs::path& db_path,
                                           const std::string& model_identity) {
  if (model_identity.empty())
    return Fail(ErrorCode::kInvalidArgument, "the model identity must not be empty");
  FS_TRY(CreatePrivateFile(db_path));
  FS_ASSIGN(DbPtr db, OpenConnection(db_path.string(), SQLITE_OPEN_READWRITE));
  FS_TRY(ApplyWritePragmas(db.get()));
  FS_TRY(InitOrCheck(db.get(), db_path, &model_identity));
  auto store = std::unique_ptr<Store>(new Store(db.release()));
  FinishInterruptedScrub(*store, db_path);
  return store;
}

Result<std::unique_ptr<Store>> Store::OpenExisting(const fs::path& db_path) {
  std::error_code ec;
  if (!fs::exists(db_path, ec))
    return Fail(ErrorCode::kNotFound, "no corpus database at " + db_path.string());
  FS_ASSIGN(DbPtr db, OpenConnection(db_path.string(), SQLITE_OPEN_READWRITE));
  FS_TRY(ApplyWritePragmas(db.get()));
  FS_TRY(InitOrCheck(db.get(), db_path, nullptr));
  auto store = std::unique_ptr<Store>(new Store(db.release()));
  FinishInterruptedScrub(*store, db_path);
  return store;
}

// A WAL database opened read-only still needs its -shm file, which SQLite creates next to the
// database. Where that is impossible (read-only directory or medium) and the WAL holds no
// committed-but-uncheckpointed data, we fall back to SQLite's immutable mode, which reads the
// main file without locks or -shm. With a non-empty -wal the first error is returned instead,
// since immutable mode would silently ignore the WAL's transactions.
Result<std::unique_ptr<Store>> Store::OpenReadOnly(const fs::path& db_path, PendingScrub pending) {
  std::error_code ec;
  if (!fs::exists(db_path, ec))
    return Fail(ErrorCode::kNotFound, "no corpus database at " + db_path.string());
  auto db = OpenReadOnlyConnection(db_path.string(), SQLITE_OPEN_READONLY, db_path);
  if (!db && db.error().code != ErrorCode::kMismatch && db.error().code != ErrorCode::kCorrupt) {
    fs::path wal = db_path;
    wal += "-wal";
    const bool wal_has_data = fs::exists(wal, ec) && fs::file_size(wal, ec) > 0;
    if (!wal_has_data) {
      auto immutable = OpenReadOnlyConnection(
          ImmutableUri(db_path), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, db_path);
      if (immutable) db = std::move(immutable);
    }
  }
  if (!db) return std::unexpected(db.error());
  auto version = QueryInt(db->get(), "PRAGMA user_version");
  if (!version) return std::unexpected(version.error());
  auto store = std::unique_ptr<Store>(new Store(db->release(), *version));
  if (pending == PendingScrub::kFinish) {
    auto scrub = store->ScrubPending();
    if (scrub && *scrub) {
      auto writer = OpenConnection(db_path.string(), SQLITE_OPEN_READWRITE);
      // SQLite opens a write-protected file read-only without failing: ask it which it did.
      if (writer && sqlite3_db_readonly(writer->get(), "main") == 0 && ApplyWritePragmas(writer->get())) {
        Store rw(writer->release());
        FinishInterruptedScrub(rw, db_path);
      } else {
        spdlog::warn("an erasure was interrupted before its scrub, which this process cannot "
                     "finish (it cannot write {}): {}; run any facesearch command, or `verify "
                     "--repair`, where the corpus is writable", db_path.string(), Unscrubbed(db_path));
      }
    }
  }
  return store;
}

Store::~Store() { sqlite3_close_v2(db_); }

Result<int64_t> Store::Generation() { return meta::ReadInt(db_, meta::kGeneration); }

Result<int64_t> Store::DeleteGeneration() { return meta::ReadInt(db_, meta::kDeleteGeneration); }

Result<std::optional<IndexSnapshot>> Store::GetIndexSnapshot() {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(std::optional<std::string> file, meta::Read(db_, "index.file"));
  if (!file) return std::optional<IndexSnapshot>();
  IndexSnapshot snap;
  snap.file = *file;
  FS_ASSIGN(snap.generation, meta::ReadInt(db_, "index.generation"));
  FS_ASSIGN(snap.max_face_id, meta::ReadInt(db_, "index.max_face_id"));
  FS_ASSIGN(snap.ntotal, meta::ReadInt(db_, "index.ntotal"));
  FS_ASSIGN(snap.size, meta::ReadInt(db_, "index.size"));
  FS_ASSIGN(snap.sha256, meta::ReadRequired(db_, "index.sha256"));
  // Recorded since index format 2; a snapshot without them is an exact index.
  FS_ASSIGN(std::optional<std::string> kind, meta::Read(db_, "index.kind"));
  if (kind) snap.kind = *kind;
  // The footprint: its sum since index format 2, its mapped part since issue #19; -1 when not recorded.
  for (auto [key, value] : {std::pair{"index.memory_bytes", &snap.memory_bytes},
                            std::pair{"index.mapped_bytes", &snap.mapped_bytes}}) {
    FS_ASSIGN(std::optional<std::string> recorded, meta::Read(db_, key));
    if (recorded) {
      FS_ASSIGN(*value, meta::ReadInt(db_, key));
    }
  }
  FS_TRY(txn.Commit());
  return std::optional<IndexSnapshot>(std::move(snap));
}

Status Store::SetIndexSnapshot(const IndexSnapshot& snap) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_TRY(meta::WriteIndexSnapshot(db_, snap));
  return txn.Commit();
}

Status Store::ClearIndexSnapshot() {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_TRY(Exec(db_, "DELETE FROM meta WHERE key LIKE 'index.%'"));
  return txn.Commit();
}

Result<std::string> Store::ModelIdentity() { return meta::ReadRequired(db_, meta::kModelIdentity); }

Result<std::optional<std::string>> Store::GetMeta(const std::string& key) {
  return meta::Read(db_, key);
}

Status Store::SetMeta(const std::string& key, const std::string& value) {
  if (IsReservedMetaKey(key))
    return Fail(ErrorCode::kInvalidArgument, "meta key '" + key + "' is managed by the store");
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_TRY(meta::Write(db_, key, value));
  return txn.Commit();
}

Status Store::Checkpoint() {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "PRAGMA wal_checkpoint(TRUNCATE)"));
  FS_ASSIGN(bool row, stmt.Step());
  if (row && stmt.Int(0) != 0)
    return Fail(ErrorCode::kBusy, "the WAL checkpoint could not finish while other readers were "
                                  "active; it will be retried on a later run");
  return Ok();
}

Result<std::vector<std::string>> Store::IntegrityCheck() {
  std::vector<std::string> problems;
  {
    FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "PRAGMA integrity_check"));
    while (true) {
      FS_ASSIGN(bool row, stmt.Step());
      if (!row) break;
      std::string line = stmt.Text(0);
      if (line != "ok") problems.push_back("integrity_check: " + line);
    }
  }
  FS_ASSIGN(Stmt fk, Stmt::Prepare(db_, "PRAGMA foreign_key_check"));
  while (true) {
    FS_ASSIGN(bool row, fk.Step());
    if (!row) break;
    problems.push_back("foreign_key_check: row " + std::to_string(fk.Int(1)) + " of table " +
                       fk.Text(0) + " refers to a missing row of " + fk.Text(2));
  }
  if (version_ >= 4 && problems.empty()) {
    FS_ASSIGN(const CorpusCounts stored, Counts());
    FS_ASSIGN(const CorpusCounts scanned, ScannedCounts());
    auto compare = [&](const char* what, int64_t kept, int64_t real) {
      if (kept != real)
        problems.push_back(std::string("counts: ") + what + " is recorded as " + std::to_string(kept) +
                           " but the database holds " + std::to_string(real) +
                           " (the database was changed outside facesearch)");
    };
    compare("images", stored.images, scanned.images);
    compare("images with faces", stored.images_ok, scanned.images_ok);
    compare("images without a face", stored.images_noface, scanned.images_noface);
    compare("images in error", stored.images_error, scanned.images_error);
    compare("faces", stored.faces, scanned.faces);
    compare("skipped inputs", stored.inputs_skipped, scanned.inputs_skipped);
  }
  return problems;
}

}  // namespace facesearch
