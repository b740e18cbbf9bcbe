// Store: real SQLite files in a temp dir. Schema/identity checks, atomic batches, generations,
// the erased-face guarantee of GetFaces, and the on-disk formats other tools may read.
#include "store/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "common/sha256.h"
#include "support.h"

using namespace facesearch;
using facesearch::test::ExecSql;
namespace fs = std::filesystem;

namespace {
const std::string kModels = "models:test-a";

Face MakeFace(int seed) {
  Face f;
  f.box = {10 * seed, -5, 80, 81};
  for (int i = 0; i < 5; ++i) f.landmarks[i] = {seed + i, -(seed * 2 + i)};
  f.det_score = 0.25 * seed;
  for (int i = 0; i < kEmbeddingDim; ++i) f.embedding[i] = 0.001f * static_cast<float>(seed * 7 + i);
  return f;
}

ImageRecord MakeImage(const std::string& name, ImageStatus status = ImageStatus::kOk) {
  ImageRecord r;
  r.sha256 = Sha256Hex(name);
  r.path = "/photos/" + name;
  r.size = 1000 + static_cast<int64_t>(name.size());
  r.width = 640;
  r.height = 480;
  r.status = status;
  return r;
}

std::unique_ptr<Store> OpenOrDie(const fs::path& db, const std::string& identity = kModels) {
  auto store = Store::Open(db, identity);
  if (!store) FAIL(store.error().message);
  return std::move(*store);
}

unsigned Mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

int64_t Gen(Store& s) { return s.Generation().value(); }

// One integer from SQL run on a second, read-only connection (WAL: it sees committed rows).
int64_t RawCount(const fs::path& db, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
  return n;
}
}  // namespace

TEST_CASE("Store::Open creates a 0600 database that records schema version and model identity",
          "[store]") {
  test::TempDir dir;
  const fs::path db = dir / "corpus.db";
  {
    auto store = OpenOrDie(db);
    REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1)}));  // creates the -wal file
    CHECK(Mode(db) == 0600);
    CHECK(Mode(fs::path(db.string() + "-wal")) == 0600);
    CHECK(Mode(fs::path(db.string() + "-shm")) == 0600);
    CHECK(store->ModelIdentity().value() == kModels);
    CHECK(store->GetMeta("schema_version").value() == std::to_string(kSchemaVersion));
    auto created = store->GetMeta("created_at").value();
    REQUIRE(created);
    CHECK(created->size() == 20);  // 2024-01-02T03:04:05Z
    CHECK(created->back() == 'Z');
  }
  auto again = Store::Open(db, kModels);
  REQUIRE(again);
  CHECK((*again)->Counts().value().faces == 1);
}

TEST_CASE("Store::Open refuses a corpus built with other models, naming both identities",
          "[store]") {
  test::TempDir dir;
  OpenOrDie(dir / "c.db");
  auto other = Store::Open(dir / "c.db", "models:test-b");
  REQUIRE_FALSE(other);
  CHECK(other.error().code == ErrorCode::kMismatch);
  CHECK_THAT(other.error().message, Catch::Contains("models:test-a") &&
                                        Catch::Contains("models:test-b"));
}

TEST_CASE("Store::Open and OpenReadOnly refuse a schema newer than this build", "[store]") {
  test::TempDir dir;
  OpenOrDie(dir / "c.db");
  ExecSql(dir / "c.db", "PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  auto rw = Store::Open(dir / "c.db", kModels);
  REQUIRE_FALSE(rw);
  CHECK(rw.error().code == ErrorCode::kMismatch);
  auto ro = Store::OpenReadOnly(dir / "c.db");
  REQUIRE_FALSE(ro);
  CHECK(ro.error().code == ErrorCode::kMismatch);
}

TEST_CASE("Store::Open refuses foreign SQLite databases and non-database files", "[store]") {
  test::TempDir dir;
  ExecSql(dir / "other.db", "CREATE TABLE notes(x)");
  auto foreign = Store::Open(dir / "other.db", kModels);
  REQUIRE_FALSE(foreign);
  CHECK(foreign.error().code == ErrorCode::kMismatch);

  std::ofstream(dir / "garbage.db") << std::string(4096, 'G');
  auto garbage = Store::Open(dir / "garbage.db", kModels);
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().code == ErrorCode::kCorrupt);
}

