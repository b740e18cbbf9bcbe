// End-to-end accountability and privacy: the real binary on real photos and a real corpus. The
// audit log and its tamper detection, require-case, erasure down to the bytes on disk, tombstones,
// opt-outs, permission checks and private export files. Tampering uses the sqlite3 C API on the
// closed corpus file, as an attacker with file access would.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "common/sha256.h"
#include "json.h"
#include "store/store.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

using Corpus = CorpusDir;

std::vector<Json> AuditLog(const Corpus& c) {
  RunResult r = c.Run({"audit", "--format", "jsonl"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return ParseJsonLines(r.out);
}

// Export lines keyed by image file name.
std::map<std::string, Json> ExportByName(const Corpus& c) {
  RunResult r = c.Run({"export"});
  REQUIRE(r.exit_code == 0);
  std::map<std::string, Json> out;
  for (Json& line : ParseJsonLines(r.out)) out[fs::path(line["image"].str()).filename().string()] = line;
  return out;
}

// The 512 bytes the corpus stores for an embedding: 128 little-endian float32.
std::string EmbeddingBytes(const Json& exported) {
  std::string bytes;
  for (size_t i = 0; i < exported["embedding"].size(); ++i) {
    const float f = static_cast<float>(exported["embedding"][i].num());
    char b[4];
    std::memcpy(b, &f, 4);
    bytes.append(b, 4);
  }
  return bytes;
}

// Corpus files (recursively) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> hits;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(f)), {});
    if (data.find(needle) != std::string::npos) hits.push_back(entry.path().string());
  }
  return hits;
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Erases face `face_id` as `forget` does (index file and record dropped, then the erasure and its
// audit record committed) in a child process that then dies like a kill -9 right after the commit:
// _exit without closing the database, since closing it would checkpoint the WAL.
void EraseThenCrash(const CorpusDir& c, int64_t face_id) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::error_code ec;
    fs::remove(c.index_file(), ec);
    auto store = facesearch::Store::OpenExisting(c.db());
    const bool erased = store && (*store)->ClearIndexSnapshot() &&
                        (*store)->Erase({}, {face_id}, "forget", [](const facesearch::EraseCounts&) {
                          facesearch::AuditRecord r;
                          r.action = "forget";
                          r.params = "{}";
                          r.results = "{}";
                          return r;
                        }).has_value();
    ::_exit(erased ? 137 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 137);
}

unsigned Mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("Each query is audited with user, case, purpose, probe hash and face ids, and audit verify catches edited or deleted rows",
          "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  const fs::path probe = TestImage("obama3.jpg");
  RunResult q1 = c.Run({"--case", "2025-017", "--purpose", "fraud lead", "query", "--format", "jsonl", probe.string()});
  REQUIRE(q1.exit_code == 0);
  RunResult q2 = c.Run({"query", "--case", "2025-018", TestImage("biden.jpg").string()});  // per-subcommand form
  REQUIRE(q2.exit_code == 0);

  std::vector<Json> log = AuditLog(c);
  REQUIRE(log.size() == 2);
  const Json& first = log[0];
  CHECK(first["seq"].num() == 1);
  CHECK(first["action"].str() == "query");
  CHECK(first["case"].str() == "2025-017");
  CHECK(first["purpose"].str() == "fraud lead");
  CHECK_FALSE(first["user"].str().empty());
  CHECK(first["at"].str().back() == 'Z');
  CHECK(first["params"]["probe"].str() == probe.string());
  REQUIRE(first["probe_sha256"].size() == 1);
  CHECK(first["probe_sha256"][0].str() == facesearch::Sha256File(probe).value());
  std::vector<Json> matches = ParseJsonLines(q1.out);
  REQUIRE(first["results"].size() == matches.size());
  for (size_t i = 0; i < matches.size(); ++i) CHECK(first["results"][i].num() == matches[i]["face_id"].num());
  CHECK(log[1]["case"].str() == "2025-018");
  CHECK(log[1]["prev_hash"].str() == first["hash"].str());
  CHECK(c.Run({"audit", "--case", "2025-018"}).out.find("2025-017") == std::string::npos);
  CHECK(c.Run({"audit", "--since", "2000-01-01", "--until", "2000-12-31"}).exit_code == 1);

  RunResult intact = c.Run({"audit", "verify"});
  CHECK(intact.exit_code == 0);
  CHECK(intact.out.find("intact: 2 record(s)") != std::string::npos);

  // A copy of the closed corpus for a second, independent tampering.
  const fs::path copy = c.dir / "copy";
  fs::copy(c.corpus, copy, fs::copy_options::recursive);

  ExecSql(c.db(), "UPDATE audit SET results = '[]' WHERE seq = 1");
  RunResult edited = c.Run({"audit", "verify"});
  CHECK(edited.exit_code == 2);
  CHECK(edited.out.find("record 1") != std::string::npos);

  ExecSql(copy / "corpus.sqlite", "DELETE FROM audit WHERE seq = 1");
  RunResult deleted = RunFacesearch({"--corpus", copy.string(), "audit", "verify"});
  CHECK(deleted.exit_code == 2);
  CHECK(deleted.out.find("record 1 is missing") != std::string::npos);
}

TEST_CASE("With require-case a query without --case fails with exit 2 and prints nothing, and a failed audit write suppresses results",
          "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg"});
  const std::string probe = TestImage("obama2.jpg").string();
  // An older (version 1) corpus: the privacy tables are added on the next write.
  ExecSql(c.db(), std::string(kDropClustersV9Sql) + "DROP TABLE counts; DROP TRIGGER counts_images_insert; DROP TRIGGER counts_images_delete; "
                 "DROP TRIGGER counts_images_status; DROP TRIGGER counts_faces_insert; DROP TRIGGER counts_faces_delete; "
                 "DROP TABLE audit; DROP TABLE tombstones; DROP TABLE optouts; DROP TABLE users; DROP TABLE subject_exclusions; DROP TABLE subject_refs; DROP TABLE subjects; "
                 "PRAGMA user_version = 1; "
                 "UPDATE meta SET value = '1' WHERE key = 'schema_version'; DELETE FROM meta WHERE key LIKE 'audit.%'; "
                 "DROP TABLE input_issues; DROP INDEX images_path; ALTER TABLE images DROP COLUMN error_kind; "
                 "ALTER TABLE images DROP COLUMN page_url; ALTER TABLE images DROP COLUMN source; "
                 "ALTER TABLE images DROP COLUMN captured_at; ALTER TABLE images DROP COLUMN licence; "
                 "ALTER TABLE images DROP COLUMN notes; ALTER TABLE images DROP COLUMN phash; "
                 "ALTER TABLE images DROP COLUMN exif_taken_at; ALTER TABLE images DROP COLUMN camera_make; "
                 "ALTER TABLE images DROP COLUMN camera_model; ALTER TABLE images DROP COLUMN gps_lat; "
                 "ALTER TABLE images DROP COLUMN gps_lon; ALTER TABLE images DROP COLUMN exif_problem; "
                 "ALTER TABLE images DROP COLUMN duration_s; "
                 "ALTER TABLE faces DROP COLUMN video_frame; ALTER TABLE faces DROP COLUMN video_at_s; "
                 "ALTER TABLE faces DROP COLUMN video_first_s; ALTER TABLE faces DROP COLUMN video_last_s");
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["schema_version"].num() == 1);

  REQUIRE(c.Run({"config", "set", "require-case", "true"}).exit_code == 0);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["schema_version"].num() == facesearch::kSchemaVersion);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 1);  // counts rebuilt from the rows
  CHECK(c.Run({"config"}).out.find("require-case = true") != std::string::npos);

  RunResult refused = c.Run({"query", probe});
  CHECK(refused.exit_code == 2);
  CHECK(refused.out.empty());
  CHECK(refused.err.find("--case") != std::string::npos);
  CHECK(c.Run({"export"}).exit_code == 2);
  CHECK(c.Run({"--case", "2025-017", "query", probe}).exit_code == 0);

  std::vector<Json> log = AuditLog(c);
  REQUIRE(log.size() == 2);  // the settings change and the one query that ran
  CHECK(log[0]["action"].str() == "config");
  CHECK(log[1]["action"].str() == "query");

  ExecSql(c.db(), "CREATE TRIGGER block_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
  RunResult unaudited = c.Run({"--case", "2025-017", "query", "--format", "json", probe});
  CHECK(unaudited.exit_code == 2);
  CHECK(unaudited.out.empty());
  CHECK(unaudited.err.find("audit record") != std::string::npos);
}

