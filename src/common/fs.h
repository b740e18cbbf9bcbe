// File-system helpers with the durability and privacy rules the corpus needs.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "facesearch/error.h"

namespace facesearch {

// Creates `dir` (and parents) if missing, with mode 0700 for every directory this call creates.
// An existing directory keeps its mode: it may be shared (a sticky /tmp), and whoever needs it
// private checks it (CheckCorpusPermissions). Errors: kIo (also when `dir` is not a directory).
Status EnsurePrivateDir(const std::filesystem::path& dir);

// Opens `path` read-only for an input: without blocking (a FIFO with no writer, a device), and
// refused unless the opened descriptor is a regular file, so that a file swapped for a FIFO after
// a directory walk is caught too. Symbolic links are followed. Returns the descriptor; the caller
// closes it. Errors: kNotFound, kIo (a non-regular file: reason kNotRegularFile).
Result<int> OpenRegularFile(const std::filesystem::path& path);

// Reads a whole regular file (OpenRegularFile). Refuses files larger than max_bytes (kDecode,
// reason kTooLarge; the message names the limit). Errors: kNotFound, kIo, kDecode.
Result<std::string> ReadFile(const std::filesystem::path& path, size_t max_bytes);

// Atomically replaces `path` with `data`: writes `path.tmp.<pid>` (mode 0600) in the same
// directory, fsyncs it, checks close(), renames over `path`, then fsyncs the directory. On any
// failure the temp file is removed and `path` is untouched, except when only the final directory
// fsync fails: the new content is then in place but may not survive a power loss. Writers of one
// path must be serialised (the temp name is per process). Errors: kIo.
Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data);
// The same for `parts` written one after the other (no copy into one buffer).
Status WriteFileAtomic(const std::filesystem::path& path, std::span<const std::string_view> parts);

// WriteFileAtomic for a file too large to hold: written piece by piece, at any offset, into
// `path.tmp.<pid>` (mode 0600), then Commit fsyncs, closes, renames over `path` and fsyncs the
// directory. Destroyed without a successful Commit, it removes the temp file and `path` is
// untouched. Errors: kIo.
class AtomicFileWriter {
 public:
  static Result<AtomicFileWriter> Create(const std::filesystem::path& path);
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();
  // Writes `data` at `offset` (pwrite; the file grows as needed).
  Status WriteAt(uint64_t offset, std::string_view data);
  Status Commit();

 private:
  AtomicFileWriter(std::filesystem::path path, std::filesystem::path tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::filesystem::path path_, tmp_;
  int fd_ = -1;
};

// An advisory exclusive lock (flock) on `path` held for the object's lifetime; the lock file is
// created 0600. Used so that only one writer changes a corpus at a time.
class FileLock {
 public:
  // Blocks until the lock is acquired when wait is true; otherwise fails with kBusy at once.
  static Result<FileLock> Acquire(const std::filesystem::path& path, bool exclusive, bool wait);
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace facesearch
