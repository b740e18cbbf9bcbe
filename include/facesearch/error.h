// facesearch — one error type for the whole library.
//
// Every fallible function returns Result<T> (or Status for no value). Third-party exceptions
// (OpenCV, dlib, FAISS) are caught in the adapter that calls them and turned into an Error here;
// exceptions never cross a module boundary. The CLI maps Error to exit code 2.
//
// Callers branch on `code` and, where they must tell failures of one code apart, on `reason`; never
// on `message`, which is for people and may be reworded (or name a file whose path contains any text).
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

// Why, finer than the code, for the failures that callers act on differently: ingest's per-file
// reason codes (info --errors) and the index loader. Set where the failure is detected; an error
// passed on with FS_TRY / FS_ASSIGN keeps it, one re-worded into a new Error does not.
enum class ErrorReason {
  kUnspecified,     // nothing finer than the code
  kNotRegularFile,  // kIo: a FIFO, socket, device or directory where a file was expected (fs.h)
  kTooLarge,        // kDecode: more bytes than the caller's limit (ReadFile, DecodeImage)
  kPixelCap,        // kDecode: more pixels than the limit, by the header or by the decoder
  kTruncated,       // kDecode: the file ends before its image data does
  kNotImage,        // kDecode: not an image format facesearch accepts
  kNotVideo,        // kDecode: a video file's first bytes are no container facesearch accepts
  kNoFrames,        // kDecode: a video of which no frame could be decoded
  kTooLong,         // kDecode: a video longer than the duration limit
  kTimeBudget,      // kDecode: a video whose decoding ran past its time budget
  kInterrupted,     // kInternal: the run was asked to stop (SIGINT/SIGTERM) during the work
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;  // one sentence a user can act on; names the fix where there is one
  ErrorReason reason = ErrorReason::kUnspecified;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

inline std::unexpected<Error> Fail(ErrorCode code, ErrorReason reason, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message), reason});
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
