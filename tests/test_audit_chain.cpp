// The audit hash chain (pure functions) and the store's privacy tables: v1 → v2 migration,
// chained appends, tamper detection on the raw SQLite rows, erasure with tombstones, opt-outs.
#include <sqlite3.h>

#include <catch2/catch.hpp>

#include "common/sha256.h"
#include "store/audit_chain.h"
#include "store/migrate.h"
#include "store/store.h"
#include "support.h"

using namespace facesearch;
using facesearch::test::ExecSql;
namespace fs = std::filesystem;

namespace {

const std::string kModels = "models:test-a";

AuditRecord Draft(const std::string& action, const std::string& results = "[]") {
  AuditRecord r;
  r.user = "ana";
  r.action = action;
  r.params = "{\"probe\":\"p.jpg\"}";
  r.case_id = "2025-017";
  r.probe_sha256 = {Sha256Hex("probe")};
  r.results = results;
  return r;
}

// Builds a valid chain of n records in memory.
std::vector<AuditRecord> Chain(int n) {
  std::vector<AuditRecord> out;
  std::string prev = audit::kGenesisHash;
  for (int i = 1; i <= n; ++i) {
    AuditRecord r = Draft("query", "[" + std::to_string(i) + "]");
    r.seq = i;
    r.at = "2025-02-03T04:05:0" + std::to_string(i) + "Z";
    r.prev_hash = prev;
    r.hash = audit::ChainHash(r);
    prev = r.hash;
    out.push_back(r);
  }
  return out;
}

audit::ChainHead HeadOf(const std::vector<AuditRecord>& chain) {
  return {chain.back().seq, chain.back().hash};
}

int64_t RawInt(const fs::path& db, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  int64_t v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return v;
}

Face MakeFace(float base) {
  Face f;
  f.box = {1, 2, 80, 80};
  for (int i = 0; i < kEmbeddingDim; ++i) f.embedding[i] = base;
  return f;
}

ImageRecord MakeImage(const std::string& name) {
  ImageRecord r;
  r.sha256 = Sha256Hex(name);
  r.path = "/photos/" + name;
  r.size = 100;
  return r;
}

// A version-1 corpus exactly as the previous release created it.
void CreateV1(const fs::path& db) {
  ExecSql(db, R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sources(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, uri TEXT NOT NULL, added_at TEXT NOT NULL);
CREATE TABLE images(id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE, path TEXT NOT NULL,
                    source_id INTEGER REFERENCES sources(id), size INTEGER NOT NULL,
                    width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,
                    status TEXT NOT NULL CHECK(status IN ('ok','noface','error')), error TEXT,
                    added_at TEXT NOT NULL);
CREATE TABLE faces(id INTEGER PRIMARY KEY AUTOINCREMENT,
                   image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
                   x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
                   landmarks TEXT NOT NULL, det_score REAL NOT NULL,
                   embedding BLOB NOT NULL CHECK(length(embedding) = 512), added_at TEXT NOT NULL);
CREATE INDEX faces_image ON faces(image_id);
PRAGMA user_version = 1;
INSERT INTO meta VALUES('schema_version','1'),('model_identity','models:test-a'),
  ('generation','1'),('delete_generation','0'),('created_at','2024-01-01T00:00:00Z');
INSERT INTO images VALUES(1, 'aaaa', '/photos/old.jpg', NULL, 10, 1, 1, 'ok', NULL, '2024-01-01T00:00:00Z');
INSERT INTO faces VALUES(1, 1, 0, 0, 9, 9, '[[0,0],[0,0],[0,0],[0,0],[0,0]]', 1.0, zeroblob(512), '2024-01-01T00:00:00Z');
)sql");
}

}  // namespace

TEST_CASE("A well-formed audit chain verifies and reports its head hash", "[audit]") {
  auto chain = Chain(3);
  AuditCheck check = audit::Verify(chain, HeadOf(chain));
  CHECK(check.ok);
  CHECK(check.records == 3);
  CHECK(check.head_hash == chain.back().hash);
  CHECK(audit::Verify({}, audit::ChainHead{0, ""}).ok);
}