TEST_CASE("OpenReadOnly: kNotFound when missing, reads without an identity and refuses writes",
          "[store]") {
  test::TempDir dir;
  auto missing = Store::OpenReadOnly(dir / "absent.db");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::kNotFound);
  CHECK_FALSE(fs::exists(dir / "absent.db"));

  OpenOrDie(dir / "c.db")->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}).value();
  auto ro = Store::OpenReadOnly(dir / "c.db");
  REQUIRE(ro);
  CHECK((*ro)->Counts().value().faces == 2);
  CHECK((*ro)->ModelIdentity().value() == kModels);
  CHECK_FALSE((*ro)->AddImage(MakeImage("b"), {}));
  CHECK((*ro)->Counts().value().images == 1);
}

TEST_CASE("AddImage round-trips every face field and returns ids in input order", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  const std::vector<Face> faces = {MakeFace(3), MakeFace(1), MakeFace(2)};
  auto ids = store->AddImage(MakeImage("a"), faces);
  REQUIRE(ids);
  REQUIRE(ids->size() == 3);
  CHECK(((*ids)[0] < (*ids)[1] && (*ids)[1] < (*ids)[2]));

  auto rows = store->GetFaces(*ids).value();
  REQUIRE(rows.size() == 3);
  const auto image_id = store->FindImageBySha(Sha256Hex("a")).value();
  REQUIRE(image_id);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(rows[i].face_id == (*ids)[i]);
    CHECK(rows[i].image_id == *image_id);
    CHECK(rows[i].image_path == "/photos/a");
    CHECK(rows[i].image_sha256 == Sha256Hex("a"));
    CHECK(rows[i].face.box.x == faces[i].box.x);
    CHECK(rows[i].face.box.y == faces[i].box.y);
    CHECK(rows[i].face.box.h == faces[i].box.h);
    CHECK(rows[i].face.landmarks[4].y == faces[i].landmarks[4].y);
    CHECK(rows[i].face.det_score == faces[i].det_score);
    CHECK(rows[i].face.embedding == faces[i].embedding);
  }
  CHECK_FALSE(store->FindImageBySha(Sha256Hex("unknown")).value());
}

TEST_CASE("AddImage refuses a sha256 already in the corpus and changes nothing", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1)}));
  ImageRecord copy = MakeImage("a");
  copy.path = "/elsewhere/copy.jpg";
  auto dup = store->AddImage(copy, {MakeFace(2)});
  REQUIRE_FALSE(dup);
  CHECK(dup.error().code == ErrorCode::kInvalidArgument);
  CHECK_THAT(dup.error().message, Catch::Contains("/photos/a"));
  auto counts = store->Counts().value();
  CHECK(counts.images == 1);
  CHECK(counts.faces == 1);
  CHECK(Gen(*store) == 1);
}

TEST_CASE("AddImages is atomic: a batch containing a duplicate sha adds nothing", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  std::vector<std::pair<ImageRecord, std::vector<Face>>> batch = {
      {MakeImage("a"), {MakeFace(1)}},
      {MakeImage("b"), {MakeFace(2), MakeFace(3)}},
      {MakeImage("a"), {MakeFace(4)}},
  };
  auto r = store->AddImages(batch);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kInvalidArgument);
  CHECK(store->Counts().value().images == 0);
  CHECK(store->Counts().value().faces == 0);
  CHECK(Gen(*store) == 0);

  batch.pop_back();
  auto ok = store->AddImages(batch);
  REQUIRE(ok);
  REQUIRE(ok->size() == 2);
  CHECK((*ok)[1].size() == 2);
  CHECK(store->Counts().value().faces == 3);
  CHECK(Gen(*store) == 1);  // one bump per transaction
}