TEST_CASE("forget --image removes the face from SQLite and the index, leaves none of its bytes in any corpus file, and blocks re-indexing, and audit verify --json gives its receipt",
          "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  const std::string erased = EmbeddingBytes(ExportByName(c).at("obama2.jpg"));
  REQUIRE(erased.size() == 512);
  REQUIRE_FALSE(FilesContaining(c.corpus, erased).empty());  // the search below can find it

  RunResult f = c.Run({"--request-id", "cluster-7", "forget", "--json", "--image", (c.photos / "obama2.jpg").string()});
  INFO(f.err);
  REQUIRE(f.exit_code == 0);
  Json counts = ParseJson(f.out);
  CHECK(counts["faces_erased"].num() == 1);
  CHECK(counts["images_erased"].num() == 1);
  CHECK(counts["faces_left"].num() == 2);
  CHECK(FilesContaining(c.corpus, erased).empty());

  Json info = ParseJson(c.Run({"info", "--json"}).out);
  CHECK(info["faces"].num() == 2);
  CHECK(info["index_vectors"].num() == 2);
  CHECK(info["index_state"].str() == "fresh");
  RunResult q = c.Run({"query", "--format", "jsonl", TestImage("obama3.jpg").string()});
  REQUIRE(q.exit_code == 0);
  std::vector<Json> hits = ParseJsonLines(q.out);
  REQUIRE(hits.size() == 1);
  CHECK(fs::path(hits[0]["image"].str()).filename() == "obama.jpg");

  Json again = ParseJson(c.Run({"index", "--json", c.photos.string()}).out);
  CHECK(again["erased"].num() == 1);
  CHECK(again["added"].num() == 0);
  Json allowed = ParseJson(c.Run({"index", "--json", "--allow-reindex", c.photos.string()}).out);
  CHECK(allowed["added"].num() == 1);

  std::vector<Json> log = AuditLog(c);
  REQUIRE(log.size() == 3);  // export, forget, query
  CHECK(log[1]["action"].str() == "forget");
  CHECK(log[1]["results"]["faces_erased"].num() == 1);
  CHECK(log[1]["params"]["request_id"].str() == "cluster-7");
  CHECK(c.Run({"audit", "verify"}).exit_code == 0);

  // The receipt: the chain's head, and the live faces' digest over "<image sha256> <box>" lines.
  std::vector<std::string> lines;
  for (const auto& [name, face] : ExportByName(c)) {
    const Json& b = face["box"];
    lines.push_back(face["sha256"].str() + " " + std::to_string(static_cast<int64_t>(b["x"].num())) + "," +
                    std::to_string(static_cast<int64_t>(b["y"].num())) + "," +
                    std::to_string(static_cast<int64_t>(b["w"].num())) + "," +
                    std::to_string(static_cast<int64_t>(b["h"].num())));
  }
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) text += (text.empty() ? "" : "\n") + line;
  RunResult v = c.Run({"audit", "verify", "--json"});
  REQUIRE(v.exit_code == 0);
  Json receipt = ParseJson(v.out);
  CHECK(receipt["intact"].boolean());
  CHECK(receipt["faces"].num() == 3);
  CHECK(receipt["live_digest"].str() == facesearch::Sha256Hex(text));
  CHECK(receipt["head"].str() == AuditLog(c).back()["hash"].str());
}

