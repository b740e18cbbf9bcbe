// OpenCorpusIndex / SaveCorpusIndex: the repair protocol on real SQLite and FAISS files.
// Every damaged state must end in an index that matches the database, never in a silent
// empty or stale one.
#include "index/corpus_index.h"

#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "common/fs.h"
#include "common/sha256.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

Face FaceAt(float value) {
  Face f;
  f.box = {1, 2, 30, 30};
  f.det_score = 1.0;
  f.embedding.fill(0.f);
  f.embedding[0] = value;
  return f;
}

ImageRecord Image(const std::string& name) {
  ImageRecord r;
  r.sha256 = Sha256Hex(name);
  r.path = "/photos/" + name;
  r.size = 10;
  return r;
}

struct Corpus {
  test::TempDir dir;
  fs::path db = dir / "corpus.db";
  fs::path index_dir = dir / "index";
  std::unique_ptr<Store> store = Store::Open(db, "models:test").value();

  std::vector<int64_t> Add(const std::string& name, std::vector<Face> faces) {
    return store->AddImage(Image(name), faces).value();
  }
  OpenedIndex Open(bool persist = true) {
    auto opened = OpenCorpusIndex(*store, index_dir, persist);
    if (!opened) FAIL(opened.error().message);
    return std::move(*opened);
  }
  fs::path IndexFile() const { return index_dir / kIndexFileName; }
};

int64_t Nearest(const VectorIndex& index, float value) {
  auto hits = index.Search(FaceAt(value).embedding, 1).value();
  REQUIRE(hits.size() == 1);
  return hits[0].face_id;
}

}  // namespace

TEST_CASE("With no snapshot the index is rebuilt and persisted, and the next open is fresh",
          "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f), FaceAt(2.f)});
  auto first = c.Open();
  CHECK(first.state == IndexState::kRebuilt);
  CHECK_THAT(first.reason, Catch::Contains("no index snapshot"));
  CHECK(first.index->ntotal() == 2);
  CHECK(fs::exists(c.IndexFile()));

  auto second = c.Open();
  CHECK(second.state == IndexState::kFresh);
  CHECK(second.index->ntotal() == 2);
  CHECK(std::string(IndexStateName(second.state)) == "fresh");
}

TEST_CASE("An empty corpus opens to an empty index", "[corpus_index]") {
  Corpus c;
  CHECK(c.Open().index->ntotal() == 0);
  auto again = c.Open();
  CHECK(again.state == IndexState::kFresh);
  CHECK(again.index->Search(FaceAt(0.f).embedding, 5).value().empty());
}

TEST_CASE("SaveCorpusIndex records size, checksum and coverage for the current generation",
          "[corpus_index]") {
  Corpus c;
  auto ids = c.Add("a", {FaceAt(1.f), FaceAt(2.f), FaceAt(3.f)});
  auto opened = c.Open(/*persist=*/false);
  REQUIRE(SaveCorpusIndex(*c.store, *opened.index, c.index_dir));
  auto snap = c.store->GetIndexSnapshot().value();
  REQUIRE(snap);
  CHECK(snap->generation == c.store->Generation().value());
  CHECK(snap->ntotal == 3);
  CHECK(snap->max_face_id == ids.back());
  CHECK(snap->file == kIndexFileName);
  CHECK(snap->size == static_cast<int64_t>(fs::file_size(c.IndexFile())));
  std::string checksum;
  REQUIRE(IndexFile::ReadHeader(c.IndexFile(), &checksum));
  CHECK(snap->sha256 == checksum);  // the field keeps its name; it holds the header's XXH3
}

TEST_CASE("A deleted index file is rebuilt from the database", "[corpus_index]") {
  Corpus c;
  auto ids = c.Add("a", {FaceAt(1.f), FaceAt(2.f)});
  c.Open();
  fs::remove(c.IndexFile());
  auto opened = c.Open();
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK(opened.index->ntotal() == 2);
  CHECK(Nearest(*opened.index, 2.f) == ids[1]);
  CHECK(c.Open().state == IndexState::kFresh);
}