TEST_CASE("The canonical form is unambiguous: moving bytes between fields changes the hash", "[audit]") {
  AuditRecord a = Draft("query"), b = Draft("query");
  a.case_id = "ab";
  a.purpose = "c";
  b.case_id = "a";
  b.purpose = "bc";
  CHECK(audit::Canonical(a) != audit::Canonical(b));
  a.prev_hash = b.prev_hash = audit::kGenesisHash;
  CHECK(audit::ChainHash(a) != audit::ChainHash(b));
}

TEST_CASE("Verify names the first edited, deleted, reordered or truncated audit record", "[audit]") {
  SECTION("an edited field") {
    auto chain = Chain(4);
    chain[1].results = "[99]";
    AuditCheck c = audit::Verify(chain, HeadOf(chain));
    CHECK_FALSE(c.ok);
    CHECK(c.first_bad == 2);
    CHECK_THAT(c.problem, Catch::Contains("altered"));
  }
  SECTION("a deleted middle record") {
    auto chain = Chain(4);
    chain.erase(chain.begin() + 1);
    AuditCheck c = audit::Verify(chain, HeadOf(chain));
    CHECK_FALSE(c.ok);
    CHECK(c.first_bad == 2);
    CHECK_THAT(c.problem, Catch::Contains("missing"));
  }
  SECTION("a deleted newest record, caught by the recorded head") {
    auto chain = Chain(4);
    auto head = HeadOf(chain);
    chain.pop_back();
    AuditCheck c = audit::Verify(chain, head);
    CHECK_FALSE(c.ok);
    CHECK(c.first_bad == 4);
  }
  SECTION("two records swapped, even with their seq numbers renumbered") {
    auto chain = Chain(4);
    std::swap(chain[1], chain[2]);
    chain[1].seq = 2;
    chain[2].seq = 3;
    AuditCheck c = audit::Verify(chain, HeadOf(chain));
    CHECK_FALSE(c.ok);
    CHECK(c.first_bad == 2);
  }
  SECTION("a record rewritten with a recomputed hash breaks the link of the next one") {
    auto chain = Chain(4);
    chain[1].results = "[]";
    chain[1].hash = audit::ChainHash(chain[1]);
    AuditCheck c = audit::Verify(chain, HeadOf(chain));
    CHECK_FALSE(c.ok);
    CHECK(c.first_bad == 3);
  }
}

