// The compact and approximate index kinds (issue #3): real FAISS IVF-Flat, IVF-PQ and HNSW
// structures and our int8 codes over a few thousand synthetic face-like vectors (identities with
// within-person spread), checked against the exact scan; their files; the corpus setting kept by
// every rebuild, catch-up and deletion.
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <faiss/impl/io.h>
#include <faiss/invlists/InvertedLists.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include "common/fs.h"
#include "common/sha256.h"
#include "index/corpus_index.h"
#include "index/index_file.h"
#include "index/mapped_lists.h"
#include "index/index_spec.h"
#include "index/vector_index.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

// n vectors around n/5 identity centres (spread 0.35 against ~0.8 between identities, like dlib's
// embeddings on LFW; docs/benchmarks.md), in random order.
std::vector<float> FaceLikeVectors(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> centre(0.f, 0.8f / std::sqrt(2.f * kEmbeddingDim));
  std::normal_distribution<float> spread(0.f, 0.35f / std::sqrt(kEmbeddingDim));
  const size_t identities = std::max<size_t>(1, n / 5);
  std::vector<float> centres(identities * kEmbeddingDim);
  for (float& c : centres) c = centre(rng);
  std::vector<float> v(n * kEmbeddingDim);
  for (size_t i = 0; i < n; ++i) {
    const size_t who = rng() % identities;
    for (size_t d = 0; d < kEmbeddingDim; ++d)
      v[i * kEmbeddingDim + d] = centres[who * kEmbeddingDim + d] + spread(rng);
  }
  return v;
}

Embedding Row(const std::vector<float>& v, size_t i) {
  Embedding e{};
  std::copy_n(v.begin() + static_cast<std::ptrdiff_t>(i * kEmbeddingDim), kEmbeddingDim, e.begin());
  return e;
}

std::vector<int64_t> Ids(size_t n, int64_t first = 1) {
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = first + 2 * static_cast<int64_t>(i);  // not row numbers
  return ids;
}

float ExactDistance(const Embedding& a, const std::vector<float>& v, size_t row) {
  double sum = 0;
  for (size_t d = 0; d < kEmbeddingDim; ++d) {
    const double diff = a[d] - v[row * kEmbeddingDim + d];
    sum += diff * diff;
  }
  return static_cast<float>(std::sqrt(sum));
}

constexpr IndexKind kAllKinds[] = {IndexKind::kExact, IndexKind::kInt8, IndexKind::kIvf,
                                   IndexKind::kIvfPq, IndexKind::kHnsw};

const IndexStamp kStamp{3, "models:test"};

// The FAISS structure of the index file `path` (recorded as `saved`, stamped `stamp`), parsed anew.
std::unique_ptr<faiss::Index> StructureOf(const fs::path& path, const SavedFile& saved, const IndexStamp& stamp) {
  auto file = IndexFile::Open(path, saved.size, saved.checksum, stamp, /*writable=*/false);
  REQUIRE(file);
  size_t read = 0;
  return ReadFaissIndex((*file)->structure(), &read);
}

const faiss::ArrayInvertedLists& ListsOf(const faiss::Index& index) {
  return dynamic_cast<const faiss::ArrayInvertedLists&>(*dynamic_cast<const faiss::IndexIVF&>(index).invlists);
}

// The code an IVF structure holds for flat row `row`; empty when no list holds it.
std::string IvfCode(const faiss::Index& index, int64_t row) {
  const faiss::ArrayInvertedLists& lists = ListsOf(index);
  for (size_t l = 0; l < lists.nlist; ++l)
    for (size_t i = 0; i < lists.ids[l].size(); ++i)
      if (lists.ids[l][i] == row)
        return std::string(reinterpret_cast<const char*>(lists.codes[l].data() + i * lists.code_size), lists.code_size);
  return "";
}

// The entries of an IVF structure that are tombstones (id -1) with the code `scrubbed`.
size_t Tombstones(const faiss::Index& index, std::string_view scrubbed) {
  const faiss::ArrayInvertedLists& lists = ListsOf(index);
  size_t n = 0;
  for (size_t l = 0; l < lists.nlist; ++l)
    for (size_t i = 0; i < lists.ids[l].size(); ++i)
      n += lists.ids[l][i] == -1 &&
           scrubbed == std::string_view(reinterpret_cast<const char*>(lists.codes[l].data() + i * lists.code_size),
                                        lists.code_size);
  return n;
}

std::string Slurp(const fs::path& p) { return ReadFile(p, 1 << 30).value(); }

