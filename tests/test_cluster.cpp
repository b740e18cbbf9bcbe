// `facesearch cluster` on real photos: Obama's photos form one cluster, Biden is apart.
#include <catch2/catch.hpp>
#include <set>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

std::set<std::string> Names(const Json& cluster) {
  std::set<std::string> names;
  for (size_t i = 0; i < cluster["images"].size(); ++i)
    names.insert(fs::path(cluster["images"][i].str()).filename().string());
  return names;
}

}  // namespace

TEST_CASE("cluster puts the three Obama photos in one cluster and Biden in his own", "[cluster][e2e]") {
  TempDir dir;
  for (const char* name : {"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"}) CopyTestImage(name, dir / "photos");
  const std::vector<std::string> base = {"--corpus", (dir / "corpus").string(), "--models", ModelsDir().string()};
  auto run = [&](std::vector<std::string> rest) {
    std::vector<std::string> a = base;
    a.insert(a.end(), rest.begin(), rest.end());
    return RunFacesearch(a);
  };
  REQUIRE(run({"index", (dir / "photos").string()}).exit_code == 0);

  RunResult all = run({"cluster", "--min-size", "1", "--format", "jsonl"});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  std::vector<Json> clusters = ParseJsonLines(all.out);
  REQUIRE(clusters.size() == 2);
  CHECK(clusters[0]["cluster"].num() == 1);  // largest first
  CHECK(clusters[0]["size"].num() == 3);
  CHECK(Names(clusters[0]) == std::set<std::string>{"obama.jpg", "obama2.jpg", "obama3.jpg"});
  CHECK(clusters[0]["face_ids"].size() == 3);
  CHECK(clusters[0]["boxes"].size() == 3);
  CHECK(clusters[1]["size"].num() == 1);
  CHECK(Names(clusters[1]) == std::set<std::string>{"biden.jpg"});

  // The default --min-size 2 leaves Biden's single photo out; json carries the totals.
  RunResult json = run({"cluster", "--format", "json"});
  REQUIRE(json.exit_code == 0);
  Json doc = ParseJson(json.out);
  CHECK(doc["faces"].num() == 4);
  CHECK(doc["clusters_total"].num() == 2);
  // obama.jpg is within the default 0.4 of obama2 (0.35) and obama3 (0.33); obama2-obama3 (0.43)
  // is not linked, yet both join obama.jpg's cluster.
  CHECK(doc["edges"].num() == 2);
  REQUIRE(doc["clusters"].size() == 1);
  CHECK(doc["clusters"][0]["size"].num() == 3);

  // A threshold so strict that no two faces link: no cluster of two, exit 1.
  RunResult strict = run({"cluster", "--threshold", "0.05", "--format", "jsonl"});
  CHECK(strict.exit_code == 1);
  CHECK(strict.out.empty());

  // Clustering shows faces, so it is audited like a search.
  RunResult audit = run({"audit", "--format", "jsonl"});
  REQUIRE(audit.exit_code == 0);
  size_t cluster_records = 0;
  for (const Json& rec : ParseJsonLines(audit.out)) cluster_records += rec["action"].str() == "cluster";
  CHECK(cluster_records == 3);
}
