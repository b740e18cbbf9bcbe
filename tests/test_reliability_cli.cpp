// Reliability end to end: `verify` on corpora damaged in every way we know, untrusted index files,
// concurrent readers and writers, and resource faults (read-only and full file systems, missing or
// truncated models, oversized images). The real binary on real photos and a real corpus; damage is
// done the way it happens (deleting files, editing SQLite behind facesearch's back, chmod, mounts).
#include <sqlite3.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <thread>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

struct Corpus : CorpusDir {
  Json Verify(int expected_exit, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"verify", "--format", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Run(args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == expected_exit);
    return ParseJson(r.out);
  }
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Overwrite(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// The problems of a verify report as "check: message" lines.
std::vector<std::string> Problems(const Json& report) {
  std::vector<std::string> out;
  for (size_t i = 0; i < report["problems"].size(); ++i)
    out.push_back(report["problems"][i]["check"].str() + ": " + report["problems"][i]["message"].str());
  return out;
}

bool AnyContains(const std::vector<std::string>& lines, const std::string& what) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(what) != std::string::npos; });
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// A bash script run in a private mount namespace (`unshare -m`): its mounts vanish with it, even if
// the test dies. Each Facesearch() call records that command's output in `results`.
class MountNamespaceScript {
 public:
  explicit MountNamespaceScript(fs::path results) : results_(std::move(results)) {
    fs::create_directories(results_);
  }
  void Shell(const std::string& line) { text_ += line + "\n"; }
  void Facesearch(const std::vector<std::string>& args) {
    std::string line = Quote(FacesearchBinary());
    for (const auto& a : args) line += " " + Quote(a);
    const std::string base = Quote((results_ / std::to_string(count_)).string());
    text_.append(line).append(" >").append(base).append(".out 2>").append(base);
    text_.append(".err; echo $? >").append(base).append(".rc\n");
    ++count_;
  }
  // Runs the script; returns each Facesearch() command's result in order.
  std::vector<RunResult> Run() {
    RunResult r = RunProgram({"unshare", "-m", "bash", "-c", "set -u\n" + text_});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<RunResult> out;
    for (int i = 0; i < count_; ++i) {
      const fs::path base = results_ / std::to_string(i);
      RunResult one;
      one.out = Slurp(base.string() + ".out");
      one.err = Slurp(base.string() + ".err");
      one.exit_code = std::stoi(Slurp(base.string() + ".rc"));
      out.push_back(one);
    }
    return out;
  }

 private:
  fs::path results_;
  std::string text_;
  int count_ = 0;
};

// True when this machine lets us mount (root with CAP_SYS_ADMIN, as in our CI containers).
bool CanMount(const fs::path& scratch) {
  fs::create_directories(scratch);
  return RunProgram({"unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", scratch.string()})
             .exit_code == 0;
}

// Writes `n` distinct JPEG variants (scaled copies) of the test photos into `dir`.
void WriteVariants(const fs::path& dir, int n, int seed) {
  fs::create_directories(dir);
  const char* bases[] = {"obama.jpg", "obama2.jpg", "biden.jpg"};
  for (int i = 0; i < n; ++i) {
    cv::Mat img = cv::imread(TestImage(bases[i % 3]).string());
    REQUIRE_FALSE(img.empty());
    cv::Mat scaled;
    const double f = 0.6 + 0.01 * i + 0.001 * seed;  // distinct sizes, so distinct content
    cv::resize(img, scaled, cv::Size(), f, f, cv::INTER_AREA);
    std::string name = "v";
    name.append(std::to_string(seed)).append("_").append(std::to_string(i)).append(".jpg");
    REQUIRE(cv::imwrite((dir / name).string(), scaled));
  }
}

// True while some process holds an exclusive flock on `lock`.
bool Locked(const fs::path& lock) {
  const int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool busy = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);  // releases the lock if we got it
  return busy;
}