bool Holds(const std::string& haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

std::string_view RowBytes(const std::vector<float>& v, size_t row) {
  return {reinterpret_cast<const char*>(v.data() + row * kEmbeddingDim), kEmbeddingDim * sizeof(float)};
}

ino_t Inode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("Every index kind over 3000 face-like vectors keeps recall@10 at least 0.9 against exact search with exact distances",
          "[index][kinds]") {
  const size_t n = 3000;
  const std::vector<float> v = FaceLikeVectors(n, 5);
  const std::vector<int64_t> ids = Ids(n);
  for (IndexKind kind : kAllKinds) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(ids, v));
    REQUIRE(index->Prepare());
    CHECK(index->prepared());
    auto recall = index->MeasureRecall(200);
    REQUIRE(recall);
    CHECK(recall->queries == 200);
    CHECK(recall->recall_at_10 >= (kind == IndexKind::kExact || kind == IndexKind::kInt8 ? 0.99 : 0.9));
    // Whatever the candidates, every distance returned is the exact one of that face.
    std::map<int64_t, size_t> row_of;
    for (size_t i = 0; i < n; ++i) row_of[ids[i]] = i;
    for (size_t probe : {size_t{0}, size_t{1234}, size_t{2999}}) {
      const Embedding q = Row(v, probe);
      auto hits = index->Search(q, 10);
      REQUIRE(hits);
      REQUIRE(hits->size() == 10);
      CHECK(hits->front().face_id == ids[probe]);  // itself, at distance 0
      for (size_t h = 0; h < hits->size(); ++h) {
        CHECK((*hits)[h].distance == Approx(ExactDistance(q, v, row_of.at((*hits)[h].face_id))).margin(1e-5));
        if (h > 0) CHECK((*hits)[h - 1].distance <= (*hits)[h].distance);
      }
    }
    const IndexSpec built = index->built_spec();
    if (kind == IndexKind::kIvf || kind == IndexKind::kIvfPq) CHECK(built.nlist == 76);  // 3000 / 39
    if (kind == IndexKind::kIvfPq) CHECK(built.pq_bits == 6);  // 64 centroids: >= 39 points each
    if (kind != IndexKind::kExact) CHECK(built.rerank == 100);
  }
}

TEST_CASE("SetProbes sets the IVF lists a search visits: all of them find the exact neighbours, one finds fewer",
          "[index][kinds]") {
  const size_t n = 3000;
  const std::vector<float> v = FaceLikeVectors(n, 9);
  for (IndexKind kind : {IndexKind::kIvf, IndexKind::kIvfPq}) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(Ids(n), v));
    REQUIRE(index->Prepare());
    const int nlist = index->built_spec().nlist;
    index->SetProbes(nlist);
    auto all = index->MeasureRecall(200);
    index->SetProbes(1);
    auto one = index->MeasureRecall(200);
    REQUIRE(all);
    REQUIRE(one);
    if (kind == IndexKind::kIvf) CHECK(all->recall_at_10 == 1.0);  // every list, re-ranked exactly
    CHECK(all->recall_at_10 >= 0.95);
    CHECK(one->recall_at_10 < all->recall_at_10 - 0.05);
  }
}