TEST_CASE("An erasure killed right after its commit is scrubbed from corpus.sqlite by the next command of any kind, and verify reports it until then",
          "[privacy][e2e][hostile]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  const Json face = ExportByName(c).at("obama2.jpg");
  const std::string erased = EmbeddingBytes(face);
  const auto face_id = static_cast<int64_t>(face["face_id"].num());
  const fs::path pristine = c.dir / "pristine";
  fs::copy(c.corpus, pristine, fs::copy_options::recursive);
  // corpus.sqlite alone, as someone copying just that file would get it (without its WAL).
  auto in_database = [&] { return Slurp(c.db()).find(erased) != std::string::npos; };

  EraseThenCrash(c, face_id);
  REQUIRE(in_database());
  RunResult v = c.Run({"verify", "--format", "json"});
  INFO(v.out << v.err);
  CHECK(v.exit_code == 2);
  Json report = ParseJson(v.out);
  CHECK(report["problems"].size() == 1);
  if (report["problems"].size() == 1) {
    CHECK(report["problems"][0]["check"].str() == "erasure");
    CHECK(report["problems"][0]["message"].str().find("scrub") != std::string::npos);
  }
  CHECK(in_database());  // verify only reads
  RunResult repaired = c.Run({"verify", "--repair"});
  INFO(repaired.out << repaired.err);
  CHECK(repaired.exit_code == 0);
  CHECK_FALSE(in_database());

  const std::vector<std::vector<std::string>> next_commands = {
      {"info"}, {"audit"}, {"optout", "list"}, {"query", TestImage("obama3.jpg").string()}};
  for (const auto& next : next_commands) {
    fs::remove_all(c.corpus);
    fs::copy(pristine, c.corpus, fs::copy_options::recursive);
    fs::permissions(c.corpus, fs::perms::owner_all);
    EraseThenCrash(c, face_id);
    REQUIRE(in_database());
    RunResult r = c.Run(next);
    INFO(next[0] << ": " << r.err);
    CHECK((r.exit_code == 0 || r.exit_code == 1));
    CHECK_FALSE(in_database());
  }
}

