// `facesearch reindex` end to end: the real binary, real photos, real FAISS files. Every kind
// answers queries exactly as the exact scan does on a small corpus, keeps its kind through forget
// and repair, and shows its kind, recall and memory in `info`.
#include <catch2/catch.hpp>
#include <fstream>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

struct Corpus : CorpusDir {
  // (face id, distance) of every match of the probe, nearest first (threshold 2: every face).
  std::vector<std::pair<int64_t, double>> Matches(const std::string& probe) const {
    Json q = RunJson({"query", "--format", "json", "-k", "10", "-t", "2", TestImage(probe).string()});
    std::vector<std::pair<int64_t, double>> out;
    const Json& m = q["results"][0]["matches"];
    for (size_t i = 0; i < m.size(); ++i)
      out.emplace_back(static_cast<int64_t>(m[i]["face_id"].num()), m[i]["distance"].num());
    return out;
  }
};

constexpr const char* kKinds[] = {"exact", "int8", "ivf", "ivfpq", "hnsw"};

}  // namespace

TEST_CASE("reindex to every kind answers queries exactly as the exact scan and info shows kind recall and memory resident and mapped",
          "[reindex][e2e][slow]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"});
  const auto exact = c.Matches("obama.jpg");
  REQUIRE(exact.size() == 4);

  Json info = c.RunJson({"info", "--json"});
  CHECK(info["index_kind"].str() == "exact");  // a corpus never reindexed
  CHECK(info["index_setting"].str() == "auto");  // follows the corpus size

  Json automatic = c.RunJson({"reindex", "--json"});
  CHECK(automatic["kind"].str() == "exact");  // 4 faces: far below the int8 threshold
  CHECK(automatic["setting"].str() == "auto");
  CHECK(c.RunJson({"info", "--json"})["index_setting"].str() == "auto");  // still follows the size

  for (const char* kind : kKinds) {
    INFO(kind);
    Json r = c.RunJson({"reindex", "--index", kind, "--json"});
    CHECK(r["kind"].str() == kind);
    CHECK(r["faces"].num() == 4);
    CHECK(r["recall_at_10"].num() == 1.0);
    CHECK(r["recall_queries"].num() == 4);
    CHECK(c.Matches("obama.jpg") == exact);  // same faces, same exact distances
    info = c.RunJson({"info", "--json"});
    CHECK(info["index_kind"].str() == kind);
    CHECK(info["index_state"].str() == "fresh");
    CHECK(info["index_vectors"].num() == 4);
    CHECK(info["index_recall_at_10"].num() == 1.0);
    CHECK(info["index_mapped_bytes"].num() >= 4 * (128 * 4 + 8));  // the float vectors and ids, at least
    CHECK(info["index_memory_bytes"].num() == info["index_resident_bytes"].num() + info["index_mapped_bytes"].num());
    CHECK(r["resident_bytes"].num() == info["index_resident_bytes"].num());
    CHECK(r["mapped_bytes"].num() == info["index_mapped_bytes"].num());
    CHECK(info["index_params"].str() == r["params"].str());
    RunResult table = c.Run({"info"});
    CHECK_THAT(table.out, Catch::Contains(std::string("index kind:      ") + kind));
    CHECK_THAT(table.out, Catch::Contains("index recall@10: 1.0000"));
    CHECK_THAT(table.out, Catch::Contains("index memory:    " + std::to_string(static_cast<int64_t>(
                                              info["index_resident_bytes"].num())) + " bytes resident, "));
    RunResult verify = c.Run({"verify"});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
  }

  // Parameters are kept as given and used; one that does not apply to the kind is refused.
  Json tuned = c.RunJson({"reindex", "--index", "hnsw", "--ef-search", "64", "--rerank", "20", "--json"});
  CHECK(tuned["setting"].str() == "kind=hnsw hnsw_m=0 ef_construction=0 ef_search=64 rerank=20");
  CHECK_THAT(tuned["params"].str(), Catch::Contains("ef_search=64"));
  RunResult wrong = c.Run({"reindex", "--index", "hnsw", "--nlist", "8"});
  CHECK(wrong.exit_code == 2);
  CHECK_THAT(wrong.err, Catch::Contains("does not apply to a hnsw index"));
  CHECK(c.RunJson({"info", "--json"})["index_kind"].str() == "hnsw");  // unchanged by the refusal

  // An index saved before the resident/mapped split recorded the sum only: its float vectors and
  // ids count as mapped, the rest (here the HNSW graph and its copy) as resident.
  ExecSql(c.db(), "DELETE FROM meta WHERE key = 'index.mapped_bytes'");
  info = c.RunJson({"info", "--json"});
  CHECK(info["index_mapped_bytes"].num() == 4 * (128 * 4 + 8));
  CHECK(info["index_resident_bytes"].num() == info["index_memory_bytes"].num() - 4 * (128 * 4 + 8));

  // Each setting change is in the audit log; the refused one is not.
  int reindexes = 0;
  std::string last;
  for (const Json& record : ParseJsonLines(c.Run({"audit", "--format", "jsonl"}).out))
    if (record["action"].str() == "reindex") {
      ++reindexes;
      last = record["params"]["setting"].str();
    }
  CHECK(reindexes == 7);  // auto, five kinds, the tuned hnsw
  CHECK(last == "kind=hnsw hnsw_m=0 ef_construction=0 ef_search=64 rerank=20");
}