TEST_CASE("Generation bumps once per transaction that adds faces, never for face-less images",
          "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  CHECK(Gen(*store) == 0);
  REQUIRE(store->AddImage(MakeImage("none", ImageStatus::kNoFace), {}));
  CHECK(Gen(*store) == 0);
  REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}));
  CHECK(Gen(*store) == 1);
  REQUIRE(store->AddImage(MakeImage("b"), {MakeFace(3)}));
  CHECK(Gen(*store) == 2);
  CHECK(store->DeleteGeneration().value() == 0);
}

TEST_CASE("An unreadable image (no sha256) replaces an earlier unreadable row for its path",
          "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  ImageRecord bad;
  bad.path = "/photos/broken.jpg";
  bad.status = ImageStatus::kError;
  bad.error = "permission denied";
  REQUIRE(store->AddImage(bad, {}));
  bad.error = "still denied";
  REQUIRE(store->AddImage(bad, {}));
  auto counts = store->Counts().value();
  CHECK(counts.images == 1);
  CHECK(counts.images_error == 1);
}

TEST_CASE("Counts tallies images by status and all faces", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}));
  REQUIRE(store->AddImage(MakeImage("b"), {MakeFace(3)}));
  REQUIRE(store->AddImage(MakeImage("c", ImageStatus::kNoFace), {}));
  ImageRecord err = MakeImage("d", ImageStatus::kError);
  err.error = "truncated JPEG";
  REQUIRE(store->AddImage(err, {}));
  auto c = store->Counts().value();
  CHECK(c.images == 4);
  CHECK(c.images_ok == 2);
  CHECK(c.images_noface == 1);
  CHECK(c.images_error == 1);
  CHECK(c.faces == 3);
}

TEST_CASE("AddImage refuses malformed records with kInvalidArgument", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  ImageRecord no_sha = MakeImage("a");
  no_sha.sha256.reset();
  CHECK(store->AddImage(no_sha, {MakeFace(1)}).error().code == ErrorCode::kInvalidArgument);
  ImageRecord upper = MakeImage("a");
  upper.sha256 = std::string(64, 'A');
  CHECK(store->AddImage(upper, {}).error().code == ErrorCode::kInvalidArgument);
  Face nan_face = MakeFace(1);
  nan_face.embedding[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(store->AddImage(MakeImage("a"), {nan_face}).error().code == ErrorCode::kInvalidArgument);
  CHECK(store->AddImage(MakeImage("a", ImageStatus::kNoFace), {MakeFace(1)}).error().code ==
        ErrorCode::kInvalidArgument);
  CHECK(store->Counts().value().images == 0);
}

TEST_CASE("GetFaces drops ids with no live row and keeps the requested order", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  auto a = store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}).value();
  auto b = store->AddImage(MakeImage("b"), {MakeFace(3)}).value();
  const std::vector<int64_t> ask = {b[0], 999999, a[1], a[0]};
  auto rows = store->GetFaces(ask).value();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].face_id == b[0]);
  CHECK(rows[1].face_id == a[1]);
  CHECK(rows[2].face_id == a[0]);

  const int64_t image_a = rows[1].image_id;
  REQUIRE(store->DeleteFacesOfImage(image_a));
  rows = store->GetFaces(ask).value();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].face_id == b[0]);
}

TEST_CASE("DeleteFacesOfImage bumps generation and delete generation, and is a no-op without faces",
          "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  auto a = store->AddImage(MakeImage("a"), {MakeFace(1)}).value();
  REQUIRE(store->AddImage(MakeImage("b"), {MakeFace(2)}));
  const int64_t image_a = store->GetFaces(a).value()[0].image_id;
  CHECK(Gen(*store) == 2);
  REQUIRE(store->DeleteFacesOfImage(image_a));
  CHECK(Gen(*store) == 3);
  CHECK(store->DeleteGeneration().value() == 3);
  REQUIRE(store->DeleteFacesOfImage(image_a));  // nothing left to delete
  CHECK(Gen(*store) == 3);
  auto c = store->Counts().value();
  CHECK(c.faces == 1);
  CHECK(c.images == 2);  // the image row stays
}

