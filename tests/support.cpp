#include "support.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "common/fs.h"

extern char** environ;

namespace facesearch::test {
namespace fs = std::filesystem;

namespace {
fs::path CacheHome() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x);
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : "/tmp") / ".cache";
}
}  // namespace

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() / ("facesearch-test-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      // Private, as a user's working folder for biometric output must be (query --html refuses
      // a folder others can list); tests that need a shared one loosen a subfolder.
      fs::permissions(p, fs::perms::owner_all, ec);
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path TestImage(const std::string& name) {
  fs::path dir;
  if (const char* d = std::getenv("FACESEARCH_TEST_IMAGES"); d && *d) {
    dir = d;
  } else {
    dir = CacheHome() / "facesearch" / "test-images";
  }
  fs::path p = dir / name;
  if (!fs::exists(p)) FAIL("test image " << p << " missing: run scripts/fetch-test-images.sh");
  return p;
}

RgbImage DecodeTestImage(const std::string& name) {
  auto bytes = ReadFile(TestImage(name), size_t{1} << 30);
  REQUIRE(bytes);
  auto image = DecodeImage(*bytes, DecodeLimits{});
  REQUIRE(image);
  return std::move(*image);
}

void SkipOrFailInCi(const std::string& prerequisite, const std::string& why) {
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true")
    FAIL("CI=true, and this test needs " << prerequisite << ", which is missing: " << why);
  WARN("SKIPPED: this test needs " << prerequisite << ", which is missing: " << why
                                   << " (under CI=true this fails)");
}

fs::path ModelsDir() {
  if (const char* d = std::getenv("FACESEARCH_MODELS"); d && *d) return d;
  return CacheHome() / "facesearch" / "models";
}

fs::path CopyTestImage(const std::string& name, const fs::path& dir, const std::string& new_name) {
  fs::path dst = dir / (new_name.empty() ? name : new_name);
  fs::create_directories(dst.parent_path());
  fs::copy_file(TestImage(name), dst, fs::copy_options::overwrite_existing);
  return dst;
}

RunResult RunFacesearch(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv = {FACESEARCH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, input);
}

std::string FacesearchBinary() { return FACESEARCH_BINARY; }

RunResult RunProgram(const std::vector<std::string>& args, const std::string& input) {
  signal(SIGPIPE, SIG_IGN);  // a child that exits without reading stdin must not kill the test
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) || pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC))
    throw std::runtime_error("pipe failed");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

  std::vector<std::string> argv_storage = args;
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv_storage.at(0).c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) throw std::runtime_error("posix_spawn failed");

  // Feed stdin and drain stdout/stderr together so that neither side can block the other.
  RunResult result;
  size_t written = 0;
  if (input.empty()) {
    close(in_pipe[1]);
    in_pipe[1] = -1;
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open || in_pipe[1] >= 0) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) { fds[n] = {out_pipe[0], POLLIN, 0}; out_i = n++; }
    if (err_open) { fds[n] = {err_pipe[0], POLLIN, 0}; err_i = n++; }
    if (in_pipe[1] >= 0) { fds[n] = {in_pipe[1], POLLOUT, 0}; in_i = n++; }
    if (poll(fds, n, -1) < 0) continue;
    auto drain = [&](int idx, int fd, bool& open, std::string& sink) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) sink.append(buf, static_cast<size_t>(r));
      else open = false;
    };
    drain(out_i, out_pipe[0], out_open, result.out);
    drain(err_i, err_pipe[0], err_open, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = (fds[in_i].revents & POLLOUT)
                      ? write(in_pipe[1], input.data() + written, input.size() - written)
                      : -1;
      if (w > 0) written += static_cast<size_t>(w);
      if (w <= 0 || written == input.size()) {
        close(in_pipe[1]);
        in_pipe[1] = -1;
      }
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> CorpusDir::Args(std::vector<std::string> rest) const {
  std::vector<std::string> a = {"--corpus", corpus.string(), "--models", ModelsDir().string()};
  a.insert(a.end(), rest.begin(), rest.end());
  return a;
}

RunResult CorpusDir::Run(std::vector<std::string> rest, const std::string& input) const {
  return RunFacesearch(Args(std::move(rest)), input);
}

void CorpusDir::Index(std::initializer_list<const char*> names) {
  for (const char* name : names) CopyTestImage(name, photos);
  RunResult r = Run({"index", photos.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
}

RunResult RunWithModels(std::vector<std::string> args, const std::string& input) {
  args.insert(args.begin(), {"--models", ModelsDir().string()});
  return RunFacesearch(args, input);
}

Json CorpusDir::RunJson(std::vector<std::string> rest, int want_exit) const {
  RunResult r = Run(std::move(rest));
  INFO(r.err);
  REQUIRE(r.exit_code == want_exit);
  return ParseJson(r.out);
}

void ExecSql(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(raw);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace facesearch::test