TEST_CASE("A corrupted index file is rebuilt, not loaded and not served empty",
          "[corpus_index]") {
  Corpus c;
  auto ids = c.Add("a", {FaceAt(1.f), FaceAt(2.f)});
  c.Open();
  std::string bytes = ReadFile(c.IndexFile(), 1 << 20).value();
  bytes[bytes.size() - 5] = static_cast<char>(bytes[bytes.size() - 5] ^ 0x01);
  std::ofstream(c.IndexFile(), std::ios::binary | std::ios::trunc) << bytes;

  auto opened = c.Open();
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK_THAT(opened.reason, Catch::Contains("index file"));
  CHECK(opened.index->ntotal() == 2);
  CHECK(Nearest(*opened.index, 1.f) == ids[0]);
  CHECK(c.Open().state == IndexState::kFresh);
}

TEST_CASE("An index file of an older format is rebuilt and upgraded", "[corpus_index]") {
  Corpus c;
  auto ids = c.Add("a", {FaceAt(1.f), FaceAt(2.f)});
  c.Open();
  // Format 2 was read whole and hashed; format 3 is mapped. The version is checked first.
  std::string bytes = ReadFile(c.IndexFile(), 1 << 20).value();
  bytes[8] = 2;
  std::ofstream(c.IndexFile(), std::ios::binary | std::ios::trunc) << bytes;

  auto opened = c.Open();
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK_THAT(opened.reason, Catch::Contains("index format version 2"));
  CHECK(Nearest(*opened.index, 2.f) == ids[1]);
  auto header = IndexFile::ReadHeader(c.IndexFile());
  REQUIRE(header);
  CHECK(header->stamp.generation == c.store->Generation().value());
  CHECK(header->stamp.model_identity == "models:test");
  CHECK(header->ntotal == 2);
  CHECK(c.Open().state == IndexState::kFresh);
}

TEST_CASE("A lagging snapshot is caught up: faces added after the save are found",
          "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f)});
  c.Open();
  auto late = c.Add("b", {FaceAt(5.f), FaceAt(6.f)});
  c.Add("c", {FaceAt(7.f)});

  auto opened = c.Open();
  CHECK(opened.state == IndexState::kCaughtUp);
  CHECK_THAT(opened.reason, Catch::Contains("appended 3 faces"));
  CHECK(opened.index->ntotal() == 4);
  CHECK(Nearest(*opened.index, 6.f) == late[1]);
  auto next = c.Open();
  CHECK(next.state == IndexState::kFresh);
  CHECK(next.index->ntotal() == 4);
}

TEST_CASE("A search that catches up a delta due for compaction searches it without compacting or saving, and "
          "the next writer streams it into a new file", "[corpus_index]") {
  Corpus c;
  std::vector<Face> first, added;
  for (int i = 0; i < 100; ++i) first.push_back(FaceAt(static_cast<float>(i)));
  for (int i = 0; i < static_cast<int>(kCompactMinRows) + 10; ++i) added.push_back(FaceAt(1000.f + static_cast<float>(i)));
  c.Add("a", first);
  c.Open();  // a writer saves the 100 faces as the main segment
  const int64_t saved_generation = c.store->GetIndexSnapshot().value()->generation;
  const auto late = c.Add("b", added);  // faces the index has not seen (an index run killed before it saved)

  auto searched = OpenCorpusIndex(*c.store, c.index_dir, /*persist=*/true, IndexUse::kSearch);
  REQUIRE(searched);
  CHECK(searched->state == IndexState::kCaughtUp);
  CHECK(searched->index->delta_rows() == static_cast<int64_t>(added.size()));
  CHECK(searched->index->main_rows() == 100);
  CHECK(Nearest(*searched->index, 1005.f) == late[5]);
  CHECK(c.store->GetIndexSnapshot().value()->generation == saved_generation);  // nothing saved

  auto written = c.Open();  // a writer streams them from the database into a new file (not memory)
  CHECK_THAT(written.reason, Catch::Contains("compacted " + std::to_string(added.size()) +
                                             " faces from the database into a new index file"));
  REQUIRE(written.index->file() != nullptr);  // the new file, mapped
  CHECK(written.index->file()->VerifyBlocks().empty());
  CHECK(written.index->delta_rows() == 0);
  CHECK(written.index->main_rows() == static_cast<int64_t>(first.size() + added.size()));
  CHECK(c.store->GetIndexSnapshot().value()->generation > saved_generation);
  CHECK(Nearest(*written.index, 1005.f) == late[5]);
}

