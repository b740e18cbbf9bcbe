// File-system helpers: atomic replacement, private modes, size-capped reads and flock exclusivity.
#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "common/sha256.h"
#include "support.h"

using facesearch::ErrorCode;
using facesearch::FileLock;
namespace fs = std::filesystem;

namespace {
unsigned Mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::vector<std::string> Names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}
}  // namespace

TEST_CASE("WriteFileAtomic creates a 0600 file with exactly the given bytes", "[fs]") {
  facesearch::test::TempDir dir;
  const std::string data("bytes\0with nul", 14);
  REQUIRE(facesearch::WriteFileAtomic(dir / "f", data));
  auto read = facesearch::ReadFile(dir / "f", 1024);
  REQUIRE(read);
  CHECK(*read == data);
  CHECK(Mode(dir / "f") == 0600);
}

TEST_CASE("WriteFileAtomic replaces content and leaves no temp file behind", "[fs]") {
  facesearch::test::TempDir dir;
  std::ofstream(dir / "f") << "a much longer original content";
  fs::permissions(dir / "f", fs::perms(0644));
  REQUIRE(facesearch::WriteFileAtomic(dir / "f", "new"));
  CHECK(*facesearch::ReadFile(dir / "f", 1024) == "new");
  CHECK(Mode(dir / "f") == 0600);
  CHECK(Names(dir.path()) == std::vector<std::string>{"f"});
}

TEST_CASE("WriteFileAtomic failing to rename leaves the target and no temp file", "[fs]") {
  facesearch::test::TempDir dir;
  fs::create_directory(dir / "target");  // rename(2) of a file over a directory fails
  std::ofstream(dir / "target" / "keep") << "x";
  auto s = facesearch::WriteFileAtomic(dir / "target", "data");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::kIo);
  CHECK(fs::is_directory(dir / "target"));
  CHECK(Names(dir.path()) == std::vector<std::string>{"target"});
}

TEST_CASE("WriteFileAtomic into a missing directory fails with kIo", "[fs]") {
  facesearch::test::TempDir dir;
  auto s = facesearch::WriteFileAtomic(dir / "missing" / "f", "data");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::kIo);
}

TEST_CASE("EnsurePrivateDir creates every missing level 0700 and leaves an existing dir's mode alone",
          "[fs][hostile]") {
  facesearch::test::TempDir dir;
  REQUIRE(facesearch::EnsurePrivateDir(dir / "a/b/c"));
  CHECK(Mode(dir / "a") == 0700);
  CHECK(Mode(dir / "a/b") == 0700);
  CHECK(Mode(dir / "a/b/c") == 0700);

  fs::create_directory(dir / "sticky");
  fs::permissions(dir / "sticky", fs::perms(01777));
  REQUIRE(facesearch::EnsurePrivateDir(dir / "sticky"));
  CHECK(Mode(dir / "sticky") == 01777);
  REQUIRE(facesearch::EnsurePrivateDir(dir / "sticky" / "new"));
  CHECK(Mode(dir / "sticky") == 01777);
  CHECK(Mode(dir / "sticky" / "new") == 0700);
}

TEST_CASE("EnsurePrivateDir refuses a path that is a regular file", "[fs]") {
  facesearch::test::TempDir dir;
  std::ofstream(dir / "file") << "x";
  auto s = facesearch::EnsurePrivateDir(dir / "file");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::kIo);
  CHECK_FALSE(facesearch::EnsurePrivateDir(dir / "file" / "sub"));
}

TEST_CASE("ReadFile accepts a file of exactly max_bytes and refuses one byte more", "[fs]") {
  facesearch::test::TempDir dir;
  std::ofstream(dir / "f") << std::string(100, 'x');
  auto ok = facesearch::ReadFile(dir / "f", 100);
  REQUIRE(ok);
  CHECK(ok->size() == 100);
  auto big = facesearch::ReadFile(dir / "f", 99);
  REQUIRE_FALSE(big);
  CHECK(big.error().code == ErrorCode::kDecode);
  CHECK_THAT(big.error().message, Catch::Contains("99 bytes"));
}

