// `facesearch cluster` on real photos: Obama's photos form one cluster, Biden is apart; kept
// clusters through their whole life cycle with the real binary; and the rules of stable ids and
// "different people" links on their own (fast tier).
#include <catch2/catch.hpp>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "engine/cluster_internal.h"
#include "frontend/format.h"
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

TEST_CASE("A re-run keeps the id of the saved cluster sharing at least half of the faces (Jaccard), never twice",
          "[cluster]") {
  auto saved = [](int64_t id, std::vector<int64_t> faces) {
    facesearch::SavedCluster c;
    c.id = id;
    for (int64_t f : faces) c.members.push_back({f, "save", {}});
    return c;
  };
  const std::vector<facesearch::SavedCluster> before = {saved(7, {1, 2, 3, 4}), saved(9, {10, 11})};
  const std::vector<std::vector<int64_t>> groups = {{1, 2, 3}, {4, 5}, {10, 11, 12, 13}, {10, 11, 12, 13, 14}, {20}};
  const std::vector<std::optional<int64_t>> ids = facesearch::MatchSavedIds(groups, before);
  CHECK(ids[0] == 7);             // 3 of 4 shared: 0.75
  CHECK_FALSE(ids[1].has_value());  // 1 of 5: 0.2
  CHECK(ids[2] == 9);             // 2 of 4: exactly 0.5 keeps the id
  CHECK_FALSE(ids[3].has_value());  // 2 of 5 (and 9 is taken)
  CHECK_FALSE(ids[4].has_value());
}

TEST_CASE("Faces marked different people never stay in one group: the one with fewer links inside moves",
          "[cluster]") {
  // One group of five: 0-1-2 a triangle, 2-3, 3-4. 1 and 3 have two links inside each: the
  // higher node moves, and all its neighbours are in the group it leaves, so it is alone.
  std::vector<uint32_t> labels = {0, 0, 0, 0, 0};
  facesearch::KeepApart(labels, {{0, 1}, {0, 2}, {1, 2}, {2, 3}, {3, 4}}, {{1, 3}});
  CHECK(labels[1] != labels[3]);
  CHECK(labels[0] == labels[1]);
  CHECK(labels[3] != labels[4]);

  // Two groups, 0-1-2 and 3-4, joined by 2-3; 0 and 2 are apart. 2 has fewer links inside (1
  // against 0's 1: a tie, so the higher node) and joins the group of 3, where it has a link.
  labels = {0, 0, 0, 1, 1};
  facesearch::KeepApart(labels, {{0, 1}, {1, 2}, {2, 3}, {3, 4}}, {{0, 2}});
  CHECK(labels[2] == labels[3]);
  CHECK(labels[0] == labels[1]);
}

