// facesearch — one error type for the whole library.
//
// Every fallible function returns Result<T> (or Status for no value). Third-party exceptions
// (OpenCV, dlib, FAISS) are caught in the adapter that calls them and turned into an Error here;
// exceptions never cross a module boundary. The CLI maps Error to exit code 2.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace facesearch {

enum class ErrorCode {
  kInvalidArgument,  // the caller asked for something malformed (bad option, bad path)
  kNotFound,         // a file or record that should exist does not
  kIo,               // the operating system refused a read/write/rename/fsync
  kDecode,           // an input image is corrupt, truncated, too large or of a refused type
  kCorrupt,          // a file we wrote fails its checksum or structure check
  kModel,            // a model file is missing or is not the pinned one
  kDatabase,         // SQLite reported an error
  kIndex,            // FAISS reported an error
  kMismatch,         // corpus built with other models / newer schema
  kBusy,             // another process holds the corpus lock
  kInternal,         // a bug: an invariant did not hold
};

const char* ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // one sentence a user can act on; names the fix where there is one
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

inline Status Ok() { return {}; }

}  // namespace facesearch

// Propagates an error out of the enclosing function, which must return Result<...> or Status.
// FS_TRY(expr) for Status-returning expressions; FS_ASSIGN(var, expr) to bind a Result's value.
#define FS_TRY(expr)                                                  \
  do {                                                                \
    auto fs_try_result_ = (expr);                                     \
    if (!fs_try_result_) return std::unexpected(fs_try_result_.error()); \
  } while (0)

#define FS_CONCAT_INNER(a, b) a##b
#define FS_CONCAT(a, b) FS_CONCAT_INNER(a, b)
#define FS_ASSIGN(var, expr) FS_ASSIGN_IMPL(FS_CONCAT(fs_assign_, __LINE__), var, expr)
#define FS_ASSIGN_IMPL(tmp, var, expr)                       \
  auto tmp = (expr);                                         \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  var = std::move(*tmp)