TEST_CASE("ForEachEmbedding visits only faces after the given id, in id order", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  auto a = store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}).value();
  auto b = store->AddImage(MakeImage("b"), {MakeFace(3)}).value();
  std::vector<int64_t> seen;
  REQUIRE(store->ForEachEmbedding(a[0], [&](int64_t id, const Embedding& e) {
    seen.push_back(id);
    CHECK(e == MakeFace(id == a[1] ? 2 : 3).embedding);
  }));
  CHECK(seen == std::vector<int64_t>{a[1], b[0]});
}

TEST_CASE("ForEachFace visits every face joined with its image, in id order", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}));
  REQUIRE(store->AddImage(MakeImage("b"), {MakeFace(3)}));
  std::vector<std::string> paths;
  int64_t last = 0;
  REQUIRE(store->ForEachFace([&](const FaceRecord& r) {
    CHECK(r.face_id > last);
    last = r.face_id;
    paths.push_back(r.image_path);
  }));
  CHECK(paths == std::vector<std::string>{"/photos/a", "/photos/a", "/photos/b"});
}

TEST_CASE("Index snapshot round-trips, clears, and a damaged record reads as kCorrupt",
          "[store]") {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  {
    auto store = OpenOrDie(db);
    CHECK_FALSE(store->GetIndexSnapshot().value());
    const IndexSnapshot snap{7, 42, 40, 12345, Sha256Hex("x"), "faces.faiss"};
    REQUIRE(store->SetIndexSnapshot(snap));
    auto got = store->GetIndexSnapshot().value();
    REQUIRE(got);
    CHECK(got->generation == 7);
    CHECK(got->max_face_id == 42);
    CHECK(got->ntotal == 40);
    CHECK(got->size == 12345);
    CHECK(got->sha256 == Sha256Hex("x"));
    CHECK(got->file == "faces.faiss");
    REQUIRE(store->ClearIndexSnapshot());
    CHECK_FALSE(store->GetIndexSnapshot().value());
    REQUIRE(store->SetIndexSnapshot(snap));
  }
  ExecSql(db, "UPDATE meta SET value = '12x' WHERE key = 'index.size'");
  auto store = OpenOrDie(db);
  auto damaged = store->GetIndexSnapshot();
  REQUIRE_FALSE(damaged);
  CHECK(damaged.error().code == ErrorCode::kCorrupt);
}

TEST_CASE("SetMeta stores free keys and refuses keys the store manages", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  REQUIRE(store->SetMeta("retention.days", "365"));
  CHECK(store->GetMeta("retention.days").value() == "365");
  CHECK_FALSE(store->GetMeta("absent").value());
  for (const char* key : {"generation", "model_identity", "schema_version", "index.file"}) {
    auto s = store->SetMeta(key, "1");
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("Embeddings are stored as 512-byte little-endian float32 blobs", "[store]") {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  Face f = MakeFace(1);
  f.embedding[0] = 1.0f;  // 0x3f800000
  OpenOrDie(db)->AddImage(MakeImage("a"), {f}).value();
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, "SELECT embedding, landmarks FROM faces", -1, &stmt, nullptr) ==
          SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  REQUIRE(sqlite3_column_bytes(stmt, 0) == 512);
  const auto* blob = static_cast<const unsigned char*>(sqlite3_column_blob(stmt, 0));
  CHECK((blob[0] == 0x00 && blob[1] == 0x00 && blob[2] == 0x80 && blob[3] == 0x3f));
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))) ==
        "[[1,-2],[2,-3],[3,-4],[4,-5],[5,-6]]");
  sqlite3_finalize(stmt);
  sqlite3_close(raw);
}

TEST_CASE("Checkpoint folds the WAL into the database file and truncates it", "[store]") {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  auto store = OpenOrDie(db);
  REQUIRE(store->AddImage(MakeImage("a"), {MakeFace(1)}));
  const fs::path wal = db.string() + "-wal";
  CHECK(fs::file_size(wal) > 0);
  REQUIRE(store->Checkpoint());
  CHECK(fs::file_size(wal) == 0);
  CHECK(store->Counts().value().faces == 1);
}

