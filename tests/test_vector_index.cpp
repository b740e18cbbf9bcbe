// VectorIndex: real index files (format 3, index_file.h). Exact distances, k handling, a save/load
// round trip, refusal of damaged or foreign files before (or when) FAISS reads them, delta chunks
// appended and searched, erasure scrubbed in place, compaction.
#include "index/vector_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <numeric>
#include <random>

#include "common/fs.h"
#include "common/sha256.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {
std::vector<float> RandomVectors(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 0.1f);
  std::vector<float> v(n * kEmbeddingDim);
  for (float& x : v) x = dist(rng);
  return v;
}

Embedding Row(const std::vector<float>& v, size_t i) {
  Embedding e{};
  std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(i * kEmbeddingDim), kEmbeddingDim,
              e.begin());
  return e;
}

std::string Slurp(const fs::path& p) { return ReadFile(p, 1 << 30).value(); }

void Overwrite(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

const IndexStamp kStamp{7, "models:test"};

// A populated index saved to dir/"faces.faiss"; returns what Save reported.
SavedFile SaveSample(const fs::path& path, size_t n = 50) {
  auto index = VectorIndex::CreateEmpty();
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 100 + 3 * static_cast<int64_t>(i);
  REQUIRE(index->Add(ids, RandomVectors(n, 7)));
  return index->Save(path, kStamp).value();
}

// The checksum a Store would record for the file at `path`: its header's, when that is intact.
std::string RecordedChecksum(const fs::path& path) {
  std::string checksum = "xxh3:0000000000000000";
  (void)IndexFile::ReadHeader(path, &checksum);
  return checksum;
}

// Loads `bytes` written to `path` with a Store record that matches them (as if an attacker or a
// bug had rewritten the record too), so that only the file's own checks stand in the way.
Result<std::unique_ptr<VectorIndex>> LoadTrustingRecord(const fs::path& path, const std::string& bytes,
                                                        const IndexStamp& stamp = kStamp) {
  Overwrite(path, bytes);
  return VectorIndex::Load(path, static_cast<int64_t>(bytes.size()), RecordedChecksum(path), stamp);
}

// An index file of `kind` framing `structure` as its FAISS section over n rows (WriteIndexFile,
// which computes every checksum: the file's own checks vouch for the bytes).
std::string Framed(const fs::path& path, IndexKind kind, std::string_view structure, size_t n = 50) {
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 1);
  const std::vector<float> rows = RandomVectors(n, 5);
  IndexFileContents contents;
  contents.header.stamp = kStamp;
  contents.header.kind = kind;
  contents.header.max_face_id = static_cast<int64_t>(n);
  contents.ids = ids;
  contents.rows = rows;
  contents.structure = structure;
  REQUIRE(WriteIndexFile(path, contents));
  return Slurp(path);
}

std::string FaissBytes(faiss::Index& index) {
  faiss::VectorIOWriter writer;
  faiss::write_index(&index, &writer);
  return std::string(writer.data.begin(), writer.data.end());
}

bool Holds(const std::string& haystack, const float* row) {
  return haystack.find(std::string_view(reinterpret_cast<const char*>(row), kEmbeddingDim * sizeof(float))) !=
         std::string::npos;
}
}  // namespace

TEST_CASE("Search returns nearest first with Euclidean, not squared, distances", "[index]") {
  auto index = VectorIndex::CreateEmpty();
  std::vector<float> v(3 * kEmbeddingDim, 0.f);
  v[kEmbeddingDim + 0] = 3.f;  // id 20 at distance 5 from the origin
  v[kEmbeddingDim + 1] = 4.f;
  v[2 * kEmbeddingDim + 0] = 1.f;  // id 30 at distance 1
  const std::vector<int64_t> ids = {10, 20, 30};
  REQUIRE(index->Add(ids, v));
  auto hits = index->Search(Embedding{}, 3).value();
  REQUIRE(hits.size() == 3);
  CHECK(hits[0].face_id == 10);
  CHECK(hits[0].distance == 0.f);
  CHECK(hits[1].face_id == 30);
  CHECK(hits[1].distance == 1.f);
  CHECK(hits[2].face_id == 20);
  CHECK(hits[2].distance == 5.f);
}