TEST_CASE("ReadFile reports missing files as kNotFound and directories as kIo", "[fs]") {
  facesearch::test::TempDir dir;
  auto missing = facesearch::ReadFile(dir / "absent", 10);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kNotFound);
  auto directory = facesearch::ReadFile(dir.path(), 10);
  REQUIRE_FALSE(directory);
  CHECK(directory.error().code == ErrorCode::kIo);
  auto empty_path = dir / "empty";
  std::ofstream(empty_path).close();
  auto empty = facesearch::ReadFile(empty_path, 0);
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("FileLock: a second exclusive Acquire fails with kBusy until the first is released",
          "[fs]") {
  facesearch::test::TempDir dir;
  const fs::path path = dir / "lock";
  {
    auto first = FileLock::Acquire(path, /*exclusive=*/true, /*wait=*/false);
    REQUIRE(first);
    CHECK(Mode(path) == 0600);
    auto second = FileLock::Acquire(path, true, false);
    REQUIRE_FALSE(second);
    CHECK(second.error().code == ErrorCode::kBusy);
    auto shared = FileLock::Acquire(path, false, false);
    REQUIRE_FALSE(shared);
    CHECK(shared.error().code == ErrorCode::kBusy);

    FileLock moved = std::move(*first);  // the lock follows the object, not the moved-from shell
    CHECK_FALSE(FileLock::Acquire(path, true, false));
  }
  CHECK(FileLock::Acquire(path, true, false));
}

TEST_CASE("FileLock: shared locks coexist but exclude an exclusive one", "[fs]") {
  facesearch::test::TempDir dir;
  auto a = FileLock::Acquire(dir / "lock", false, false);
  auto b = FileLock::Acquire(dir / "lock", false, false);
  REQUIRE(a);
  REQUIRE(b);
  auto exclusive = FileLock::Acquire(dir / "lock", true, false);
  REQUIRE_FALSE(exclusive);
  CHECK(exclusive.error().code == ErrorCode::kBusy);
}

TEST_CASE("FileLock with wait blocks until the holder releases the lock", "[fs]") {
  facesearch::test::TempDir dir;
  auto held = FileLock::Acquire(dir / "lock", true, false);
  REQUIRE(held);
  std::atomic<bool> released{false};
  std::thread holder([&, lock = std::move(*held)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    released = true;
    FileLock drop = std::move(lock);
  });
  auto waited = FileLock::Acquire(dir / "lock", true, /*wait=*/true);
  CHECK(waited);
  CHECK(released);
  holder.join();
}

TEST_CASE("ReadFile and Sha256File refuse a FIFO at once instead of waiting for a writer",
          "[fs][hostile]") {
  facesearch::test::TempDir dir;
  const fs::path fifo = dir / "photo.jpg";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto read = std::async(std::launch::async, [&] { return facesearch::ReadFile(fifo, 1 << 20); });
  auto hash = std::async(std::launch::async, [&] { return facesearch::Sha256File(fifo); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  const bool answered = read.wait_until(deadline) == std::future_status::ready &&
                        hash.wait_until(deadline) == std::future_status::ready;
  if (!answered) {  // unblock the readers so that the test can end, then fail
    for (int i = 0; i < 2; ++i) ::close(::open(fifo.c_str(), O_WRONLY));
  }
  REQUIRE(answered);
  auto r = read.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kIo);
  CHECK_THAT(r.error().message, Catch::Contains("not a regular file"));
  auto h = hash.get();
  REQUIRE_FALSE(h);
  CHECK_THAT(h.error().message, Catch::Contains("not a regular file"));
}

TEST_CASE("ReadFile's error reasons come from what it found, not from the text of the path",
          "[fs][hostile]") {
  facesearch::test::TempDir dir;
  // A directory whose name reads like the other reasons' messages: callers must not be misled.
  const fs::path odd = dir / "truncated not an image larger than";
  fs::create_directories(odd);
  const fs::path fifo = odd / "pixel limit.jpg";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::ofstream(odd / "big.jpg") << std::string(100, 'x');

  auto from_fifo = facesearch::ReadFile(fifo, 1 << 20);
  REQUIRE_FALSE(from_fifo);
  CHECK(from_fifo.error().reason == facesearch::ErrorReason::kNotRegularFile);
  auto big = facesearch::ReadFile(odd / "big.jpg", 99);
  REQUIRE_FALSE(big);
  CHECK(big.error().reason == facesearch::ErrorReason::kTooLarge);
  auto missing = facesearch::ReadFile(odd / "absent.jpg", 99);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().reason == facesearch::ErrorReason::kUnspecified);
}
