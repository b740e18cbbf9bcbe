#include "common/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace facesearch {
namespace fs = std::filesystem;

namespace {

std::unexpected<Error> ErrnoFail(ErrorCode code, const std::string& what, const fs::path& path,
                                 int err) {
  return Fail(code, what + " " + path.string() + ": " + std::strerror(err));
}

// Closes a descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status FsyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoFail(ErrorCode::kIo, "cannot open directory", dir, errno);
  FdGuard guard(fd);
  if (::fsync(fd) != 0) return ErrnoFail(ErrorCode::kIo, "cannot fsync directory", dir, errno);
  return Ok();
}

}  // namespace

Status EnsurePrivateDir(const fs::path& dir) {
  if (dir.empty()) return Fail(ErrorCode::kIo, "empty directory path");
  fs::path prefix;
  for (const fs::path& part : dir.lexically_normal()) {
    prefix /= part;
    if (part.empty() || part == prefix.root_path()) continue;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      // mkdir applies the umask, which can only remove bits; set the mode exactly.
      if (::chmod(prefix.c_str(), 0700) != 0)
        return ErrnoFail(ErrorCode::kIo, "cannot chmod", prefix, errno);
    } else if (errno != EEXIST) {
      return ErrnoFail(ErrorCode::kIo, "cannot create directory", prefix, errno);
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return ErrnoFail(ErrorCode::kIo, "cannot stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) return Fail(ErrorCode::kIo, dir.string() + " is not a directory");
  return Ok();
}

Result<int> OpenRegularFile(const fs::path& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever. Regular files ignore it.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return ErrnoFail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "cannot open", path,
                     err);
  }
  FdGuard guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoFail(ErrorCode::kIo, "cannot stat", path, errno);
  if (!S_ISREG(st.st_mode))
    return Fail(ErrorCode::kIo, ErrorReason::kNotRegularFile, path.string() +
                                    " is not a regular file (a FIFO, socket, device or directory): "
                                    "not read");
  return guard.release();
}

Result<std::string> ReadFile(const fs::path& path, size_t max_bytes) {
  FS_ASSIGN(const int fd, OpenRegularFile(path));
  FdGuard guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoFail(ErrorCode::kIo, "cannot stat", path, errno);
  auto too_large = [&] {
    return Fail(ErrorCode::kDecode, ErrorReason::kTooLarge, path.string() + " is larger than the limit of " +
                                        std::to_string(max_bytes) + " bytes");
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_large();

  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t used = 0;
  for (;;) {
    // The file may grow while we read it: keep going until EOF, never past max_bytes + 1.
    if (used == data.size()) {
      if (data.size() > max_bytes) return too_large();
      data.resize(std::min(max_bytes + 1, std::max<size_t>(data.size() * 2, 4096)));
    }
    ssize_t n = ::read(fd, data.data() + used, data.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoFail(ErrorCode::kIo, "cannot read", path, errno);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (used > max_bytes) return too_large();
  data.resize(used);
  return data;
}

Status WriteFileAtomic(const fs::path& path, std::string_view data) {
  return WriteFileAtomic(path, std::span<const std::string_view>(&data, 1));
}

Status WriteFileAtomic(const fs::path& path, std::span<const std::string_view> parts) {
  FS_ASSIGN(AtomicFileWriter writer, AtomicFileWriter::Create(path));
  uint64_t at = 0;
  for (std::string_view data : parts) {
    FS_TRY(writer.WriteAt(at, data));
    at += data.size();
  }
  return writer.Commit();
}

Result<AtomicFileWriter> AtomicFileWriter::Create(const fs::path& path) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoFail(ErrorCode::kIo, "cannot create", tmp, errno);
  AtomicFileWriter writer(path, tmp, fd);
  // A stale temp file left by a crashed process of the same pid may have another mode.
  if (::fchmod(fd, 0600) != 0) return ErrnoFail(ErrorCode::kIo, "cannot chmod", tmp, errno);
  return writer;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)), tmp_(std::move(other.tmp_)), fd_(std::exchange(other.fd_, -1)) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

Status AtomicFileWriter::WriteAt(uint64_t offset, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoFail(ErrorCode::kIo, "cannot write", tmp_, errno);
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Ok();
}

Status AtomicFileWriter::Commit() {
  if (::fsync(fd_) != 0) return ErrnoFail(ErrorCode::kIo, "cannot fsync", tmp_, errno);
  // close() can report a deferred write error (NFS, quota): it must be checked.
  const int closed = ::close(std::exchange(fd_, -1));
  if (closed != 0 || ::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    return ErrnoFail(ErrorCode::kIo, closed != 0 ? "cannot close" : "cannot rename over",
                     closed != 0 ? tmp_ : path_, err);
  }
  // Make the rename itself durable. If this fails the new content is in place but may not survive
  // a power loss; the error is still reported.
  const fs::path dir = path_.parent_path();
  return FsyncDir(dir.empty() ? fs::path(".") : dir);
}

Result<FileLock> FileLock::Acquire(const fs::path& path, bool exclusive, bool wait) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoFail(ErrorCode::kIo, "cannot open lock file", path, errno);
  FdGuard guard(fd);
  const int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  while (::flock(fd, op) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      return Fail(ErrorCode::kBusy, "another facesearch process is using the corpus (lock " +
                                        path.string() + "); wait for it to finish");
    return ErrnoFail(ErrorCode::kIo, "cannot lock", path, errno);
  }
  return FileLock(guard.release());
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

// Closing the descriptor releases the flock.
FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace facesearch