TEST_CASE("Save then Load keeps each kind and its answers, and its footprint tells the structure read onto the heap "
          "from the file's mapped rows, codes and lists",
          "[index][kinds]") {
  test::TempDir dir;
  const size_t n = 2000;
  const std::vector<float> v = FaceLikeVectors(n, 9);
  std::vector<Embedding> probes;
  for (size_t i = 0; i < 20; ++i) probes.push_back(Row(v, i * 97));
  const auto rows = static_cast<int64_t>(n * (kEmbeddingDim * 4 + 8));  // float vectors and ids
  for (IndexKind kind : kAllKinds) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(Ids(n), v));
    REQUIRE(index->Prepare());
    const fs::path path = dir / (std::string(IndexKindName(kind)) + ".faiss");
    auto saved = index->Save(path, kStamp);
    REQUIRE(saved);
    auto header = IndexFile::ReadHeader(path);
    REQUIRE(header);
    CHECK(header->kind == kind);
    CHECK(header->has_codes == (kind == IndexKind::kInt8));  // int8 codes are saved, not rebuilt
    auto loaded = VectorIndex::Load(path, saved->size, saved->checksum, kStamp);
    REQUIRE(loaded);
    CHECK((*loaded)->spec().kind == kind);
    CHECK((*loaded)->prepared());
    CHECK((*loaded)->built_spec() == index->built_spec());
    const IndexFootprint saved_footprint = index->footprint(), loaded_footprint = (*loaded)->footprint();
    CHECK(loaded_footprint.resident_bytes == saved_footprint.resident_bytes);
    CHECK(loaded_footprint.mapped_bytes == saved_footprint.mapped_bytes);
    auto before = index->SearchBatch(probes, 10);
    auto after = (*loaded)->SearchBatch(probes, 10);
    REQUIRE(before);
    REQUIRE(after);
    for (size_t q = 0; q < probes.size(); ++q) {
      REQUIRE(before->at(q).size() == after->at(q).size());
      for (size_t h = 0; h < before->at(q).size(); ++h) {
        CHECK(before->at(q)[h].face_id == after->at(q)[h].face_id);
        CHECK(before->at(q)[h].distance == after->at(q)[h].distance);
      }
    }
    switch (kind) {
      case IndexKind::kExact:
        CHECK(loaded_footprint.resident_bytes == 0);
        CHECK(loaded_footprint.mapped_bytes == rows);
        break;
      case IndexKind::kInt8:  // codes mapped; only their ranges are read
        CHECK(loaded_footprint.resident_bytes == static_cast<int64_t>(2 * kEmbeddingDim * sizeof(float)));
        CHECK(loaded_footprint.mapped_bytes == rows + static_cast<int64_t>(n * kEmbeddingDim));
        break;
      case IndexKind::kIvf:
      case IndexKind::kIvfPq:  // centroids (and codebooks) read, lists mapped
        CHECK(loaded_footprint.resident_bytes > 0);
        CHECK(loaded_footprint.mapped_bytes > rows);
        break;
      case IndexKind::kHnsw:  // FAISS reads the graph and its copy of the vectors
        CHECK(loaded_footprint.resident_bytes > static_cast<int64_t>(n * kEmbeddingDim * sizeof(float)));
        CHECK(loaded_footprint.mapped_bytes == rows);
        break;
    }
  }
}

TEST_CASE("Faces added after the structure was built are found by every kind", "[index][kinds]") {
  const std::vector<float> base = FaceLikeVectors(1500, 21);
  const std::vector<float> more = FaceLikeVectors(300, 22);
  for (IndexKind kind : kAllKinds) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(Ids(1500), base));
    REQUIRE(index->Prepare());
    REQUIRE(index->Add(Ids(300, 100000), more));
    REQUIRE(index->Prepare());
    CHECK(index->prepared());
    for (size_t i : {size_t{0}, size_t{150}, size_t{299}}) {
      auto hits = index->Search(Row(more, i), 1);
      REQUIRE(hits);
      REQUIRE(hits->size() == 1);
      CHECK(hits->front().face_id == 100000 + 2 * static_cast<int64_t>(i));
      CHECK(hits->front().distance == 0.f);
    }
  }
}

TEST_CASE("Erase takes rows out of every kind's structure without training it again, saved or not",
          "[index][kinds]") {
  test::TempDir dir;
  const size_t n = 1500;
  const std::vector<float> v = FaceLikeVectors(n, 41);
  const std::vector<int64_t> ids = Ids(n);
  for (IndexKind kind : kAllKinds) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(ids, v));
    REQUIRE(index->Prepare());
    const IndexSpec built = index->built_spec();
    const std::vector<int64_t> erase = {ids[10], ids[700]};
    REQUIRE(index->Erase(erase).value() == 2);
    CHECK(index->prepared());  // still searched through its structure: nothing to train
    CHECK(index->built_spec() == built);
    const fs::path path = dir / (std::string(IndexKindName(kind)) + ".faiss");
    auto saved = index->Save(path, kStamp);
    REQUIRE(saved);
    auto loaded = VectorIndex::Load(path, saved->size, saved->checksum, kStamp);
    REQUIRE(loaded);
    for (const VectorIndex* searched : {index.get(), loaded->get()}) {
      for (size_t i : {size_t{10}, size_t{700}}) {
        const auto hits = searched->Search(Row(v, i), 5);  // kept: a range-for over .value() of a
        REQUIRE(hits);                                       // temporary would read a dead object
        for (const Hit& h : *hits) CHECK(h.face_id != ids[i]);
      }
      CHECK(searched->Search(Row(v, 11), 1)->front().face_id == ids[11]);
      CHECK(searched->ids().size() == n - 2);
    }
  }
}