TEST_CASE("Search with k above ntotal returns ntotal hits, and an empty index or k <= 0 returns none",
          "[index]") {
  auto index = VectorIndex::CreateEmpty();
  CHECK(index->Search(Embedding{}, 5).value().empty());
  const std::vector<int64_t> ids = {1, 2};
  REQUIRE(index->Add(ids, RandomVectors(2, 1)));
  CHECK(index->Search(Embedding{}, 10).value().size() == 2);
  CHECK(index->Search(Embedding{}, 1).value().size() == 1);
  CHECK(index->Search(Embedding{}, 0).value().empty());
  CHECK(index->Search(Embedding{}, -3).value().empty());
}

TEST_CASE("Add refuses repeated ids and mismatched sizes without changing the index", "[index]") {
  auto index = VectorIndex::CreateEmpty();
  const std::vector<int64_t> first = {5, 9};
  REQUIRE(index->Add(first, RandomVectors(2, 1)));
  const std::vector<int64_t> again = {11, 9};
  auto dup = index->Add(again, RandomVectors(2, 2));
  REQUIRE_FALSE(dup);
  CHECK(dup.error().code == ErrorCode::kInvalidArgument);
  const std::vector<int64_t> twice = {12, 12};
  CHECK_FALSE(index->Add(twice, RandomVectors(2, 3)));
  const std::vector<int64_t> one = {13};
  CHECK(index->Add(one, RandomVectors(2, 4)).error().code == ErrorCode::kInvalidArgument);
  CHECK(index->ntotal() == 2);
  CHECK(index->max_id() == 9);
}

TEST_CASE("Save then Load gives identical search results, ntotal and max_id", "[index]") {
  test::TempDir dir;
  const size_t n = 300;
  const auto vectors = RandomVectors(n, 42);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 1000 + 7 * static_cast<int64_t>(i);
  auto index = VectorIndex::CreateEmpty();
  REQUIRE(index->Add(ids, vectors));
  CHECK(index->max_id() == ids.back());

  const fs::path path = dir / "faces.faiss";
  auto saved = index->Save(path, kStamp);
  REQUIRE(saved);
  CHECK(saved->size == static_cast<int64_t>(fs::file_size(path)));
  CHECK(saved->checksum == RecordedChecksum(path));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  auto loaded = VectorIndex::Load(path, saved->size, saved->checksum, kStamp);
  REQUIRE(loaded);
  CHECK((*loaded)->ntotal() == static_cast<int64_t>(n));
  CHECK((*loaded)->max_id() == ids.back());
  for (size_t q = 0; q < n; q += 37) {
    const auto before = index->Search(Row(vectors, q), 10).value();
    const auto after = (*loaded)->Search(Row(vectors, q), 10).value();
    REQUIRE(before.size() == after.size());
    CHECK(after[0].face_id == ids[q]);
    for (size_t i = 0; i < before.size(); ++i) {
      CHECK(before[i].face_id == after[i].face_id);
      CHECK(before[i].distance == after[i].distance);
    }
  }
}

TEST_CASE("RowsOf finds the asked ids' vectors in the file, its delta and memory, in id order, and leaves out "
          "erased and unknown ids",
          "[index]") {
  test::TempDir dir;
  const size_t n = 60;
  const auto vectors = RandomVectors(n, 5);
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = 10 + 2 * static_cast<int64_t>(i);  // 10, 12, ... 128
  auto index = VectorIndex::CreateEmpty();
  REQUIRE(index->Add(std::span(ids).first(40), std::span(vectors).first(40 * kEmbeddingDim)));
  const fs::path path = dir / "faces.faiss";
  auto saved = index->Save(path, kStamp);
  REQUIRE(saved);
  auto loaded = VectorIndex::Load(path, saved->size, saved->checksum, kStamp, {}, /*writable=*/true);
  REQUIRE(loaded);
  VectorIndex& mapped = **loaded;  // rows 0-39 in the file's main segment
  REQUIRE(mapped.Add(std::span(ids).subspan(40, 10), std::span(vectors).subspan(40 * kEmbeddingDim, 10 * kEmbeddingDim)));
  REQUIRE(mapped.Save(path, kStamp));  // rows 40-49: a delta chunk of the file
  REQUIRE(mapped.Add(std::span(ids).subspan(50), std::span(vectors).subspan(50 * kEmbeddingDim)));  // 50-59 in memory
  REQUIRE(mapped.Erase(std::vector<int64_t>{ids[3]}));

  // Asked: one id of each segment, the erased one, and ids the index never held (11, 999).
  const std::vector<int64_t> asked = {ids[0], ids[3], 11, ids[39], ids[45], ids[59], 999};
  const auto rows = mapped.RowsOf(asked);
  REQUIRE(rows.size() == 4);
  const size_t expected[] = {0, 39, 45, 59};
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO(i);
    CHECK(rows[i].first == ids[expected[i]]);
    CHECK(std::equal(rows[i].second, rows[i].second + kEmbeddingDim,
                     vectors.begin() + static_cast<std::ptrdiff_t>(expected[i] * kEmbeddingDim)));
  }
  CHECK(mapped.RowsOf(std::vector<int64_t>{}).empty());
}