// A facesearch run whose stdin is a pipe that the test keeps open until Finish().
class RunWithOpenStdin {
 public:
  explicit RunWithOpenStdin(const std::vector<std::string>& args, const fs::path& scratch) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    stdin_ = fds[1];
    out_ = scratch.string() + ".out";
    err_ = scratch.string() + ".err";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> argv_s = {FacesearchBinary()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[0]);
    REQUIRE(rc == 0);
  }
  ~RunWithOpenStdin() {
    if (stdin_ >= 0) ::close(stdin_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  // True once the process sits in read(2) on its stdin (x86-64 syscall 0 on fd 0, or a pipe wait).
  bool BlockedOnStdin() const {
    const std::string proc = "/proc/" + std::to_string(pid_);
    return Slurp(proc + "/syscall").starts_with("0 0x0 ") ||
           Slurp(proc + "/wchan").find("pipe_read") != std::string::npos;
  }
  bool Running() const { return ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  // Writes `input`, closes stdin and waits for the exit.
  RunResult Finish(const std::string& input) {
    const bool written = ::write(stdin_, input.data(), input.size()) == static_cast<ssize_t>(input.size());
    ::close(stdin_);
    stdin_ = -1;
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    REQUIRE(written);
    return RunResult{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), Slurp(out_), Slurp(err_)};
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  std::string out_, err_;
};

// The id of the face of the image whose path ends in `name`, read from the database file directly.
int64_t FaceIdOf(const fs::path& db, const std::string& name) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, "SELECT faces.id FROM faces JOIN images ON images.id = faces.image_id "
                                  "WHERE images.path LIKE '%/' || ?", -1, &stmt, nullptr) == SQLITE_OK);
  sqlite3_bind_text(stmt, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  const bool row = sqlite3_step(stmt) == SQLITE_ROW;
  const int64_t id = row ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  REQUIRE(row);
  return id;
}

}  // namespace