// Erase from a mapped IVF-Flat, IVF-PQ or HNSW file: same file and size, no float or code of the
// erased rows left, never found again, the rest found, every checksum resealed.
TEST_CASE("Erase from a mapped IVF or HNSW file scrubs its FAISS section in place", "[index][kinds]") {
  test::TempDir dir;
  const size_t n = 1500;
  const std::vector<float> v = FaceLikeVectors(n, 43);
  const std::vector<int64_t> ids = Ids(n);
  const std::vector<size_t> erased = {10, 700, 701};
  const IndexStamp next{kStamp.generation + 1, kStamp.model_identity};
  for (IndexKind kind : {IndexKind::kIvf, IndexKind::kIvfPq, IndexKind::kHnsw}) {
    INFO(IndexKindName(kind));
    const IndexSpec spec{.kind = kind};
    const bool ivf = kind != IndexKind::kHnsw;
    const fs::path path = dir / (std::string(IndexKindName(kind)) + ".faiss");
    SavedFile saved;
    {
      auto built = VectorIndex::CreateEmpty(spec);
      REQUIRE(built->Add(ids, v));
      REQUIRE(built->Prepare());
      saved = built->Save(path, kStamp).value();
    }
    std::vector<std::string> codes;  // the erased rows' IVF codes (IVF-Flat's are the floats)
    if (ivf) {
      const auto structure = StructureOf(path, saved, kStamp);
      for (size_t row : erased) codes.push_back(IvfCode(*structure, static_cast<int64_t>(row)));
    }
    const std::string before = Slurp(path);
    for (const std::string& code : codes) REQUIRE((!code.empty() && Holds(before, code)));
    for (size_t row : erased) REQUIRE(Holds(before, RowBytes(v, row)));
    const ino_t inode = Inode(path);

    SavedFile after;
    {
      auto index = VectorIndex::Load(path, saved.size, saved.checksum, kStamp, spec, /*writable=*/true).value();
      REQUIRE(index->Erase(std::vector<int64_t>{ids[10], ids[700], ids[701]}).value() == 3);
      after = index->Save(path, next).value();
      CHECK(index->Search(Row(v, 700), 1).value().at(0).face_id != ids[700]);
    }
    CHECK(Inode(path) == inode);  // written in place, not replaced by a whole new file
    CHECK(after.size == saved.size);
    CHECK(after.checksum != saved.checksum);
    const std::string bytes = Slurp(path);
    for (size_t row : erased) CHECK_FALSE(Holds(bytes, RowBytes(v, row)));
    for (const std::string& code : codes) CHECK_FALSE(Holds(bytes, code));

    auto loaded = VectorIndex::Load(path, after.size, after.checksum, next, spec);
    REQUIRE(loaded);  // the structure's checksum was resealed with the blocks
    CHECK((*loaded)->file()->VerifyBlocks().empty());
    CHECK((*loaded)->prepared());  // searched through its structure, untrained since
    if (ivf) {
      const auto structure = StructureOf(path, after, next);
      for (size_t row : erased) CHECK(IvfCode(*structure, static_cast<int64_t>(row)).empty());
      // PQ codes zeroed; IVF-Flat's floats set to the flat store's erased value.
      const std::vector<float> erased_row(kEmbeddingDim, kErasedValue);
      const std::string scrubbed = kind == IndexKind::kIvfPq
                                       ? std::string(ListsOf(*structure).code_size, '\0')
                                       : std::string(RowBytes(erased_row, 0));
      CHECK(Tombstones(*structure, scrubbed) == erased.size());
    }
    for (size_t row : erased) {
      const auto hits = (*loaded)->Search(Row(v, row), 10);
      REQUIRE(hits);
      CHECK(hits->size() == 10);  // tombstones take no candidate's place
      for (const Hit& h : *hits) CHECK(h.face_id != ids[row]);
    }
    CHECK((*loaded)->Search(Row(v, 11), 1)->front().face_id == ids[11]);
    CHECK((*loaded)->ids().size() == n - erased.size());
  }
}