TEST_CASE("Load refuses a truncated index file and ignores bytes past its committed length", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const SavedFile saved = SaveSample(path);
  const std::string bytes = Slurp(path);
  Overwrite(path, bytes.substr(0, bytes.size() - 100));
  auto r = VectorIndex::Load(path, saved.size, saved.checksum, kStamp);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kCorrupt);

  // What a killed append leaves: never read, the record says where the file ends.
  Overwrite(path, bytes + "FSVDELTA and the rest of a chunk cut short");
  auto appended = VectorIndex::Load(path, saved.size, saved.checksum, kStamp);
  REQUIRE(appended);
  CHECK((*appended)->ntotal() == 50);
}

TEST_CASE("Load refuses a bit-flipped index file as kCorrupt by its block checksums", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const SavedFile saved = SaveSample(path);
  std::string bytes = Slurp(path);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  Overwrite(path, bytes);
  auto r = VectorIndex::Load(path, saved.size, saved.checksum, kStamp);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kCorrupt);
  CHECK_THAT(r.error().message, Catch::Contains("fails the checksum of rows 0 to 49"));
}

TEST_CASE("Load turns a FAISS reader exception on damaged bytes into kCorrupt", "[index]") {
  // Header, checksums and record all vouch for the damaged structure (as if rewritten by an
  // attacker), so only FAISS's own parser stands between the bytes and us. FAISS 1.7.3 leaks the
  // partly read index when it throws here; LeakSanitizer runs need tests/lsan.supp.
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  faiss::IndexFlatL2 flat(kEmbeddingDim);
  auto r = LoadTrustingRecord(path, Framed(path, IndexKind::kHnsw, FaissBytes(flat).substr(0, 60)));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kCorrupt);
}

TEST_CASE("Load refuses well-formed FAISS files of another layout or dimension", "[index]") {
  test::TempDir dir;
  auto check_refused = [&](faiss::Index& index, const std::string& name) {
    const fs::path path = dir / name;
    faiss::write_index(&index, path.c_str());
    const std::string raw = Slurp(path);
    INFO(name);
    // Without our header: refused before FAISS sees a byte.
    auto bare = LoadTrustingRecord(path, raw);
    REQUIRE_FALSE(bare);
    CHECK(bare.error().code == ErrorCode::kCorrupt);
    CHECK_THAT(bare.error().message, Catch::Contains("not a facesearch index file"));
    // Framed as a valid file's structure: FAISS parses it and the kind check refuses it.
    auto framed = LoadTrustingRecord(path, Framed(path, IndexKind::kIvf, raw));
    REQUIRE_FALSE(framed);
    CHECK(framed.error().code == ErrorCode::kCorrupt);
  };
  faiss::IndexFlatL2 bare(kEmbeddingDim);  // no id map
  check_refused(bare, "bare.faiss");
  faiss::IndexIDMap2 small(new faiss::IndexFlatL2(64));  // wrong dimension
  small.own_fields = true;
  check_refused(small, "small.faiss");
  faiss::IndexIDMap2 inner_product(new faiss::IndexFlatIP(kEmbeddingDim));  // wrong metric
  inner_product.own_fields = true;
  check_refused(inner_product, "ip.faiss");
}

