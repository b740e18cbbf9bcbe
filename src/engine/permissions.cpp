// Private-by-default checks (corpus and output file modes) and the duration/time parsers of the
// privacy commands (facesearch/privacy.h).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>

#include "common/time.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Adds a problem for `path` when it grants group/other bits or belongs to another user.
void Inspect(const fs::path& path, bool directory, std::vector<std::string>& problems) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // absent files are fine
  if (S_ISLNK(st.st_mode)) {
    problems.push_back(path.string() + " is a symbolic link");
    return;
  }
  if (st.st_uid != ::geteuid())
    problems.push_back(path.string() + " belongs to another user (uid " + std::to_string(st.st_uid) + ")");
  if (st.st_mode & 077)
    problems.push_back(path.string() + " has mode " + Octal(st.st_mode) + " (chmod " +
                       (directory ? "700" : "600") + " " + path.string() + ")");
}

}  // namespace

std::vector<std::string> CorpusPermissionProblems(const CorpusConfig& config) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  std::error_code ec;
  std::vector<std::string> problems;
  if (!fs::exists(paths.database, ec)) return problems;
  Inspect(paths.dir, true, problems);
  for (const fs::path& dir : {paths.dir, paths.index_dir}) {
    if (dir != paths.dir) Inspect(dir, true, problems);
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (!it->is_directory(ec)) Inspect(it->path(), false, problems);
    ec.clear();
  }
  return problems;
}

Status CheckCorpusPermissions(const CorpusConfig& config) {
  const std::vector<std::string> problems = CorpusPermissionProblems(config);
  if (problems.empty()) return Ok();
  if (config.strict_permissions) {
    std::string all;
    for (const auto& p : problems) {
      if (!all.empty()) all += "; ";
      all += p;
    }
    return Fail(ErrorCode::kInvalidArgument,
                "refusing to use the corpus (--strict-permissions): it holds biometric data but " +
                    all);
  }
  for (const auto& p : problems)
    spdlog::warn("the corpus holds biometric data but is accessible to group or others: {}", p);
  return Ok();
}

Result<int> CreatePrivateOutputFile(const fs::path& path) {
  auto refuse = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument, "refusing to write biometric data to " + path.string() + ": " + why +
                                                 "; choose a private directory (chmod 700)");
  };
  fs::path dir = fs::absolute(path).parent_path();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return Fail(ErrorCode::kIo, "cannot use directory " + dir.string() + ": " + std::strerror(errno));
  // Where others can write, they can plant a link or a file under the name first (and a sticky bit
  // only stops them deleting ours); where they can list, they learn the names.
  if (st.st_mode & 006 || st.st_mode & 020)
    return refuse("its directory " + dir.string() + " has mode " + Octal(st.st_mode) +
                  ", so other users can list or change its files");
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) return refuse("it is a symbolic link");
    if (!S_ISREG(st.st_mode)) return refuse("it is not a regular file");
    if (st.st_uid != ::geteuid()) return refuse("the existing file belongs to another user");
    if (st.st_mode & 077) return refuse("the existing file has mode " + Octal(st.st_mode));
    // An earlier output of ours: replaced by a new file, never written through (it may have
    // other hard links).
    if (::unlink(path.c_str()) != 0)
      return Fail(ErrorCode::kIo, "cannot replace " + path.string() + ": " + std::strerror(errno));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(ErrorCode::kIo, "cannot create " + path.string() + ": " + std::strerror(errno));
  if (::fchmod(fd, 0600) != 0) {  // the umask may have removed bits we want
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return Fail(ErrorCode::kIo, "cannot chmod 600 " + path.string() + ": " + std::strerror(err));
  }
  return fd;
}

Status WritePrivateOutputFile(const fs::path& path, std::string_view data) {
  FS_ASSIGN(int fd, CreatePrivateOutputFile(path));
  int err = 0;
  for (std::string_view rest = data; err == 0 && !rest.empty();) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno != EINTR) err = errno;
    if (n > 0) rest.remove_prefix(static_cast<size_t>(n));
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;  // a deferred write error (NFS, quota)
  if (err == 0) return Ok();
  ::unlink(path.c_str());
  return Fail(ErrorCode::kIo, "cannot write " + path.string() + ": " + std::strerror(err));
}

Result<int64_t> ParseDuration(std::string_view text) {
  auto bad = [&] {
    std::string message(text);
    message += " is not a duration; use a number and a unit: 90s, 45m, 12h, 30d or 2w";
    return Fail(ErrorCode::kInvalidArgument, message);
  };
  if (text.size() < 2) return bad();
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
  if (ec != std::errc() || end != text.data() + text.size() - 1 || n < 0) return bad();
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return bad();
  }
  if (n > INT64_MAX / unit) return bad();
  return n * unit;
}

Result<std::string> ParseTimeBound(std::string_view text, bool end_of_day) {
  if (auto seconds = ParseDuration(text)) return IsoUtc(std::time(nullptr) - *seconds);
  std::tm tm{};
  const std::string s(text);
  const char* end = nullptr;
  if (s.size() == 10 && (end = strptime(s.c_str(), "%Y-%m-%d", &tm)) && *end == '\0')
    return s + (end_of_day ? "T23:59:59Z" : "T00:00:00Z");
  tm = {};
  if ((end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) && *end == '\0') return IsoUtc(timegm(&tm));
  return Fail(ErrorCode::kInvalidArgument, "'" + s + "' is not a time: use 2025-02-03, "
                                               "2025-02-03T04:05:06Z or a duration ago such as 7d");
}

}  // namespace facesearch