TEST_CASE("A crafted approximate part is refused even when its header and checksum vouch for it",
          "[index][kinds]") {
  test::TempDir dir;
  const fs::path path = dir / "faces.faiss";
  const size_t n = 200;
  const std::vector<float> v = FaceLikeVectors(n, 8);
  const std::vector<int64_t> ids = Ids(n);
  // A whole file written with every checksum right: only the structure checks stand in the way.
  auto load = [&](IndexKind kind, std::string_view structure) {
    IndexFileContents contents;
    contents.header.stamp = kStamp;
    contents.header.kind = kind;
    contents.header.max_face_id = ids.back();
    contents.ids = ids;
    contents.rows = v;
    contents.structure = structure;
    auto saved = WriteIndexFile(path, contents);
    REQUIRE(saved);
    return VectorIndex::Load(path, saved->size, saved->checksum, kStamp);
  };
  auto bytes_of = [](faiss::Index& approx) {
    faiss::VectorIOWriter w;
    faiss::write_index(&approx, &w);
    return std::string(w.data.begin(), w.data.end());
  };
  // An IVF whose labels are not row numbers of the flat part (the re-rank would read past it).
  faiss::IndexFlatL2 quantizer(kEmbeddingDim);
  faiss::IndexIVFFlat ivf(&quantizer, kEmbeddingDim, 2);
  ivf.train(static_cast<faiss::Index::idx_t>(n), v.data());
  std::vector<faiss::Index::idx_t> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = static_cast<faiss::Index::idx_t>(i + 5000);
  ivf.add_with_ids(static_cast<faiss::Index::idx_t>(n), v.data(), labels.data());
  auto r = load(IndexKind::kIvf, bytes_of(ivf));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kCorrupt);
  CHECK_THAT(r.error().message, Catch::Contains("outside the index"));
  // An IVF without its lists (FAISS writes "il00" and reads them back as none).
  faiss::IndexIVFFlat listless(&quantizer, kEmbeddingDim, 2);
  listless.train(static_cast<faiss::Index::idx_t>(n), v.data());
  listless.replace_invlists(nullptr, /*own=*/false);
  r = load(IndexKind::kIvf, bytes_of(listless));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("not the arrays FAISS writes"));
  // The same structure claimed to be another kind.
  r = load(IndexKind::kHnsw, bytes_of(ivf));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("not a FAISS hnsw index"));
  // An exact file with a structure section.
  r = load(IndexKind::kExact, "extra");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("section its kind does not have"));
  // An unknown kind number.
  r = load(static_cast<IndexKind>(9), "");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("unknown index kind"));
}