TEST_CASE("Faces removed after the snapshot are scrubbed from the index, and erased faces never resurface",
          "[corpus_index]") {
  Corpus c;
  auto keep = c.Add("a", {FaceAt(1.f)});
  auto erase = c.Add("b", {FaceAt(9.f)});
  c.Open();
  const int64_t image_b = c.store->GetFaces(erase).value().at(0).image_id;
  REQUIRE(c.store->DeleteFacesOfImage(image_b));

  auto opened = c.Open();
  CHECK(opened.state == IndexState::kCaughtUp);
  CHECK_THAT(opened.reason, Catch::Contains("removed"));
  CHECK_THAT(opened.reason, Catch::Contains("scrubbed 1 erased faces"));
  CHECK(opened.index->ntotal() == 1);  // a small corpus is compacted (and trained anew)
  CHECK(Nearest(*opened.index, 9.f) == keep[0]);
}

TEST_CASE("An erasure that records the index file it scrubbed in its own transaction leaves it fresh: a kill "
          "right after the commit costs no rebuild", "[corpus_index]") {
  Corpus c;
  const auto keep = c.Add("a", {FaceAt(1.f)});
  const auto erase = c.Add("b", {FaceAt(9.f)});
  const auto audit = [](const EraseCounts&) {
    AuditRecord record;
    record.action = "forget";
    record.params = "{}";
    record.results = "{}";
    return record;
  };
  // As forget does on a corpus that keeps its training: scrub in place, stamp the generation the
  // erasure commits, record the file with the erasure; then the process dies (nothing else runs).
  const int64_t generation = c.store->Generation().value();
  std::optional<IndexSnapshot> scrubbed;
  {
    OpenedIndex opened = c.Open();
    REQUIRE(opened.index->Erase(erase).value() == 1);
    const SavedFile saved =
        opened.index->Save(c.IndexFile(), IndexStamp{generation + 1, c.store->ModelIdentity().value()}).value();
    scrubbed = SnapshotOf(*opened.index, generation + 1, saved);
  }
  const auto size_before = fs::file_size(c.IndexFile());
  REQUIRE(c.store->Erase({}, erase, "forget", audit, std::nullopt, scrubbed).value().faces == 1);
  CHECK(c.store->GetIndexSnapshot().value()->sha256 == scrubbed->sha256);

  OpenedIndex after = c.Open();
  CHECK(after.state == IndexState::kFresh);  // not rebuilt, not even scrubbed again
  CHECK(after.index->ids() == keep);
  CHECK(fs::file_size(c.IndexFile()) == size_before);

  // A record stamped for another generation than the erasure commits is not written with it.
  const auto other = c.Add("c", {FaceAt(5.f)});
  const IndexSnapshot before = c.store->GetIndexSnapshot().value().value();
  IndexSnapshot wrong = before;
  wrong.generation = c.store->Generation().value() + 2;
  wrong.sha256 = "xxh3:0123456789abcdef";
  REQUIRE(c.store->Erase({}, other, "forget", audit, std::nullopt, wrong).value().faces == 1);
  CHECK(c.store->GetIndexSnapshot().value()->sha256 == before.sha256);
}