TEST_CASE("forget by retention age, by face id and by likeness erases exactly those faces", "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  ExecSql(c.db(), "UPDATE images SET added_at = '2001-01-01T00:00:00Z' WHERE path LIKE '%biden.jpg'");

  RunResult retention = c.Run({"forget", "--json", "--older-than", "30d"});
  REQUIRE(retention.exit_code == 0);
  CHECK(ParseJson(retention.out)["images_erased"].num() == 1);
  auto left = ExportByName(c);
  CHECK(left.size() == 2);
  CHECK_FALSE(left.contains("biden.jpg"));
  CHECK(c.Run({"forget", "--older-than", "30d"}).exit_code == 1);  // nothing left that old

  const std::string id = std::to_string(static_cast<int64_t>(left.at("obama2.jpg")["face_id"].num()));
  REQUIRE(c.Run({"forget", "--face-id", id, "--older-than", "30d"}).exit_code == 0);
  CHECK(c.Run({"forget", "--face-id", id}).exit_code == 2);  // no such face any more
  // The audit record names every selector of a combined erasure, retention included.
  const std::vector<Json> log = AuditLog(c);
  const Json& combined = log.back();
  CHECK(combined["action"].str() == "forget");
  REQUIRE(combined["params"]["by"].size() == 2);
  CHECK(combined["params"]["by"][0].str() == "face-id");
  CHECK(combined["params"]["by"][1].str() == "retention");

  RunResult like = c.Run({"forget", "--json", "--like", TestImage("obama3.jpg").string()});
  REQUIRE(like.exit_code == 0);
  CHECK(ParseJson(like.out)["faces_erased"].num() == 1);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 0);
  CHECK(c.Run({"forget"}).exit_code == 2);  // says what to forget
}

TEST_CASE("optout add erases matching faces, index skips them, list never shows the embedding, and remove --request takes the one added under that request id",
          "[privacy][e2e][optout]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  RunResult add = c.Run({"--request-id", "rq-881", "optout", "add", TestImage("obama3.jpg").string(), "--reason", "ticket 881"});
  INFO(add.err);
  REQUIRE(add.exit_code == 0);
  CHECK(add.out.find("erased 1 matching face") != std::string::npos);

  CopyTestImage("obama2.jpg", c.photos);
  Json s = ParseJson(c.Run({"index", "--json", c.photos.string()}).out);
  CHECK(s["optout_faces"].num() == 1);
  CHECK(s["noface"].num() == 1);  // its only face was opted out
  CHECK(c.Run({"query", TestImage("obama.jpg").string()}).exit_code == 1);

  RunResult list = c.Run({"optout", "list", "--json"});
  REQUIRE(list.exit_code == 0);
  std::vector<Json> optouts = ParseJsonLines(list.out);
  REQUIRE(optouts.size() == 1);
  CHECK(optouts[0]["reason"].str() == "ticket 881");
  CHECK_FALSE(optouts[0].has("embedding"));
  CHECK(optouts[0]["request_id"].str() == "rq-881");
  const std::string id = std::to_string(static_cast<int64_t>(optouts[0]["id"].num()));
  RunResult unknown = c.Run({"optout", "remove", "--request", "rq-000"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("no opt-out was added under request id rq-000") != std::string::npos);
  CHECK(c.Run({"optout", "remove", id, "--request", "rq-881"}).exit_code == 2);  // one or the other
  RunResult removed = c.Run({"optout", "remove", "--request", "rq-881", "--json"});
  REQUIRE(removed.exit_code == 0);
  CHECK(ParseJson(removed.out)["ids"][size_t{0}].num() == optouts[0]["id"].num());
  CHECK(c.Run({"optout", "list"}).exit_code == 1);
  CHECK(c.Run({"optout", "remove", id}).exit_code == 2);
}

TEST_CASE("Queries drop faces that match an opt-out even when they are still in the corpus", "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  std::string blob;
  for (unsigned char b : EmbeddingBytes(ExportByName(c).at("obama.jpg"))) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    blob += hex;
  }
  // An opt-out row written behind facesearch's back: the faces were not erased.
  ExecSql(c.db(), "INSERT INTO optouts(embedding, threshold, reason, added_at) VALUES(x'" + blob +
                     "', 0.6, 'raw', '2025-01-01T00:00:00Z')");
  CHECK(c.Run({"query", TestImage("obama2.jpg").string()}).exit_code == 1);
  CHECK(c.Run({"query", TestImage("biden.jpg").string()}).exit_code == 0);
}