TEST_CASE("OpenReadOnly falls back to immutable mode when the -shm file cannot be used",
          "[store]") {
  // Stands in for a corpus in a read-only directory (tests may run as root, which ignores
  // permissions): a dangling symlink makes the -shm file impossible to create. The WAL is empty
  // (the last writer checkpointed on close), so immutable mode sees every commit.
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  OpenOrDie(db)->AddImage(MakeImage("a"), {MakeFace(1)}).value();
  REQUIRE_FALSE(fs::exists(db.string() + "-wal"));
  fs::create_symlink(dir / "missing-dir" / "shm", db.string() + "-shm");
  auto ro = Store::OpenReadOnly(db);
  if (!ro) FAIL(ro.error().message);
  CHECK((*ro)->Counts().value().faces == 1);
}

TEST_CASE("Provenance is stored with the image and returned with its faces", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  ImageRecord image = MakeImage("a");
  image.path = "https://example.org/a.jpg";
  image.provenance = {"https://example.org/page", "city-archive", "2024-05-01", "CC-BY-4.0", "line one\nline two"};
  auto ids = store->AddImage(image, {MakeFace(1)}).value();
  REQUIRE(store->AddImage(MakeImage("b"), {MakeFace(2)}));
  auto rows = store->GetFaces(std::vector<int64_t>{ids[0], ids[0] + 1}).value();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].image_path == "https://example.org/a.jpg");
  CHECK(rows[0].provenance.page_url == "https://example.org/page");
  CHECK(rows[0].provenance.source == "city-archive");
  CHECK(rows[0].provenance.captured_at == "2024-05-01");
  CHECK(rows[0].provenance.licence == "CC-BY-4.0");
  CHECK(rows[0].provenance.notes == "line one\nline two");
  CHECK(rows[1].provenance.empty());
  int seen = 0;
  REQUIRE(store->ForEachFace([&](const FaceRecord& r) { seen += r.provenance.source == "city-archive"; }));
  CHECK(seen == 1);
}

TEST_CASE("Input issues are listed with image errors, replaced per location and cleared when the input is later read or found known",
          "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  ImageRecord broken;
  broken.path = "/photos/gone.jpg";
  broken.status = ImageStatus::kError;
  broken.error = "cannot open /photos/gone.jpg";
  broken.error_kind = "not_found";
  REQUIRE(store->AddImage(broken, {}));
  REQUIRE(store->RecordInputIssue({"http://h/x.jpg", "skipped", "robots", "disallowed by robots.txt", "", {}}));
  REQUIRE(store->RecordInputIssue({"http://h/x.jpg", "skipped", "noimageindex", "X-Robots-Tag", "", {}}));
  CHECK_FALSE(store->RecordInputIssue({"", "skipped", "robots", "", "", {}}));
  CHECK_FALSE(store->RecordInputIssue({"http://h/y.jpg", "maybe", "robots", "", "", {}}));
  std::vector<InputIssue> issues;
  REQUIRE(store->ForEachInputIssue([&](const InputIssue& i) { issues.push_back(i); }));
  REQUIRE(issues.size() == 2);
  CHECK(issues[0].location == "/photos/gone.jpg");
  CHECK(issues[0].outcome == "error");
  CHECK(issues[0].reason == "not_found");
  CHECK(issues[1].reason == "noimageindex");
  CHECK(issues[1].at.size() == 20);
  CHECK(store->Counts().value().inputs_skipped == 1);

  // Both locations become readable: their stale issues go with the new rows.
  ImageRecord found = MakeImage("c");
  found.path = "/photos/gone.jpg";
  ImageRecord fetched = MakeImage("d");
  fetched.path = "http://h/x.jpg";
  REQUIRE(store->RecordInputIssue({"http://h/known.jpg", "error", "timeout", "timed out", "", {}}));
  // known.jpg now answers with content already in the corpus: read fine, nothing to add.
  REQUIRE(store->AddImages({{found, {MakeFace(3)}}, {fetched, {}}}, {}, {"http://h/known.jpg"}));
  issues.clear();
  REQUIRE(store->ForEachInputIssue([&](const InputIssue& i) { issues.push_back(i); }));
  CHECK(issues.empty());
  CHECK(store->Counts().value().images_error == 0);
}