TEST_CASE("A snapshot newer than the database (restored backup) is rebuilt", "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f)});
  c.Open();
  auto snap = c.store->GetIndexSnapshot().value().value();
  snap.generation += 5;
  REQUIRE(c.store->SetIndexSnapshot(snap));
  auto opened = c.Open();
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK_THAT(opened.reason, Catch::Contains("newer"));
}

TEST_CASE("A snapshot naming another file is rebuilt, never followed", "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f)});
  c.Open();
  auto snap = c.store->GetIndexSnapshot().value().value();
  snap.file = "../elsewhere.faiss";
  REQUIRE(c.store->SetIndexSnapshot(snap));
  CHECK(c.Open().state == IndexState::kRebuilt);
  CHECK(c.store->GetIndexSnapshot().value()->file == kIndexFileName);
}

TEST_CASE("Without persist, repairs stay in memory and disk state is left alone",
          "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f)});
  auto opened = c.Open(/*persist=*/false);
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK_FALSE(fs::exists(c.IndexFile()));
  CHECK_FALSE(c.store->GetIndexSnapshot().value());

  c.Open();
  c.Add("b", {FaceAt(2.f)});
  const auto before = c.store->GetIndexSnapshot().value().value();
  CHECK(c.Open(/*persist=*/false).state == IndexState::kCaughtUp);
  CHECK(c.store->GetIndexSnapshot().value()->generation == before.generation);
}