TEST_CASE("verify exits 0 on a healthy corpus and 2 naming each damage, and --repair rebuilds the index from SQLite",
          "[reliability][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  REQUIRE(c.Run({"query", TestImage("obama3.jpg").string()}).exit_code == 0);  // one audit record

  Json ok = c.Verify(0);
  CHECK(ok["healthy"].boolean());
  CHECK(ok["faces"].num() == 3);
  CHECK(ok["index_vectors"].num() == 3);
  CHECK(ok["checks"].size() == 6);
  RunResult text = c.Run({"verify"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("ok: ") == 0);

  {  // a deleted index file
    fs::remove(c.index_file());
    auto problems = Problems(c.Verify(2));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("index: ") && Catch::Contains("is missing"));
    Json repaired = c.Verify(0, {"--repair"});
    REQUIRE(repaired["repairs"].size() == 1);
    CHECK_THAT(repaired["repairs"][0].str(), Catch::Contains("rebuilt the index from the database: 3 faces"));
    CHECK(fs::exists(c.index_file()));
    CHECK(c.Verify(0)["repairs"].size() == 0);
  }
  {  // the temporary file of a killed index write: a note (exit 0), removed by --repair
    const fs::path stale = c.corpus / "index" / "faces.faiss.tmp.999999";
    std::ofstream(stale) << "partial";
    fs::permissions(stale, fs::perms::owner_read | fs::perms::owner_write);
    Json noted = c.Verify(0);
    REQUIRE(noted["notes"].size() == 1);
    CHECK_THAT(noted["notes"][0]["message"].str(), Catch::Contains("interrupted index write"));
    c.Verify(0, {"--repair"});
    CHECK_FALSE(fs::exists(stale));
  }
  {  // a face row deleted behind facesearch's back
    ExecSql(c.db(), "DELETE FROM faces WHERE id = (SELECT min(id) FROM faces)");
    RunResult r = c.Run({"verify"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("problem: index: the index holds face ids with no face row") != std::string::npos);
    Json repaired = c.Verify(0, {"--repair"});
    CHECK(repaired["faces"].num() == 2);
    CHECK(repaired["index_vectors"].num() == 2);
  }
  {  // a face row added behind facesearch's back is missing from the index
    ExecSql(c.db(), "INSERT INTO faces(image_id, x, y, w, h, landmarks, det_score, embedding, added_at) "
                   "SELECT image_id, x, y, w, h, landmarks, det_score, embedding, added_at FROM faces LIMIT 1");
    CHECK(AnyContains(Problems(c.Verify(2)), "missing from the index"));
    CHECK(c.Verify(0, {"--repair"})["index_vectors"].num() == 3);
  }
  {  // a group-readable database file
    fs::permissions(c.db(), fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
    auto problems = Problems(c.Verify(2, {"--repair"}));  // --repair does not chmod
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("permissions: ") && Catch::Contains("chmod 600"));
    // SQLite gives the -wal and -shm files it creates the database file's mode, so a reader that
    // opened the corpus meanwhile has spread the problem: verify names those files too.
    for (const auto& entry : fs::directory_iterator(c.corpus))
      if (entry.is_regular_file()) fs::permissions(entry.path(), fs::perms::owner_read | fs::perms::owner_write);
    c.Verify(0);
  }
  {  // missing and truncated model files
    const fs::path models = c.dir / "models";
    fs::create_directories(models);
    RunResult missing = RunFacesearch({"--corpus", c.corpus.string(), "--models", models.string(), "verify"});
    CHECK(missing.exit_code == 2);
    CHECK(missing.out.find("problem: models: ") != std::string::npos);
    CHECK(missing.out.find("fetch-models.sh") != std::string::npos);
    for (const char* f : {"dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"})
      fs::copy_file(ModelsDir() / f, models / f);
    const fs::path resnet = models / "dlib_face_recognition_resnet_model_v1.dat";
    fs::resize_file(resnet, fs::file_size(resnet) / 2);
    RunResult truncated = RunFacesearch({"--corpus", c.corpus.string(), "--models", models.string(), "verify"});
    CHECK(truncated.exit_code == 2);
    CHECK(truncated.out.find("has SHA-256") != std::string::npos);
    // The commands that need the models fail clearly, naming the fix, and change nothing.
    RunResult query = RunFacesearch({"--corpus", c.corpus.string(), "--models", models.string(), "query",
                                     TestImage("obama3.jpg").string()});
    CHECK(query.exit_code == 2);
    CHECK(query.err.find("fetch-models.sh") != std::string::npos);
    RunResult index = RunFacesearch({"--corpus", c.corpus.string(), "--models", models.string(), "index",
                                     TestImage("obama3.jpg").string()});
    CHECK(index.exit_code == 2);
    CHECK(index.err.find("fetch-models.sh") != std::string::npos);
    CHECK(c.Verify(0)["faces"].num() == 3);
  }
  {  // an edited audit row (last: --repair cannot undo it)
    ExecSql(c.db(), "UPDATE audit SET results = '[]' WHERE seq = 1");
    Json after = c.Verify(2, {"--repair"});
    CHECK(after["repairs"].size() == 0);  // SQLite is never rewritten by --repair
    auto problems = Problems(after);
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("audit: ") && Catch::Contains("record 1"));
  }
}

TEST_CASE("Truncated, bit-flipped, foreign, random and empty index files are detected by verify and rebuilt by a query",
          "[reliability][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  const std::string good = Slurp(c.index_file());
  REQUIRE(good.size() > 200);
  // The arrays without our header (its first 128 bytes): a file of the right contents written by
  // "someone else".
  const std::string foreign = good.substr(128);

  std::vector<std::pair<std::string, std::string>> damaged;
  for (size_t keep : {size_t{0}, size_t{8}, size_t{51}, size_t{100}, good.size() / 2, good.size() - 1})
    damaged.push_back({"truncated to " + std::to_string(keep) + " bytes", good.substr(0, keep)});
  for (size_t pos : {size_t{3}, size_t{20}, size_t{60}, size_t{150}, good.size() / 2, good.size() - 2}) {
    std::string flipped = good;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x04);
    damaged.push_back({"bit flipped at byte " + std::to_string(pos), flipped});
  }
  damaged.push_back({"a foreign file", foreign});
  std::string noise(good.size(), '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  damaged.push_back({"random bytes", noise});

  for (const auto& [what, bytes] : damaged) {
    INFO(what);
    Overwrite(c.index_file(), bytes);
    auto problems = Problems(c.Verify(2));
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("index: "));
    Overwrite(c.index_file(), good);
  }
  c.Verify(0);

  // A query never loads a damaged file: it logs why, rebuilds from SQLite and answers correctly.
  for (const std::string& bytes : {foreign, good.substr(0, good.size() / 2)}) {
    Overwrite(c.index_file(), bytes);
    RunResult r = c.Run({"query", "--format", "jsonl", TestImage("obama3.jpg").string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("rebuilt the vector index from the database (3 faces)") != std::string::npos);
    CHECK(ParseJsonLines(r.out).size() == 2);
    c.Verify(0);  // the query held no competing writer, so it saved the rebuilt index
  }
}