TEST_CASE("Index files truncated at any of many offsets are refused by their own header",
          "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  SaveSample(path);
  const std::string bytes = Slurp(path);
  for (size_t keep : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{30}, size_t{51}, size_t{52},
                      size_t{60}, size_t{75}, size_t{120}, size_t{127}, size_t{128}, size_t{200},
                      bytes.size() / 2, bytes.size() - 8, bytes.size() - 1}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    auto r = LoadTrustingRecord(path, bytes.substr(0, keep));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kCorrupt);
  }
}

TEST_CASE("Index files with one flipped bit anywhere are refused by their own checksum",
          "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  SaveSample(path);
  const std::string bytes = Slurp(path);
  std::mt19937 rng(11);
  std::vector<size_t> positions = {0, 7, 8, 12, 16, 24, 32, 40, 48, 52, 60, 70, 80, 100, 120, 127,
                                   140, 200, bytes.size() - 9, bytes.size() - 1};
  for (int i = 0; i < 40; ++i) positions.push_back(rng() % bytes.size());
  for (size_t pos : positions) {
    for (int bit : {0, 7}) {
      std::string damaged = bytes;
      damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << bit));
      INFO("bit " << bit << " of byte " << pos);
      auto r = LoadTrustingRecord(path, damaged);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::kCorrupt);
    }
  }
}

TEST_CASE("Random bytes and an empty file are refused as index files", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  std::mt19937 rng(3);
  std::string noise(5000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  CHECK(LoadTrustingRecord(path, noise).error().code == ErrorCode::kCorrupt);
  CHECK(LoadTrustingRecord(path, "FSVINDEX" + noise).error().code == ErrorCode::kCorrupt);
  CHECK(LoadTrustingRecord(path, "").error().code == ErrorCode::kCorrupt);
}

TEST_CASE("An intact index file stamped for another generation or model is refused", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  SaveSample(path);
  const std::string bytes = Slurp(path);
  REQUIRE(LoadTrustingRecord(path, bytes));
  auto other_generation = LoadTrustingRecord(path, bytes, IndexStamp{8, kStamp.model_identity});
  REQUIRE_FALSE(other_generation);
  CHECK_THAT(other_generation.error().message, Catch::Contains("generation 7"));
  auto other_model = LoadTrustingRecord(path, bytes, IndexStamp{7, "models:other"});
  REQUIRE_FALSE(other_model);
  CHECK_THAT(other_model.error().message, Catch::Contains("models:other"));
}

TEST_CASE("A FAISS structure holding more vectors than the main segment is refused", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  faiss::IndexFlatL2 quantizer(kEmbeddingDim);
  faiss::IndexIVFFlat ivf(&quantizer, kEmbeddingDim, 2);
  const std::vector<float> rows = RandomVectors(60, 9);
  ivf.train(60, rows.data());
  ivf.add(60, rows.data());  // 60 vectors for the file's 50 rows
  auto r = LoadTrustingRecord(path, Framed(path, IndexKind::kIvf, FaissBytes(ivf)));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("holds 60 vectors, its main segment 50"));
}

TEST_CASE("Load reports a missing index file as kNotFound", "[index]") {
  test::TempDir dir;
  auto r = VectorIndex::Load(dir / "absent.faiss", 1000, "xxh3:0000000000000000", kStamp);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kNotFound);
}

TEST_CASE("Rows added after a load are appended as a delta chunk and searched with the main rows",
          "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const SavedFile first = SaveSample(path);  // ids 100..247
  auto index = VectorIndex::Load(path, first.size, first.checksum, kStamp, {}, /*writable=*/true).value();
  const std::vector<float> fresh = RandomVectors(3, 99);
  const std::vector<int64_t> ids = {500, 501, 502};
  REQUIRE(index->Add(ids, fresh));
  const SavedFile second = index->Save(path, IndexStamp{8, kStamp.model_identity}).value();
  // O(new rows): one chunk of 3 rows (64-byte header, 3 ids, 3 rows, a checksum), nothing rewritten.
  CHECK(second.size - first.size == 64 + 3 * (8 + 512) + 8 + 32);  // padded to 64 bytes
  CHECK(second.checksum == first.checksum);

  auto loaded = VectorIndex::Load(path, second.size, second.checksum, IndexStamp{8, kStamp.model_identity});
  REQUIRE(loaded);
  CHECK((*loaded)->ntotal() == 53);
  CHECK((*loaded)->delta_rows() == 3);
  CHECK((*loaded)->max_id() == 502);
  CHECK((*loaded)->Search(Row(fresh, 1), 1).value().at(0).face_id == 501);
  CHECK((*loaded)->Search(Row(RandomVectors(50, 7), 4), 1).value().at(0).face_id == 112);
  // The record of the first save no longer matches: the stamp moved on with the chunk.
  CHECK_FALSE(VectorIndex::Load(path, second.size, second.checksum, kStamp));
}

