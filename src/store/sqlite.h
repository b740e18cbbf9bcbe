// Thin RAII helpers over the SQLite C API, private to the store module. Header-only.
// Every value reaches SQL through a bound parameter; these helpers have no way to splice text.
#pragma once

#include <sqlite3.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "facesearch/error.h"

namespace facesearch::sqlite {

// Maps the connection's last error to an Error: busy/locked → kBusy, corrupt/not-a-database →
// kCorrupt, I/O, disk full and cannot-open → kIo, anything else → kDatabase.
inline std::unexpected<Error> DbFail(sqlite3* db, const std::string& what) {
  const int rc = sqlite3_errcode(db);
  ErrorCode code = ErrorCode::kDatabase;
  switch (rc & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: code = ErrorCode::kBusy; break;
    case SQLITE_CORRUPT: case SQLITE_NOTADB: code = ErrorCode::kCorrupt; break;
    case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_CANTOPEN: code = ErrorCode::kIo; break;
    default: break;
  }
  std::string message = what + ": " + sqlite3_errmsg(db);
  // A full disk often surfaces as a generic I/O error (the WAL or its index cannot be created):
  // say so, since the fix is the user's.
  if (code == ErrorCode::kIo) {
    const char* file = sqlite3_db_filename(db, "main");
    struct statvfs st {};
    if (file && *file &&
        ::statvfs(std::filesystem::path(file).parent_path().c_str(), &st) == 0 &&
        static_cast<unsigned long long>(st.f_bavail) * st.f_frsize < (1ull << 20))
      message += " (the file system holding " + std::filesystem::path(file).parent_path().string() +
                 " is full: free some space and run the command again; SQLite keeps every "
                 "committed transaction and nothing of this one)";
  }
  return Fail(code, message);
}

// Runs SQL text that carries no values (pragmas, DDL, BEGIN/COMMIT).
inline Status Exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
    return DbFail(db, std::string("cannot run '") + sql + "'");
  return Ok();
}

// A prepared statement. Bind indexes start at 1, column indexes at 0 (as in SQLite).
class Stmt {
 public:
  static Result<Stmt> Prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK)
      return DbFail(db, std::string("cannot prepare '") + sql + "'");
    return Stmt(db, raw);
  }

  Stmt& Bind(int i, int64_t v) { return Check(sqlite3_bind_int64(stmt_.get(), i, v)); }
  Stmt& Bind(int i, double v) { return Check(sqlite3_bind_double(stmt_.get(), i, v)); }
  Stmt& Bind(int i, std::string_view v) {
    return Check(sqlite3_bind_text64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8));
  }
  Stmt& BindBlob(int i, std::span<const uint8_t> v) {
    return Check(sqlite3_bind_blob64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT));
  }
  Stmt& BindNull(int i) { return Check(sqlite3_bind_null(stmt_.get(), i)); }

  // Advances; true when a row is available, false when done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return Fail(ErrorCode::kInternal, "cannot bind a parameter");
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return DbFail(db_, std::string("cannot run '") + sqlite3_sql(stmt_.get()) + "'");
  }
  // Steps a statement that returns no rows.
  Status Run() {
    FS_ASSIGN(bool row, Step());
    if (row) return Fail(ErrorCode::kInternal, "statement unexpectedly returned a row");
    return Ok();
  }
  // Makes the statement reusable with fresh bindings.
  void Reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
    bind_rc_ = SQLITE_OK;
  }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  double Double(int col) const { return sqlite3_column_double(stmt_.get(), col); }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_.get(), col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)))
             : std::string();
  }
  std::span<const uint8_t> Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_.get(), col);
    return {static_cast<const uint8_t*>(p),
            p ? static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)) : 0};
  }

 private:
  struct Finalize {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), stmt_(s) {}
  Stmt& Check(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
  int bind_rc_ = SQLITE_OK;
};

// The first column of the first row of a query that takes no parameters.
inline Result<int64_t> QueryInt(sqlite3* db, const char* sql) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db, sql));
  FS_ASSIGN(bool row, stmt.Step());
  if (!row) return Fail(ErrorCode::kInternal, std::string("no row from '") + sql + "'");
  return stmt.Int(0);
}

// A transaction rolled back on destruction unless committed. Write transactions must be
// immediate (BEGIN IMMEDIATE takes the write lock up front, so busy_timeout applies).
class Transaction {
 public:
  static Result<Transaction> Begin(sqlite3* db, bool immediate) {
    FS_TRY(Exec(db, immediate ? "BEGIN IMMEDIATE" : "BEGIN"));
    return Transaction(db);
  }
  Transaction(Transaction&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    if (db_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status Commit() {
    FS_TRY(Exec(db_, "COMMIT"));
    db_ = nullptr;
    return Ok();
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// Whether the database has a table of this name (an older schema opened read-only may not).
inline Result<bool> HasTable(sqlite3* db, const char* name) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"));
  stmt.Bind(1, std::string_view(name));
  FS_ASSIGN(bool row, stmt.Step());
  return row && stmt.Int(0) > 0;
}

}  // namespace facesearch::sqlite