TEST_CASE("forget with every index kind: the forgotten face never comes back and the kind is kept",
          "[reindex][e2e][privacy][slow]") {
  Corpus c;
  const char* forgotten[] = {"obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg",
                             "biden.jpg"};
  c.Index({"obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg",
           "biden.jpg"});
  size_t left = c.Matches("obama.jpg").size();
  for (size_t i = 0; i < std::size(kKinds); ++i) {
    const std::string kind = kKinds[i];
    INFO(kind << ", forgetting " << forgotten[i]);
    REQUIRE(c.RunJson({"reindex", "--index", kind, "--json"})["kind"].str() == kind);
    // The face id of the image about to be forgotten (export needs no models).
    int64_t gone = -1;
    for (const Json& line : ParseJsonLines(c.Run({"export"}).out))
      if (fs::path(line["image"].str()).filename() == forgotten[i]) gone = static_cast<int64_t>(line["face_id"].num());
    REQUIRE(gone > 0);
    RunResult f = c.Run({"forget", "--image", (c.photos / forgotten[i]).string()});
    INFO(f.err);
    REQUIRE(f.exit_code == 0);
    const auto after = c.Matches("obama.jpg");
    CHECK(after.size() == left - 1);
    left = after.size();
    for (const auto& [id, distance] : after) CHECK(id != gone);
    Json info = c.RunJson({"info", "--json"});
    CHECK(info["index_kind"].str() == kind);  // the rebuild after the erasure kept the kind
    CHECK(info["index_vectors"].num() == static_cast<double>(left));
  }
  CHECK(c.Run({"verify"}).exit_code == 0);
}

TEST_CASE("A corrupted index file of an approximate kind is caught by verify and rebuilt as that kind",
          "[reindex][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "obama2.jpg", "biden.jpg"});
  const auto exact = c.Matches("obama.jpg");
  REQUIRE(c.RunJson({"reindex", "--index", "ivfpq", "--json"})["kind"].str() == "ivfpq");
  const fs::path file = c.corpus / "index" / "faces.faiss";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) - 10));
    f.put('\x5a');
  }
  RunResult verify = c.Run({"verify"});
  CHECK(verify.exit_code == 2);
  CHECK_THAT(verify.out, Catch::Contains("checksum"));
  CHECK(c.Matches("obama.jpg") == exact);  // rebuilt from SQLite for the query
  RunResult repair = c.Run({"verify", "--repair"});
  INFO(repair.out << repair.err);
  CHECK(repair.exit_code == 0);
  Json info = c.RunJson({"info", "--json"});
  CHECK(info["index_kind"].str() == "ivfpq");
  CHECK(info["index_state"].str() == "fresh");
}