TEST_CASE("A group- or world-accessible corpus is warned about, refused with --strict-permissions, and export --output stays private",
          "[privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg"});
  fs::permissions(c.corpus, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(c.db(), fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  RunResult warned = c.Run({"info"});
  CHECK(warned.exit_code == 0);
  CHECK(warned.err.find("chmod 700") != std::string::npos);
  CHECK(warned.err.find("chmod 600") != std::string::npos);
  RunResult strict = c.Run({"--strict-permissions", "info"});
  CHECK(strict.exit_code == 2);
  CHECK(strict.out.empty());
  fs::permissions(c.corpus, fs::perms::owner_all);
  for (const auto& e : fs::directory_iterator(c.corpus))  // -wal/-shm inherited the loose mode
    if (e.is_regular_file()) fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write);
  CHECK(c.Run({"--strict-permissions", "info"}).exit_code == 0);

  const fs::path shared = c.dir / "shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  RunResult refused = c.Run({"export", "--output", (shared / "faces.jsonl").string()});
  CHECK(refused.exit_code == 2);
  CHECK_FALSE(fs::exists(shared / "faces.jsonl"));

  const fs::path mine = c.dir / "mine";
  fs::create_directories(mine);
  fs::permissions(mine, fs::perms::owner_all);
  RunResult written = c.Run({"export", "--output", (mine / "faces.jsonl").string()});
  REQUIRE(written.exit_code == 0);
  CHECK(Mode(mine / "faces.jsonl") == 0600);
  std::ifstream f(mine / "faces.jsonl");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  CHECK(ParseJsonLines(text).size() == 1);
  CHECK(c.Run({"export"}).out.find("\"embedding\"") != std::string::npos);  // stdout still works
}

TEST_CASE("Help of each privacy subcommand explains it with examples", "[privacy][cli]") {
  for (const char* sub : {"forget", "optout", "audit", "config"}) {
    INFO(sub);
    RunResult help = RunFacesearch({sub, "--help"});
    CHECK(help.exit_code == 0);
    CHECK(help.out.find("Examples:") != std::string::npos);
  }
  CHECK(RunFacesearch({"optout", "--help"}).out.find("biometric") != std::string::npos);
  CHECK(RunFacesearch({"--help"}).out.find("--case") != std::string::npos);
}

TEST_CASE("audit and optout list show terminal escape sequences as text, never raw", "[hostile][privacy][e2e]") {
  Corpus c;
  c.Index({"obama.jpg"});
  const std::string title = "\x1b]0;owned\x07\x1b[2J";  // set the window title, clear the screen
  REQUIRE(c.Run({"--case", "case" + title, "optout", "add", TestImage("biden.jpg").string(), "--reason",
                 "mail" + title + "\x9b" "31m"})
              .exit_code == 0);
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"audit"}, {"optout", "list"}}) {
    RunResult r = c.Run(cmd);
    INFO(cmd[0] << "\n" << r.out);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find('\x1b') == std::string::npos);
    CHECK(r.out.find('\x07') == std::string::npos);
    CHECK(r.out.find('\x9b') == std::string::npos);
    CHECK(r.out.find("\\x1b]0;owned\\x07\\x1b[2J") != std::string::npos);
  }
  // jsonl stays exact: JSON escapes the same bytes as \u001b.
  CHECK(c.Run({"audit", "--format", "jsonl"}).out.find("\\u001b]0;owned\\u0007") != std::string::npos);
}