TEST_CASE("Opening a version-1 corpus migrates it to version 2 and keeps its faces", "[audit][store]") {
  test::TempDir dir;
  const fs::path db = dir / "corpus.sqlite";
  CreateV1(db);
  {
    auto ro = Store::OpenReadOnly(db);  // read-only opens accept the older schema unchanged
    REQUIRE(ro);
    CHECK((*ro)->OptOuts().value().empty());
  }
  CHECK(RawInt(db, "PRAGMA user_version") == 1);
  auto store = Store::Open(db, kModels);
  REQUIRE(store);
  CHECK((*store)->GetMeta("schema_version").value() == std::to_string(kSchemaVersion));
  CHECK((*store)->Counts().value().faces == 1);
  REQUIRE((*store)->AppendAudit(Draft("query")));
  CHECK((*store)->VerifyAudit().value().ok);
  store->reset();
  CHECK(RawInt(db, "PRAGMA user_version") == kSchemaVersion);
  CHECK(RawInt(db, "SELECT COUNT(*) FROM audit") == 1);
  CHECK(RawInt(db, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('tombstones','optouts')") == 2);
}

TEST_CASE("Appended audit records chain in the database and raw-row tampering is detected", "[audit][store]") {
  test::TempDir dir;
  const fs::path db = dir / "corpus.sqlite";
  {
    auto store = Store::Open(db, kModels).value();
    for (int i = 0; i < 3; ++i) {
      auto r = store->AppendAudit(Draft("query", "[" + std::to_string(i) + "]"));
      REQUIRE(r);
      CHECK(r->seq == i + 1);
      CHECK(r->at.back() == 'Z');
    }
    AuditCheck check = store->VerifyAudit().value();
    CHECK(check.ok);
    CHECK(check.records == 3);
  }
  auto verify = [&] { return Store::OpenReadOnly(db).value()->VerifyAudit().value(); };
  SECTION("edited results") {
    ExecSql(db, "UPDATE audit SET results = '[]' WHERE seq = 2");
    CHECK(verify().first_bad == 2);
  }
  SECTION("deleted record") {
    ExecSql(db, "DELETE FROM audit WHERE seq = 2");
    CHECK(verify().first_bad == 2);
  }
  SECTION("deleted newest record") {
    ExecSql(db, "DELETE FROM audit WHERE seq = 3");
    CHECK(verify().first_bad == 3);
  }
  SECTION("reordered records") {
    ExecSql(db, "UPDATE audit SET seq = 10 WHERE seq = 1; UPDATE audit SET seq = 1 WHERE seq = 2; "
                "UPDATE audit SET seq = 2 WHERE seq = 10");
    CHECK(verify().first_bad == 1);
  }
}

TEST_CASE("Erase removes rows, tombstones the content hash and records counts in one audit record", "[audit][store]") {
  test::TempDir dir;
  auto store = Store::Open(dir / "c.db", kModels).value();
  auto ids = store->AddImages({{MakeImage("a"), {MakeFace(0.1f), MakeFace(0.2f)}},
                               {MakeImage("b"), {MakeFace(0.3f)}}}).value();
  const int64_t before = store->DeleteGeneration().value();
  // One face of a two-face image: the image stays; the only face of b: b goes and is tombstoned.
  auto counts = store->Erase({}, {ids[0][0], ids[1][0]}, "forget", [](const EraseCounts& c) {
    AuditRecord r = Draft("forget");
    r.results = "{\"faces\":" + std::to_string(c.faces) + "}";
    return r;
  });
  REQUIRE(counts);
  CHECK(counts->faces == 2);
  CHECK(counts->images == 1);
  CHECK(store->DeleteGeneration().value() > before);
  CHECK(store->Counts().value().faces == 1);
  CHECK(store->IsTombstoned(Sha256Hex("b")).value());
  CHECK_FALSE(store->IsTombstoned(Sha256Hex("a")).value());
  std::vector<AuditRecord> log;
  REQUIRE(store->ForEachAudit({}, [&](const AuditRecord& r) { log.push_back(r); }));
  REQUIRE(log.size() == 1);
  CHECK(log[0].results == "{\"faces\":2}");
}

TEST_CASE("Opt-outs are stored, listed and removed with audit records", "[audit][store]") {
  test::TempDir dir;
  auto store = Store::Open(dir / "c.db", kModels).value();
  OptOutRecord o;
  o.embedding = MakeFace(0.5f).embedding;
  o.threshold = 0.5f;
  o.reason = "ticket 881";
  const int64_t id = store->AddOptOut(o, Draft("optout")).value();
  auto list = store->OptOuts().value();
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == id);
  CHECK(list[0].embedding == o.embedding);
  CHECK(list[0].threshold == Approx(0.5));
  REQUIRE(store->RemoveOptOut(id, Draft("optout")));
  CHECK(store->OptOuts().value().empty());
  CHECK(store->RemoveOptOut(id, Draft("optout")).error().code == ErrorCode::kNotFound);
  CHECK(store->VerifyAudit().value().records == 2);
}

TEST_CASE("Opt-outs keep their request id, an older schema gives it from the audit log, and removal by request id takes only that one",
          "[audit][store][optout]") {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  OptOutRecord o;
  o.embedding = MakeFace(0.5f).embedding;
  o.threshold = 0.5f;
  int64_t clustered = 0, alone = 0;
  {
    auto store = Store::Open(db, kModels).value();
    AuditRecord added = Draft("optout");  // as `facesearch --request-id rq-7 optout add` records it
    added.params = R"({"op":"add","threshold":0.5,"reason":"","request_id":"rq-7"})";
    o.request_id = "rq-7";
    clustered = store->AddOptOut(o, added).value();
    o.request_id.clear();
    alone = store->AddOptOut(o, Draft("optout")).value();
  }
  // Back to schema 9, which had no request_id column: the audit log still names the request.
  ExecSql(db, std::string(test::kDropOptoutRequestsV10Sql) +
                  "PRAGMA user_version = 9; UPDATE meta SET value = '9' WHERE key = 'schema_version';");
  {
    auto old = Store::OpenReadOnly(db).value();  // a read-only open reads v9's from its audit log
    auto list = old->OptOuts().value();
    REQUIRE(list.size() == 2);
    CHECK(list[0].request_id == "rq-7");
    CHECK(list[1].request_id.empty());
  }
  auto store = Store::Open(db, kModels).value();
  CHECK(RawInt(db, "PRAGMA user_version") == kSchemaVersion);
  auto list = store->OptOuts().value();
  REQUIRE(list.size() == 2);
  CHECK(list[0].id == clustered);
  CHECK(list[0].request_id == "rq-7");
  CHECK(list[1].request_id.empty());

  CHECK(store->RemoveOptOutsOfRequest("rq-8", Draft("optout")).error().code == ErrorCode::kNotFound);
  CHECK(store->RemoveOptOutsOfRequest("rq-7", Draft("optout")).value() == std::vector<int64_t>{clustered});
  list = store->OptOuts().value();
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == alone);
  std::vector<AuditRecord> log;
  REQUIRE(store->ForEachAudit({}, [&](const AuditRecord& r) { log.push_back(r); }));
  CHECK(log.back().results == "{\"optout_ids\":[" + std::to_string(clustered) + "]}");
  CHECK(store->VerifyAudit().value().ok);
}