TEST_CASE("An unreadable snapshot record in the database triggers a rebuild", "[corpus_index]") {
  Corpus c;
  c.Add("a", {FaceAt(1.f)});
  c.Open();
  c.store.reset();  // a second connection only while no Store has the file open
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(c.db.c_str(), &raw) == SQLITE_OK);
  CHECK(sqlite3_exec(raw, "UPDATE meta SET value = 'many' WHERE key = 'index.ntotal'", nullptr,
                     nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(raw);
  c.store = Store::Open(c.db, "models:test").value();

  auto opened = c.Open();
  CHECK(opened.state == IndexState::kRebuilt);
  CHECK_THAT(opened.reason, Catch::Contains("unreadable"));
  CHECK(c.Open().state == IndexState::kFresh);
}

namespace {

// A record of a snapshot at generation 5 (faces up to id 9) in a Store at `generation`.
IndexRecord RecordAt(int64_t generation, int64_t delete_generation = 0) {
  IndexSnapshot snap;
  snap.generation = 5;
  snap.max_face_id = 9;
  snap.ntotal = 7;
  snap.file = kIndexFileName;
  return IndexRecord{snap, generation, delete_generation, "models:test", IndexKind::kExact};
}

IndexFileFacts LoadedFile(IndexKind kind = IndexKind::kExact, int64_t ntotal = 7) {
  IndexFileFacts facts;
  facts.loaded = IndexFileFacts::Loaded{ntotal, 9, kind};
  return facts;
}

}  // namespace

TEST_CASE("JudgeIndex decides fresh, lagging and needs-rebuild from the generations",
          "[corpus_index]") {
  CHECK(JudgeIndex(RecordAt(5), LoadedFile()).condition == IndexCondition::kFresh);
  const IndexVerdict lagging = JudgeIndex(RecordAt(8, 3), LoadedFile());
  CHECK(lagging.condition == IndexCondition::kLagging);
  CHECK(lagging.cause == IndexCause::kNewFaces);
  const IndexVerdict removed = JudgeIndex(RecordAt(8, 6), LoadedFile());
  CHECK(removed.condition == IndexCondition::kNeedsRebuild);
  CHECK(removed.cause == IndexCause::kRemovedSince);
  CHECK_THAT(removed.reason, Catch::Contains("removed"));
  // A removal recorded in the snapshot's own generation is already in it.
  CHECK(JudgeIndex(RecordAt(8, 5), LoadedFile()).condition == IndexCondition::kLagging);
}

TEST_CASE("JudgeIndexRecord refuses a missing record, a foreign file name and a record newer than the Store "
          "before any file is read",
          "[corpus_index]") {
  IndexRecord none = RecordAt(5);
  none.snapshot.reset();
  REQUIRE(JudgeIndexRecord(none));
  CHECK(JudgeIndexRecord(none)->condition == IndexCondition::kMissing);
  CHECK(JudgeIndexRecord(none)->cause == IndexCause::kNoRecord);

  IndexRecord foreign = RecordAt(5);
  foreign.snapshot->file = "../../etc/passwd";
  REQUIRE(JudgeIndexRecord(foreign));
  CHECK(JudgeIndexRecord(foreign)->condition == IndexCondition::kCorrupt);

  const IndexRecord newer = RecordAt(4);
  REQUIRE(JudgeIndexRecord(newer));
  CHECK(JudgeIndexRecord(newer)->cause == IndexCause::kNewerThanStore);
  CHECK_THAT(JudgeIndexRecord(newer)->reason, Catch::Contains("newer"));
  // JudgeIndex gives the record's verdict whatever the file facts say.
  CHECK(JudgeIndex(newer, LoadedFile()).cause == IndexCause::kNewerThanStore);

  CHECK_FALSE(JudgeIndexRecord(RecordAt(5)));
}

TEST_CASE("JudgeIndex tells a missing, a damaged, an unrecorded-save and a disagreeing file apart",
          "[corpus_index]") {
  IndexFileFacts missing;
  missing.exists = false;
  CHECK(JudgeIndex(RecordAt(5), missing).condition == IndexCondition::kMissing);

  IndexFileFacts damaged;
  damaged.problem = "index file x fails its SHA-256 check";
  const IndexVerdict corrupt = JudgeIndex(RecordAt(5), damaged);
  CHECK(corrupt.condition == IndexCondition::kCorrupt);
  CHECK_THAT(corrupt.reason, Catch::Contains("SHA-256"));

  // Intact, same models, newer than its record but not than the Store: a killed writer's save.
  IndexFileFacts unrecorded = damaged;
  unrecorded.header = IndexFileHeader{};
  unrecorded.header->stamp = IndexStamp{6, "models:test"};
  CHECK(JudgeIndex(RecordAt(6), unrecorded).cause == IndexCause::kSavedNotRecorded);
  // One generation past the Store: scrubbed for an erasure that was killed before its commit.
  unrecorded.header->stamp = IndexStamp{7, "models:test"};
  CHECK(JudgeIndex(RecordAt(6), unrecorded).cause == IndexCause::kSavedNotRecorded);
  unrecorded.header->stamp = IndexStamp{8, "models:test"};
  CHECK(JudgeIndex(RecordAt(6), unrecorded).cause == IndexCause::kFileUnusable);
  unrecorded.header->stamp = IndexStamp{6, "models:other"};
  CHECK(JudgeIndex(RecordAt(6), unrecorded).cause == IndexCause::kFileUnusable);

  CHECK(JudgeIndex(RecordAt(5), LoadedFile(IndexKind::kExact, 6)).cause == IndexCause::kContentsDisagree);
}

TEST_CASE("JudgeIndex names a file of another kind, and leaves the kind alone when it is not given",
          "[corpus_index]") {
  const IndexVerdict other = JudgeIndex(RecordAt(5), LoadedFile(IndexKind::kHnsw));
  CHECK(other.condition == IndexCondition::kOtherKind);
  CHECK_THAT(other.reason, Catch::Contains("hnsw") && Catch::Contains("exact"));
  IndexFileFacts unknown_kind = LoadedFile();
  unknown_kind.loaded->kind.reset();
  CHECK(JudgeIndex(RecordAt(5), unknown_kind).condition == IndexCondition::kFresh);
  // Not loaded at all (info): only the record and the file's presence and checks are judged.
  CHECK(JudgeIndex(RecordAt(8), IndexFileFacts{}).condition == IndexCondition::kLagging);
}