TEST_CASE("FaceCount equals the face count of Counts through adds and deletions", "[store]") {
  test::TempDir dir;
  auto store = OpenOrDie(dir / "c.db");
  CHECK(store->FaceCount().value() == 0);
  const auto ids = store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2), MakeFace(3)}).value();
  store->AddImage(MakeImage("b"), {MakeFace(4)}).value();
  CHECK(store->FaceCount().value() == 4);
  CHECK(store->FaceCount().value() == store->Counts().value().faces);
  REQUIRE(store->DeleteFacesOfImage(store->GetFaces(ids).value().at(0).image_id));
  CHECK(store->FaceCount().value() == 1);
  CHECK(store->FaceCount().value() == store->Counts().value().faces);
}

TEST_CASE("The stored counts follow every kind of write and match a scan, and verify's integrity check catches an edited count",
          "[store]") {
  test::TempDir dir;
  const fs::path db = dir / "c.db";
  {
    auto store = OpenOrDie(db);
    auto scan = [&] {
      CorpusCounts c;
      c.images = RawCount(db, "SELECT COUNT(*) FROM images");
      c.images_ok = RawCount(db, "SELECT COUNT(*) FROM images WHERE status = 'ok'");
      c.images_noface = RawCount(db, "SELECT COUNT(*) FROM images WHERE status = 'noface'");
      c.images_error = RawCount(db, "SELECT COUNT(*) FROM images WHERE status = 'error'");
      c.faces = RawCount(db, "SELECT COUNT(*) FROM faces");
      c.inputs_skipped = RawCount(db, "SELECT COUNT(*) FROM input_issues WHERE outcome = 'skipped'");
      return c;
    };
    auto same = [&](const char* step) {
      INFO(step);
      const CorpusCounts kept = store->Counts().value(), real = scan();
      CHECK(kept.images == real.images);
      CHECK(kept.images_ok == real.images_ok);
      CHECK(kept.images_noface == real.images_noface);
      CHECK(kept.images_error == real.images_error);
      CHECK(kept.faces == real.faces);
      CHECK(kept.inputs_skipped == real.inputs_skipped);
      CHECK(store->FaceCount().value() == real.faces);
      CHECK(store->IntegrityCheck().value().empty());
    };
    same("empty");
    const auto a = store->AddImage(MakeImage("a"), {MakeFace(1), MakeFace(2)}).value();
    store->AddImage(MakeImage("b"), {}).value();
    ImageRecord unreadable = MakeImage("c", ImageStatus::kError);
    unreadable.sha256.reset();
    store->AddImage(unreadable, {}).value();
    same("added ok, noface and error rows");
    ImageRecord read_now = MakeImage("c2");
    read_now.path = unreadable.path;  // the same location read fine this time replaces the error row
    REQUIRE(store->AddImages({{read_now, {MakeFace(3)}}}));
    same("an error row replaced");
    REQUIRE(store->RecordInputIssue({"http://h/x.jpg", "skipped", "robots", "disallowed", "", {}}));
    REQUIRE(store->RecordInputIssue({"http://h/y.jpg", "error", "timeout", "timed out", "", {}}));
    same("input issues");
    REQUIRE(store->RecordInputIssue({"http://h/x.jpg", "error", "timeout", "timed out", "", {}}));
    REQUIRE(store->RecordInputIssue({"http://h/y.jpg", "skipped", "robots", "disallowed", "", {}}));
    same("input issues changing outcome (upserts)");
    const int64_t image_a = store->GetFaces(a).value().at(0).image_id;
    REQUIRE(store->DeleteFacesOfImage(image_a));
    same("faces of an image deleted");
    auto erased = store->Erase({image_a}, {}, "test", [](const EraseCounts&) {
      AuditRecord record;
      record.action = "forget";
      record.params = "{}";
      record.results = "{}";
      return record;
    });
    REQUIRE(erased);
    same("an image erased with its faces (cascade)");
  }
  ExecSql(db, "UPDATE counts SET n = n + 7 WHERE key = 'faces'");
  auto store = OpenOrDie(db);
  const auto problems = store->IntegrityCheck().value();
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::Contains("faces is recorded as"));
}