TEST_CASE("Opening a version-2 corpus migrates it to the current schema and keeps its images, faces and audit log",
          "[audit][store]") {
  test::TempDir dir;
  const fs::path db = dir / "corpus.sqlite";
  CreateV1(db);
  ExecSql(db, std::string(migrate::kV2Sql) +
                  "PRAGMA user_version = 2; UPDATE meta SET value = '2' WHERE key = 'schema_version';"
                  "INSERT INTO meta VALUES('audit.head_seq','0'),('audit.head_hash','');"
                  "INSERT INTO images(id, sha256, path, size, status, error, added_at) VALUES(2, NULL, "
                  "'/photos/bad.jpg', 0, 'error', 'cannot open /photos/bad.jpg', '2024-01-01T00:00:00Z');");
  {
    auto ro = Store::OpenReadOnly(db);  // a read-only open reads v2 as it is: no provenance, no issues
    REQUIRE(ro);
    auto faces = (*ro)->GetFaces(std::vector<int64_t>{1}).value();
    REQUIRE(faces.size() == 1);
    CHECK(faces[0].provenance.empty());
    std::vector<InputIssue> issues;
    REQUIRE((*ro)->ForEachInputIssue([&](const InputIssue& i) { issues.push_back(i); }));
    REQUIRE(issues.size() == 1);
    CHECK(issues[0].reason.empty());
  }
  CHECK(RawInt(db, "PRAGMA user_version") == 2);
  auto store = Store::Open(db, kModels);
  REQUIRE(store);
  CHECK((*store)->GetMeta("schema_version").value() == std::to_string(kSchemaVersion));
  CHECK((*store)->Counts().value().faces == 1);
  CHECK((*store)->Counts().value().images_error == 1);
  REQUIRE((*store)->AppendAudit(Draft("query")));
  CHECK((*store)->VerifyAudit().value().ok);
  ImageRecord image;
  image.sha256 = Sha256Hex("new");
  image.path = "https://example.org/a.jpg";
  image.size = 3;
  image.status = ImageStatus::kNoFace;
  image.provenance.page_url = "https://example.org/page";
  image.provenance.licence = "CC-BY-4.0";
  REQUIRE((*store)->AddImage(image, {}));
  REQUIRE((*store)->RecordInputIssue({"https://example.org/private/b.jpg", "skipped", "robots", "disallowed", "", {}}));
  CHECK((*store)->Counts().value().inputs_skipped == 1);
  store->reset();
  CHECK(RawInt(db, "PRAGMA user_version") == kSchemaVersion);
  CHECK(RawInt(db, "SELECT COUNT(*) FROM images WHERE licence = 'CC-BY-4.0' AND page_url IS NOT NULL") == 1);
  CHECK(RawInt(db, "SELECT COUNT(*) FROM input_issues") == 1);
  CHECK(RawInt(db, "SELECT COUNT(*) FROM faces WHERE image_id = 1") == 1);
}