TEST_CASE("auto picks exact for small corpora and the index settings round-trip through their text",
          "[index][kinds]") {
  CHECK(AutoIndexKind(0) == IndexKind::kExact);
  CHECK(AutoIndexKind(7) == IndexKind::kExact);
  CHECK(AutoIndexKind(199'999) == IndexKind::kExact);
  CHECK(AutoIndexKind(200'000) == IndexKind::kInt8);
  CHECK(AutoIndexKind(2'000'000) == IndexKind::kIvfPq);
  IndexSpec spec{.kind = IndexKind::kIvfPq, .nlist = 512, .nprobe = 16, .pq_m = 16, .rerank = 50};
  CHECK(FormatIndexSpec(spec) == "kind=ivfpq nlist=512 nprobe=16 pq_m=16 pq_bits=0 rerank=50");
  CHECK(ParseIndexSpec(FormatIndexSpec(spec)).value() == spec);
  CHECK_FALSE(ParseIndexSpec("kind=ivfpq pq_m=3"));  // does not divide 128
  CHECK_FALSE(ParseIndexSpec("kind=annoy"));
  CHECK_FALSE(ParseIndexSpec("nlist=3"));
  const IndexSpec at_1m = EffectiveIndexSpec(IndexSpec{.kind = IndexKind::kIvfPq}, 1'000'000);
  CHECK(at_1m.nlist == 1024);
  CHECK(at_1m.nprobe == 64);
  CHECK(at_1m.pq_m == 32);
  CHECK(at_1m.pq_bits == 8);
  CHECK(EffectiveIndexSpec(IndexSpec{.kind = IndexKind::kIvf}, 10'000'000).nlist == 2048);
  const IndexSpec tiny = EffectiveIndexSpec(IndexSpec{.kind = IndexKind::kIvfPq}, 7);
  CHECK(tiny.nlist == 1);
  CHECK(tiny.pq_bits == 1);
}

namespace {
ImageRecord Image(const std::string& name) {
  ImageRecord r;
  r.sha256 = Sha256Hex(name);
  r.path = "/photos/" + name;
  r.size = 10;
  return r;
}

// n faces with face-like embeddings (FaceLikeVectors), as ingest would store them.
std::vector<Face> FaceLikeFaces(size_t n, uint32_t seed) {
  const std::vector<float> v = FaceLikeVectors(n, seed);
  std::vector<Face> faces(n);
  for (size_t i = 0; i < n; ++i) {
    faces[i].box = {1, 2, 30, 30};
    faces[i].embedding = Row(v, i);
  }
  return faces;
}
}  // namespace

TEST_CASE("The corpus index setting is kept by rebuild, catch-up and deletion, and a deleted face never comes back",
          "[index][kinds][corpus_index]") {
  for (IndexKind kind : {IndexKind::kInt8, IndexKind::kIvf, IndexKind::kIvfPq, IndexKind::kHnsw}) {
    INFO(IndexKindName(kind));
    test::TempDir dir;
    const fs::path index_dir = dir / "index";
    auto store = Store::Open(dir / "corpus.db", "models:test").value();
    const std::vector<Face> faces = FaceLikeFaces(400, 31);
    const auto first = store->AddImage(Image("a"), std::vector<Face>(faces.begin(), faces.begin() + 300)).value();
    REQUIRE(store->SetMeta(kIndexSpecKey, FormatIndexSpec(IndexSpec{.kind = kind})));
    auto opened = OpenCorpusIndex(*store, index_dir, /*persist=*/true);
    REQUIRE(opened);
    CHECK(opened->state == IndexState::kRebuilt);
    CHECK(opened->index->spec().kind == kind);
    CHECK(store->GetIndexSnapshot().value()->kind == IndexKindName(kind));

    // Catch-up: the new faces join the same kind's structure.
    const auto second = store->AddImage(Image("b"), std::vector<Face>(faces.begin() + 300, faces.end())).value();
    opened = OpenCorpusIndex(*store, index_dir, /*persist=*/true);
    REQUIRE(opened);
    CHECK(opened->state == IndexState::kCaughtUp);
    CHECK(opened->index->spec().kind == kind);
    CHECK(opened->index->Search(faces[350].embedding, 1)->front().face_id == second[50]);

    // Deletion: scrubbed, compacted as the same kind (a small corpus), and the deleted faces are
    // gone from every answer.
    const int64_t image_a = store->FindImageBySha(Sha256Hex("a")).value().value();
    REQUIRE(store->DeleteFacesOfImage(image_a));  // faces first[0..299]
    opened = OpenCorpusIndex(*store, index_dir, /*persist=*/true);
    REQUIRE(opened);
    CHECK(opened->state == IndexState::kCaughtUp);
    CHECK(opened->index->spec().kind == kind);
    CHECK(opened->index->ntotal() == 100);
    for (size_t i : {size_t{0}, size_t{120}, size_t{299}}) {
      auto hits = opened->index->Search(faces[i].embedding, 20);
      REQUIRE(hits);
      for (const Hit& h : *hits) CHECK(std::find(first.begin(), first.end(), h.face_id) == first.end());
    }
    opened = OpenCorpusIndex(*store, index_dir, /*persist=*/false);
    REQUIRE(opened);
    CHECK(opened->state == IndexState::kFresh);
    CHECK(opened->index->spec().kind == kind);
  }
}

TEST_CASE("A search never trains an approximate index: it scans exactly, leaves the file alone, and the next writer trains",
          "[index][kinds][corpus_index]") {
  for (IndexKind kind : {IndexKind::kIvf, IndexKind::kIvfPq, IndexKind::kHnsw}) {
    INFO(IndexKindName(kind));
    test::TempDir dir;
    const fs::path index_dir = dir / "index";
    auto store = Store::Open(dir / "corpus.db", "models:test").value();
    const std::vector<Face> faces = FaceLikeFaces(400, 7);
    const auto kept = store->AddImage(Image("a"), std::vector<Face>(faces.begin(), faces.begin() + 300)).value();
    store->AddImage(Image("b"), std::vector<Face>(faces.begin() + 300, faces.end())).value();
    REQUIRE(store->SetMeta(kIndexSpecKey, FormatIndexSpec(IndexSpec{.kind = kind})));
    REQUIRE(OpenCorpusIndex(*store, index_dir, /*persist=*/true));  // a writer builds and trains it
    const auto trained = store->GetIndexSnapshot().value().value();

    // An erasure makes a small corpus's structure stale: a search scrubs and compacts the rows in
    // memory but does not train.
    REQUIRE(store->DeleteFacesOfImage(store->FindImageBySha(Sha256Hex("b")).value().value()));
    auto searched = OpenCorpusIndex(*store, index_dir, /*persist=*/true, IndexUse::kSearch);
    REQUIRE(searched);
    CHECK(searched->state == IndexState::kCaughtUp);
    CHECK(searched->index->needs_training());
    CHECK_FALSE(searched->index->prepared());
    CHECK(searched->index->ntotal() == 300);
    // The exact scan answers, with every remaining face reachable.
    CHECK(searched->index->Search(faces[123].embedding, 1)->front().face_id == kept[123]);
    // Nothing was saved: the snapshot is still the trained one of before the erasure.
    CHECK(store->GetIndexSnapshot().value()->generation == trained.generation);

    // The next writer trains it and saves it; a search then finds it fresh and prepared.
    auto written = OpenCorpusIndex(*store, index_dir, /*persist=*/true);
    REQUIRE(written);
    CHECK(written->index->prepared());
    auto again = OpenCorpusIndex(*store, index_dir, /*persist=*/true, IndexUse::kSearch);
    REQUIRE(again);
    CHECK(again->state == IndexState::kFresh);
    CHECK(again->index->prepared());
    CHECK_FALSE(again->index->needs_training());
  }
}

// VectorIndex::CompactToFile (issue #16: the in-memory compaction held every row, 10.6 GiB at 10M
// faces): the same file as Compact + Save, rows from the database appended on the way, and a
// failure that leaves the old file and the index's answers alone.
TEST_CASE("A streamed compaction writes the same file as an in-memory one, and a failed one changes nothing on disk",
          "[index][kinds]") {
  test::TempDir dir;
  const size_t n = 1500, saved_rows = 1200, delta_rows = 150;
  const std::vector<float> v = FaceLikeVectors(n, 47);
  const std::vector<int64_t> ids = Ids(n);
  auto span_of = [&](size_t from, size_t to) {
    return std::make_pair(std::span<const int64_t>(ids).subspan(from, to - from),
                          std::span<const float>(v).subspan(from * kEmbeddingDim, (to - from) * kEmbeddingDim));
  };
  const IndexStamp next{kStamp.generation + 1, kStamp.model_identity};
  for (IndexKind kind : {IndexKind::kExact, IndexKind::kIvf, IndexKind::kIvfPq, IndexKind::kHnsw}) {
    INFO(IndexKindName(kind));
    const fs::path in_memory = dir / (std::string(IndexKindName(kind)) + ".memory.faiss");
    const fs::path streamed = dir / (std::string(IndexKindName(kind)) + ".streamed.faiss");
    auto built = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    const auto [first_ids, first_rows] = span_of(0, saved_rows);
    REQUIRE(built->Add(first_ids, first_rows));
    REQUIRE(built->Prepare());
    const SavedFile saved = built->Save(in_memory, kStamp).value();
    fs::copy_file(in_memory, streamed);
    auto a = VectorIndex::Load(in_memory, saved.size, saved.checksum, kStamp, {}, true).value();
    auto b = VectorIndex::Load(streamed, saved.size, saved.checksum, kStamp, {}, true).value();
    REQUIRE(b->CanCompactStreaming());
    const auto [delta_ids, delta_vectors] = span_of(saved_rows, saved_rows + delta_rows);
    const std::vector<int64_t> erase = {ids[5], ids[saved_rows + 10]};
    for (VectorIndex* index : {a.get(), b.get()}) {
      REQUIRE(index->Add(delta_ids, delta_vectors));
      REQUIRE(index->Erase(erase).value() == 2);
    }
    // The rows still in the database: added to `a` before its compaction, fed to `b` during it.
    const auto [more_ids, more_vectors] = span_of(saved_rows + delta_rows, n);
    REQUIRE(a->Add(more_ids, more_vectors));
    REQUIRE(a->Compact(/*keep_training=*/true));
    REQUIRE(a->Prepare());
    const SavedFile memory_saved = a->Save(in_memory, next).value();
    int feeds = 0;
    const RowFeed feed = [&](const RowSink& sink) {
      ++feeds;
      return sink(more_ids, more_vectors);
    };
    const SavedFile streamed_saved = b->CompactToFile(streamed, next, feed, static_cast<int64_t>(more_ids.size())).value();
    CHECK(feeds == 1);
    CHECK(streamed_saved.size == memory_saved.size);
    if (kind != IndexKind::kHnsw) {
      // FAISS's inverted lists get the rows in the same order either way; HNSW's graph depends
      // on how many rows each add call brings, so its file differs while its answers agree.
      CHECK(Slurp(streamed) == Slurp(in_memory));
      CHECK(streamed_saved.checksum == memory_saved.checksum);
    }
    CHECK(b->file() != nullptr);  // the new file, mapped
    CHECK(b->main_rows() == static_cast<int64_t>(n - 2));
    CHECK(b->delta_rows() == 0);
    CHECK(b->prepared());
    CHECK(b->max_id() == ids.back());
    CHECK(b->file()->VerifyBlocks().empty());
    for (size_t i : {size_t{6}, saved_rows + 11, n - 1})
      CHECK(b->Search(Row(v, i), 1)->front().face_id == ids[i]);
    for (size_t i : {size_t{5}, saved_rows + 10}) {
      const auto hits = b->Search(Row(v, i), 5);
      REQUIRE(hits);
      for (const Hit& h : *hits) CHECK(h.face_id != ids[i]);
    }
    auto reloaded = VectorIndex::Load(streamed, streamed_saved.size, streamed_saved.checksum, next);
    REQUIRE(reloaded);
    CHECK((*reloaded)->ntotal() == static_cast<int64_t>(n - 2));

    // A feed that fails half-way: the file on disk is the last one, no temporary file is left,
    // and the index still answers (exactly, until it is opened again).
    const std::string before = Slurp(streamed);
    auto c = VectorIndex::Load(streamed, streamed_saved.size, streamed_saved.checksum, next, {}, true).value();
    const RowFeed failing = [&](const RowSink& sink) -> Status {
      const int64_t id = ids.back() + 2;
      FS_TRY(sink(std::span<const int64_t>(&id, 1), std::span<const float>(v).first(kEmbeddingDim)));
      return Fail(ErrorCode::kDatabase, "the database went away");
    };
    const auto failed = c->CompactToFile(streamed, IndexStamp{next.generation + 1, next.model_identity}, failing, 5);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == ErrorCode::kDatabase);
    CHECK(Slurp(streamed) == before);
    for (const auto& entry : fs::directory_iterator(dir.path()))
      CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
    CHECK(c->Search(Row(v, 6), 1)->front().face_id == ids[6]);
  }
  auto int8 = VectorIndex::CreateEmpty(IndexSpec{.kind = IndexKind::kInt8});
  REQUIRE(int8->Add(ids, v));
  REQUIRE(int8->Prepare());
  CHECK_FALSE(int8->CanCompactStreaming());  // its codes are built over every row at once
}

// mapped_lists.h: at 30M faces FAISS's reader copied 1.2 GB of IVF-PQ lists into every query
// process; read in place, they are the file's bytes.
TEST_CASE("A loaded IVF structure reads its inverted lists in place from the file's bytes, equal to what FAISS's "
          "reader copies, and refuses list sizes past the section's end",
          "[index][kinds]") {
  test::TempDir dir;
  const std::vector<float> v = FaceLikeVectors(1500, 53);
  for (IndexKind kind : {IndexKind::kIvf, IndexKind::kIvfPq}) {
    INFO(IndexKindName(kind));
    auto index = VectorIndex::CreateEmpty(IndexSpec{.kind = kind});
    REQUIRE(index->Add(Ids(v.size() / kEmbeddingDim), v));
    REQUIRE(index->Prepare());
    const fs::path path = dir / (std::string(IndexKindName(kind)) + ".faiss");
    const SavedFile saved = index->Save(path, kStamp).value();
    auto file = IndexFile::Open(path, saved.size, saved.checksum, kStamp, /*writable=*/false).value();
    const std::string_view section = file->structure();
    size_t copied_bytes = 0, mapped_bytes = 0;
    const std::unique_ptr<faiss::Index> copied = ReadFaissIndex(section, &copied_bytes);
    const std::unique_ptr<faiss::Index> mapped = ReadFaissIndex(section, &mapped_bytes, /*map_lists=*/true);
    CHECK(mapped_bytes == section.size());
    CHECK(copied_bytes == section.size());
    const faiss::ArrayInvertedLists& want = ListsOf(*copied);
    const auto* lists = dynamic_cast<const MappedInvertedLists*>(dynamic_cast<const faiss::IndexIVF&>(*mapped).invlists);
    REQUIRE(lists != nullptr);
    CHECK(lists->begin() >= section.data());
    CHECK(lists->end() <= section.data() + section.size());
    size_t entries = 0;
    for (size_t l = 0; l < want.nlist; ++l) {
      REQUIRE(lists->list_size(l) == want.ids[l].size());
      for (size_t i = 0; i < want.ids[l].size(); ++i, ++entries) {
        CHECK(lists->id(l, i) == want.ids[l][i]);
        CHECK(std::memcmp(lists->code_at(l, i), want.codes[l].data() + i * want.code_size, want.code_size) == 0);
      }
    }
    CHECK(entries == v.size() / kEmbeddingDim);

    // A crafted first list size that runs past the section's end (FAISS writes a size per list,
    // "full", when most lists hold entries) is refused before any entry is read.
    std::string crafted(section);
    const size_t ilar = crafted.find("ilar");
    REQUIRE(ilar != std::string::npos);
    const size_t form = ilar + 4 + 2 * sizeof(size_t);
    REQUIRE(crafted.compare(form, 4, "full") == 0);
    const size_t huge = size_t{1} << 40;
    std::memcpy(crafted.data() + form + 4 + sizeof(size_t), &huge, sizeof huge);
    size_t read = 0;
    CHECK_THROWS(ReadFaissIndex(crafted, &read, /*map_lists=*/true));
  }
}