namespace {

// obama3.jpg at 80%: the same person in a new file, to be indexed after the save.
void WriteSmallerCopy(const fs::path& path) {
  cv::Mat img = cv::imread(TestImage("obama3.jpg").string());
  REQUIRE_FALSE(img.empty());
  cv::Mat scaled;
  cv::resize(img, scaled, cv::Size(img.cols * 4 / 5, img.rows * 4 / 5), 0, 0, cv::INTER_AREA);
  fs::create_directories(path.parent_path());
  REQUIRE(cv::imwrite(path.string(), scaled));
}

struct ClusterCorpus : CorpusDir {
  RunResult Must(std::vector<std::string> args) const {
    RunResult r = Run(std::move(args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r;
  }
  // Face id by image file name (one face each).
  std::map<std::string, int64_t> FaceIds() const {
    std::map<std::string, int64_t> ids;
    for (const Json& line : ParseJsonLines(Must({"export"}).out))
      ids[fs::path(line["image"].str()).filename()] = static_cast<int64_t>(line["face_id"].num());
    return ids;
  }
  // Saved cluster id -> its face ids, and the subject it is labelled with ("" when none).
  std::map<int64_t, std::set<int64_t>> Saved(std::map<int64_t, std::string>* subjects = nullptr) const {
    std::map<int64_t, std::set<int64_t>> out;
    for (const Json& c : ParseJsonLines(Run({"cluster", "list", "--min-size", "1", "-f", "jsonl"}).out)) {
      const auto id = static_cast<int64_t>(c["cluster"].num());
      for (size_t i = 0; i < c["face_ids"].size(); ++i) out[id].insert(static_cast<int64_t>(c["face_ids"][i].num()));
      if (subjects) (*subjects)[id] = c["subject"].is_null() ? "" : c["subject"].str();
    }
    return out;
  }
  // The saved cluster holding `face` (0: none).
  int64_t ClusterOf(int64_t face) const {
    for (const auto& [id, faces] : Saved())
      if (faces.count(face)) return id;
    return 0;
  }
  size_t AuditRecords() const { return ParseJsonLines(Must({"audit", "--format", "jsonl"}).out).size(); }
};

}  // namespace

TEST_CASE("Kept clusters: saved with stable ids, labelled, merged, split, kept apart, updated and erased, each "
          "decision audited, and bad input changes nothing",
          "[cluster][e2e][models]") {
  ClusterCorpus c;
  c.Index({"obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"});
  const std::map<std::string, int64_t> face = c.FaceIds();
  const int64_t obama = face.at("obama.jpg"), obama2 = face.at("obama2.jpg"), obama3 = face.at("obama3.jpg"),
                biden = face.at("biden.jpg");

  // Saved, then saved again: the same groups keep their ids.
  const Json first = ParseJson(c.Must({"--case", "C-9", "cluster", "--save", "--min-size", "1", "-f", "json"}).out);
  CHECK(first["created"].num() == 2);
  const int64_t group = c.ClusterOf(obama), lone = c.ClusterOf(biden);
  CHECK(c.Saved().at(group) == std::set<int64_t>{obama, obama2, obama3});
  const Json again = ParseJson(c.Must({"cluster", "--save", "-f", "json"}).out);
  CHECK(again["kept"].num() == 2);
  CHECK(again["created"].num() == 0);
  CHECK(c.ClusterOf(obama) == group);
  CHECK(c.ClusterOf(biden) == lone);

  // Bad input: a clear error (exit 2), and neither the clusters nor the audit log change.
  const auto clusters_before = c.Saved();
  const size_t records_before = c.AuditRecords();
  const std::string g = std::to_string(group);
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"cluster", "show", "999"}, "no saved cluster 999"},
      {{"cluster", "merge", g, g}, "cannot merge cluster " + g + " with itself"},
      {{"cluster", "split", g, "--face-id", std::to_string(biden)}, "face " + std::to_string(biden) + " is not in cluster " + g},
      {{"cluster", "label", g, "--subject", "nobody"}, "no subject named 'nobody'"},
      {{"cluster", "merge", g, "999"}, "no saved cluster 999"}};
  for (const auto& [args, message] : bad) {
    RunResult r = c.Run(args);
    INFO(args[1] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(message) != std::string::npos);
  }
  CHECK(c.AuditRecords() == records_before);
  CHECK(c.Saved() == clusters_before);

  // A label, a merge that carries it, a split.
  c.Must({"subject", "add", "obama", "--face-id", std::to_string(obama), "--face-id", std::to_string(obama2)});
  c.Must({"--case", "C-9", "cluster", "label", g, "--subject", "obama"});
  c.Must({"cluster", "merge", g, std::to_string(lone)});
  std::map<int64_t, std::string> subjects;
  CHECK(c.Saved(&subjects).at(group) == std::set<int64_t>{obama, obama2, obama3, biden});
  CHECK(subjects.at(group) == "obama");
  CHECK(c.ClusterOf(biden) == group);
  c.Must({"cluster", "split", g, "--face-id", std::to_string(biden)});
  const int64_t split = c.ClusterOf(biden);
  CHECK(split != group);
  CHECK(split != lone);  // ids are never reused
  c.Must({"cluster", "different", std::to_string(biden), "--cluster", g});  // not that cluster's person
  RunResult refused = c.Run({"cluster", "merge", g, std::to_string(split)});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("are marked different people") != std::string::npos);

  // "Different people": a face link respected by re-clustering, a subject link by subject search.
  c.Must({"--case", "C-9", "cluster", "different", std::to_string(obama2), "--face-id", std::to_string(obama)});
  CHECK(c.ClusterOf(obama2) != c.ClusterOf(obama));  // it left the saved cluster at once
  for (const Json& cl : ParseJsonLines(c.Must({"cluster", "--min-size", "1", "-f", "jsonl"}).out)) {
    std::set<int64_t> ids;
    for (size_t i = 0; i < cl["face_ids"].size(); ++i) ids.insert(static_cast<int64_t>(cl["face_ids"][i].num()));
    CHECK_FALSE((ids.count(obama) && ids.count(obama2)));
  }
  c.Must({"cluster", "--save"});
  CHECK(c.ClusterOf(obama) == group);  // {obama, obama3}: 2 of the 3 saved faces
  CHECK(c.ClusterOf(obama2) != group);
  c.Must({"cluster", "different", std::to_string(obama3), "--subject", "obama"});
  const std::string found = c.Must({"query", "--subject", "obama", "-f", "jsonl"}).out;
  CHECK(found.find("obama.jpg") != std::string::npos);
  CHECK(found.find("obama3.jpg") == std::string::npos);

  // export --subject without --threshold: the calibrated distance for two references.
  const RunResult exported = c.Must({"export", "--subject", "obama"});
  CHECK(exported.err.find("plain refs=2") != std::string::npos);
  const Json export_record = ParseJsonLines(c.Must({"audit", "--format", "jsonl"}).out).back();
  const float two_refs = facesearch::frontend::SubjectThreshold(facesearch::Calibration::For({}), 2);
  CHECK(two_refs < 0.6f);
  CHECK(export_record["params"]["threshold"].num() == Approx(two_refs).epsilon(1e-6));

  // A new photo of the same person joins the saved cluster without clustering again.
  WriteSmallerCopy(c.dir / "later" / "obama3-small.jpg");
  c.Must({"index", (c.dir / "later").string()});
  const int64_t added = c.FaceIds().at("obama3-small.jpg");
  const Json update = ParseJson(c.Must({"--case", "C-9", "cluster", "--update", "-f", "json"}).out);
  CHECK(update["new_faces"].num() == 1);
  CHECK(update["joined"].num() == 1);
  CHECK(c.ClusterOf(added) == group);
  const Json shown = ParseJson(c.Must({"cluster", "show", g, "-f", "json"}).out);
  CHECK(shown["subject"].str() == "obama");
  CHECK(shown["label"]["case"].str() == "C-9");
  REQUIRE(shown["faces"].size() == 3);
  CHECK(shown["faces"][2]["face_id"].num() == added);
  CHECK(shown["faces"][2]["how"].str() == "update");
  CHECK(shown["faces"][2]["placed"]["case"].str() == "C-9");
  // Updated again with nothing indexed since: said so, exit 1, and no record or change written.
  const auto clusters_after_update = c.Saved();
  const size_t records_after_update = c.AuditRecords();  // after `cluster list` (audited) and `audit`
  const RunResult nothing = c.Run({"--case", "C-9", "cluster", "--update", "-f", "json"});
  INFO(nothing.err);
  CHECK(nothing.exit_code == 1);
  CHECK(nothing.err.find("nothing new since the save") != std::string::npos);
  CHECK(ParseJson(nothing.out)["new_faces"].num() == 0);
  CHECK(c.AuditRecords() == records_after_update);
  CHECK(c.Saved() == clusters_after_update);

  // Erasure: a forgotten face leaves its cluster.
  c.Must({"forget", "--face-id", std::to_string(added)});
  CHECK(c.Saved().at(group) == std::set<int64_t>{obama, obama3});

  std::vector<std::string> trail;
  for (const Json& r : ParseJsonLines(c.Must({"audit", "--format", "jsonl"}).out))
    if (r["action"].str() == "cluster" && r["params"].has("op") && r["params"]["op"].str() != "list" &&
        r["params"]["op"].str() != "show")
      trail.push_back(r["params"]["op"].str() + (r["case"].str().empty() ? "" : " " + r["case"].str()));
  CHECK(trail == std::vector<std::string>{"save C-9", "save", "label C-9", "merge", "split", "different",
                                          "different C-9", "save", "update C-9"});
}