TEST_CASE("Queries keep answering consistently while an index runs, a second writer waits with a message, and nothing is corrupted",
          "[reliability][e2e][concurrency][slow]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  const fs::path batch_a = c.dir / "batch_a", batch_b = c.dir / "batch_b";
  WriteVariants(batch_a, 12, 1);
  WriteVariants(batch_b, 3, 2);
  const fs::path lock = c.corpus / "write.lock";

  auto writer_a = std::async(std::launch::async, [&] {
    return RunFacesearch(c.Args({"index", "--jobs", "2", batch_a.string()}));
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!Locked(lock) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(writer_a.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  auto writer_b = std::async(std::launch::async, [&] {
    return RunFacesearch(c.Args({"index", "--jobs", "1", batch_b.string()}));
  });

  int queries_during = 0;
  double last_corpus_faces = 0, last_matches = 0;
  while (writer_a.wait_for(std::chrono::seconds(0)) == std::future_status::timeout) {
    // --no-collapse: the variants are copies of obama.jpg's picture, and each answer counts them all.
    RunResult q = c.Run({"query", "--format", "json", "--top-k", "100", "--no-collapse", TestImage("obama3.jpg").string()});
    INFO(q.err);
    REQUIRE(q.exit_code == 0);
    Json doc = ParseJson(q.out);
    const double corpus_faces = doc["corpus_faces"].num();
    const Json& matches = doc["results"][0]["matches"];
    std::set<std::string> names;
    for (size_t i = 0; i < matches.size(); ++i) names.insert(fs::path(matches[i]["image"].str()).filename());
    CHECK(names.count("obama.jpg") == 1);            // the committed face is always found
    CHECK(corpus_faces >= last_corpus_faces);        // each answer sees a later snapshot, never an older one
    CHECK(static_cast<double>(matches.size()) >= last_matches);
    CHECK(static_cast<double>(matches.size()) <= corpus_faces);
    last_corpus_faces = corpus_faces;
    last_matches = static_cast<double>(matches.size());
    ++queries_during;
  }
  RunResult a = writer_a.get(), b = writer_b.get();
  INFO(a.err << b.err);
  CHECK(queries_during >= 1);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(b.err.find("another facesearch process is writing") != std::string::npos);

  Json report = c.Verify(0);
  CHECK(report["notes"].size() == 0);
  Json info = ParseJson(c.Run({"info", "--json"}).out);
  CHECK(info["images"].num() == 2 + 12 + 3);
  CHECK(info["faces"].num() == report["index_vectors"].num());
}

TEST_CASE("A query waiting for its probe on stdin holds no lock: forget with --lock-wait 0 erases meanwhile",
          "[reliability][e2e][concurrency][hostile]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  RunWithOpenStdin query(c.Args({"query", "--format", "jsonl", "-"}), c.dir / "query");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!query.BlockedOnStdin() && query.Running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(query.BlockedOnStdin());

  RunResult forget = c.Run({"--lock-wait", "0", "forget", "--image", (c.photos / "biden.jpg").string()});
  INFO(forget.err);
  CHECK(forget.exit_code == 0);
  RunResult q = query.Finish(Slurp(TestImage("obama3.jpg")));
  INFO(q.err);
  CHECK(q.exit_code == 0);
  CHECK(q.out.find("obama.jpg") != std::string::npos);
  CHECK(q.out.find("biden.jpg") == std::string::npos);
}

TEST_CASE("verify compares the index's vectors with the SQLite embeddings, names a tampered face, and --repair rebuilds the index from SQLite",
          "[reliability][e2e][hostile]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  Json ok = c.Verify(0);
  CHECK(ok["vectors_compared"].num() == 3);
  const int64_t biden = FaceIdOf(c.db(), "biden.jpg"), obama2 = FaceIdOf(c.db(), "obama2.jpg");

  // Biden's face row now carries obama2's embedding: `forget --like` (SQLite) and `query` (index)
  // would disagree about who it is.
  ExecSql(c.db(), "UPDATE faces SET embedding = (SELECT embedding FROM faces WHERE id = " +
                     std::to_string(obama2) + ") WHERE id = " + std::to_string(biden));
  for (const std::vector<std::string>& extra : {std::vector<std::string>{}, std::vector<std::string>{"--full"}}) {
    Json damaged = c.Verify(2, extra);
    auto problems = Problems(damaged);
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("index: face " + std::to_string(biden) + ": ") &&
                                Catch::Contains("corpus.sqlite") && Catch::Contains("differs"));
    CHECK(damaged["vectors_compared"].num() == 3);
  }
  Json repaired = c.Verify(0, {"--repair"});
  REQUIRE(repaired["repairs"].size() == 1);
  CHECK_THAT(repaired["repairs"][0].str(), Catch::Contains("source of truth"));
  CHECK(repaired["vectors_compared"].num() == 3);
  RunResult text = c.Run({"verify", "--full"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("compared 3 of 3") != std::string::npos);
}

TEST_CASE("With --lock-wait a writer gives up with exit 2 when another holds the corpus and changes nothing",
          "[reliability][e2e][concurrency]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  CopyTestImage("obama2.jpg", c.dir / "more");
  const int fd = ::open((c.corpus / "write.lock").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);  // this test process is "the other writer"

  RunResult at_once = c.Run({"--lock-wait", "0", "index", (c.dir / "more").string()});
  CHECK(at_once.exit_code == 2);
  CHECK(at_once.err.find("another facesearch process is writing") != std::string::npos);
  CHECK(at_once.err.find("--lock-wait 0") != std::string::npos);

  const auto start = std::chrono::steady_clock::now();
  RunResult bounded = c.Run({"--lock-wait", "0.5", "forget", "--image", (c.photos / "biden.jpg").string()});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(bounded.err);
  CHECK(bounded.exit_code == 2);
  CHECK(bounded.err.find("still after 0.5 s") != std::string::npos);
  CHECK(waited >= 0.5);
  CHECK(c.Run({"--lock-wait", "-1", "info"}).exit_code == 2);  // a negative wait is a usage error

  ::close(fd);  // the other writer finishes
  CHECK(c.Verify(0)["faces"].num() == 2);
  RunResult after = c.Run({"--lock-wait", "0", "index", (c.dir / "more").string()});
  INFO(after.err);
  CHECK(after.exit_code == 0);
  CHECK(c.Verify(0)["faces"].num() == 3);
}

TEST_CASE("On a read-only corpus mount, info, verify and audit work, and query, index, forget and export fail clearly without change",
          "[reliability][e2e][faults]") {
  Corpus c;
  if (!CanMount(c.dir / "probe")) {
    SkipOrFailInCi("mounts (root with CAP_SYS_ADMIN)",
                   "this machine does not allow them, so the read-only corpus cannot be simulated: tests run "
                   "as root, where chmod does not stop writes");
    return;
  }
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  MountNamespaceScript script(c.dir / "results");
  script.Shell("mount --bind -o ro " + Quote(c.corpus.string()) + " " + Quote(c.corpus.string()));
  script.Facesearch(c.Args({"info", "--json"}));
  script.Facesearch(c.Args({"verify"}));
  script.Facesearch(c.Args({"audit", "verify"}));
  script.Facesearch(c.Args({"query", TestImage("obama3.jpg").string()}));
  script.Facesearch(c.Args({"index", TestImage("obama3.jpg").string()}));
  script.Facesearch(c.Args({"forget", "--image", (c.photos / "biden.jpg").string()}));
  script.Facesearch(c.Args({"export"}));
  std::vector<RunResult> r = script.Run();
  CHECK(ParseJson(r[0].out)["faces"].num() == 3);
  CHECK(r[0].exit_code == 0);
  CHECK(r[1].exit_code == 0);
  CHECK(r[2].exit_code == 0);
  for (size_t i = 3; i < r.size(); ++i) {
    INFO("command " << i << ": " << r[i].err);
    CHECK(r[i].exit_code == 2);
    CHECK(r[i].out.empty());
    CHECK(r[i].err.find("read-only file system") != std::string::npos);
  }
  CHECK(c.Verify(0)["faces"].num() == 3);
}

TEST_CASE("On a full file system index fails clearly, keeps every committed face, and completes once space is freed",
          "[reliability][e2e][faults]") {
  Corpus c;
  const fs::path mnt = c.dir / "small";
  if (!CanMount(mnt)) {
    SkipOrFailInCi("mounts (root with CAP_SYS_ADMIN)",
                   "this machine does not allow them, so a full file system cannot be simulated");
    return;
  }
  for (const char* name : {"obama.jpg", "biden.jpg"}) CopyTestImage(name, c.photos);
  const fs::path late = c.dir / "late";
  CopyTestImage("obama2.jpg", late);
  const fs::path corpus = mnt / "corpus";
  auto args = [&](std::vector<std::string> rest) {
    std::vector<std::string> a = {"--corpus", corpus.string(), "--models", ModelsDir().string()};
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  };
  MountNamespaceScript script(c.dir / "results");
  script.Shell("mount -t tmpfs -o size=4m tmpfs " + Quote(mnt.string()));
  script.Facesearch(args({"index", c.photos.string()}));                 // 0: fits
  script.Shell("dd if=/dev/zero of=" + Quote((mnt / "filler").string()) + " bs=4k 2>/dev/null || true");
  script.Facesearch(args({"index", late.string()}));                     // 1: disk full
  script.Facesearch(args({"verify", "--format", "json"}));               // 2: still consistent
  script.Shell("rm " + Quote((mnt / "filler").string()));
  script.Shell("dd if=/dev/zero of=" + Quote((mnt / "filler").string()) + " bs=4k count=1000 2>/dev/null || true");
  script.Facesearch(args({"index", late.string()}));                     // 3: full again, later
  script.Facesearch(args({"verify", "--format", "json"}));               // 4
  script.Shell("rm " + Quote((mnt / "filler").string()));
  script.Facesearch(args({"index", late.string()}));                     // 5: space again
  script.Facesearch(args({"verify", "--format", "json"}));               // 6
  std::vector<RunResult> r = script.Run();
  INFO(r[0].err << r[1].err << r[3].err << r[5].err);
  REQUIRE(r[0].exit_code == 0);
  for (int i : {1, 3}) {
    CHECK(r[i].exit_code == 2);
    CHECK(r[i].err.find("is full: free some space") != std::string::npos);
  }
  for (int i : {2, 4}) {
    CHECK(r[i].exit_code == 0);
    CHECK(ParseJson(r[i].out)["faces"].num() == 2);
  }
  CHECK(r[5].exit_code == 0);
  CHECK(r[6].exit_code == 0);
  CHECK(ParseJson(r[6].out)["faces"].num() == 3);
}

TEST_CASE("A photo whose header claims gigapixels is recorded as an error by index, never decoded, and the corpus stays healthy",
          "[reliability][e2e][faults]") {
  Corpus c;
  CopyTestImage("biden.jpg", c.photos);
  // A real PNG whose IHDR claims 60000 x 60000 pixels (3.6 gigapixels).
  cv::imwrite((c.photos / "huge.png").string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)));
  std::string png = Slurp(c.photos / "huge.png");
  for (int off : {16, 20}) {
    png[off] = 0; png[off + 1] = 0; png[off + 2] = static_cast<char>(0xEA); png[off + 3] = 0x60;
  }
  Overwrite(c.photos / "huge.png", png);
  RunResult r = c.Run({"index", c.photos.string()});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("exceeds the pixel limit") != std::string::npos);
  Json v = c.Verify(0);
  CHECK(v["faces"].num() == 1);
}