TEST_CASE("Erase scrubs faces from the main rows and a delta chunk in place: no byte of their vectors "
          "is left in the file", "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const SavedFile first = SaveSample(path);
  const std::vector<float> main_rows = RandomVectors(50, 7), fresh = RandomVectors(3, 99);
  {
    auto index = VectorIndex::Load(path, first.size, first.checksum, kStamp, {}, true).value();
    const std::vector<int64_t> ids = {500, 501, 502};
    REQUIRE(index->Add(ids, fresh));
    REQUIRE(index->Save(path, IndexStamp{8, kStamp.model_identity}));
  }
  std::string before = Slurp(path);
  REQUIRE(Holds(before, &main_rows[4 * kEmbeddingDim]));
  REQUIRE(Holds(before, &fresh[1 * kEmbeddingDim]));
  auto index = VectorIndex::Load(path, static_cast<int64_t>(before.size()), first.checksum,
                                 IndexStamp{8, kStamp.model_identity}, {}, true).value();
  const std::vector<int64_t> erase = {112, 501, 999};  // 999 is not in the index
  CHECK(index->Erase(erase).value() == 2);
  const SavedFile after = index->Save(path, IndexStamp{9, kStamp.model_identity}).value();
  CHECK(after.size == static_cast<int64_t>(before.size()));  // in place
  CHECK(after.checksum != first.checksum);
  const std::string bytes = Slurp(path);
  CHECK_FALSE(Holds(bytes, &main_rows[4 * kEmbeddingDim]));
  CHECK_FALSE(Holds(bytes, &fresh[1 * kEmbeddingDim]));
  CHECK(Holds(bytes, &main_rows[5 * kEmbeddingDim]));

  auto loaded = VectorIndex::Load(path, after.size, after.checksum, IndexStamp{9, kStamp.model_identity});
  REQUIRE(loaded);  // every block was resealed
  CHECK((*loaded)->file()->VerifyBlocks().empty());
  const std::vector<int64_t> live = (*loaded)->ids();
  CHECK(live.size() == 51);
  CHECK(std::find(live.begin(), live.end(), 112) == live.end());
  CHECK((*loaded)->Search(Row(main_rows, 4), 1).value().at(0).face_id != 112);
  CHECK((*loaded)->Search(Row(fresh, 1), 60).value().size() == 51);  // erased rows never answer
}

TEST_CASE("Compact folds the delta into the main rows, drops erased rows and writes a whole file",
          "[index]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const SavedFile first = SaveSample(path);
  auto index = VectorIndex::Load(path, first.size, first.checksum, kStamp, {}, true).value();
  const std::vector<float> fresh = RandomVectors(3, 99);
  const std::vector<int64_t> ids = {500, 501, 502}, erase = {100, 502};
  REQUIRE(index->Add(ids, fresh));
  REQUIRE(index->Erase(erase));
  CHECK(index->compaction_due() == false);  // 3 rows: below kCompactMinRows
  REQUIRE(index->Compact(/*keep_training=*/true));
  CHECK(index->main_rows() == 51);
  CHECK(index->delta_rows() == 0);
  const SavedFile saved = index->Save(path, IndexStamp{9, kStamp.model_identity}).value();
  CHECK(saved.checksum != first.checksum);
  auto loaded = VectorIndex::Load(path, saved.size, saved.checksum, IndexStamp{9, kStamp.model_identity});
  REQUIRE(loaded);
  CHECK((*loaded)->ntotal() == 51);
  CHECK((*loaded)->file()->chunks().empty());
  CHECK((*loaded)->Search(Row(fresh, 0), 1).value().at(0).face_id == 500);
}
