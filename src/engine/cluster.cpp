// `facesearch cluster`: a k-nearest-neighbour graph from the corpus index, labelled by Chinese
// whispers; `--save` keeps the groups with stable ids, `--update` offers new faces to them.
#include "facesearch/cluster.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <span>
#include <unordered_map>

#include "common/json.h"
#include "engine/cluster_internal.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/chinese_whispers.h"
#include "index/corpus_index.h"

namespace facesearch {

namespace {
constexpr size_t kBatch = 1024;  // probes per index pass: bounds the hit lists held at once
constexpr const char* kThresholdKey = "cluster.threshold";  // the link distance of the last save

// Calls fn(probe, face_id) for each of the `neighbors` nearest faces of each probe within
// `threshold`, nearest first (the probe itself, when indexed, comes back too).
// An IVF index visits options.nprobe lists per face (kClusterNprobe unless set) rather than the
// corpus's query setting.
Status ForEachNeighbour(VectorIndex& index, std::span<const Embedding> probes, const ClusterOptions& options,
                        float threshold, const std::function<void(size_t, int64_t)>& fn) {
  const int neighbors = options.neighbors;
  const IndexKind kind = index.spec().kind;
  std::string how = IndexKindName(kind) + std::string(" index");
  if (kind == IndexKind::kIvf || kind == IndexKind::kIvfPq) {
    const int nprobe = options.nprobe > 0 ? options.nprobe : kClusterNprobe;
    index.SetProbes(nprobe);
    how += ", " + std::to_string(nprobe) + " lists per face";
  }
  std::unique_ptr<ProgressSink> progress = ProgressFor(static_cast<int64_t>(probes.size()));
  if (progress)
    progress->Start("finding each face's " + std::to_string(neighbors) + " nearest neighbours (" + how + ")",
                    static_cast<int64_t>(probes.size()));
  for (size_t begin = 0; begin < probes.size(); begin += kBatch) {
    if (progress) progress->Advance(static_cast<int64_t>(begin));
    const size_t count = std::min(kBatch, probes.size() - begin);
    // k + 1: the face itself comes back as its own nearest neighbour.
    FS_ASSIGN(auto hits, index.SearchBatch(probes.subspan(begin, count), neighbors + 1));
    for (size_t q = 0; q < count; ++q)
      for (const Hit& h : hits[q]) {
        if (h.distance > threshold) break;  // nearest first
        fn(begin + q, h.face_id);
      }
  }
  if (progress) progress->Finish();
  return Ok();
}

Result<float> LinkThreshold(Store& store, const ClusterOptions& options, bool saved) {
  if (options.threshold) return *options.threshold;
  if (saved) {
    FS_ASSIGN(std::optional<std::string> kept, store.GetMeta(kThresholdKey));
    if (kept) return std::strtof(kept->c_str(), nullptr);
  }
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(store));
  const bool sface = mode && mode->model == EmbeddingModel::kSface;
  return sface ? kSfaceClusterDistance : kDlibClusterDistance;
}

// What a corpus open for clustering holds: the store, opt-outs and, when the command changes
// saved clusters, the write lock. The lock is taken after the index is opened, so that a repair
// of the index can still be saved (OpenIndexForReading).
struct Opened {
  CorpusPaths paths;
  std::unique_ptr<Store> store;
  OptOutFilter optouts;
  OpenedIndex index;
  std::optional<FileLock> lock;
};

Result<Opened> OpenForClustering(const CorpusConfig& config, bool write) {
  Opened o;
  FS_ASSIGN(o.paths, CheckExistingCorpus(config));
  FS_ASSIGN(o.store, OpenStore(o.paths, StoreUse::kModels));
  FS_ASSIGN(o.index, OpenIndexForReading(*o.store, o.paths));
  if (write) {
    FS_ASSIGN(o.lock, LockCorpusForWriting(o.paths, config.lock_wait_s));
  }
  FS_TRY(CheckCaseRequired(*o.store, config.audit, "cluster"));
  FS_ASSIGN(o.optouts, OptOutFilter::Load(*o.store));
  return o;
}

// The audit params of a clustering: {"op"?, "threshold", "neighbors", "min_size"}.
std::string Params(float threshold, const ClusterOptions& options, const char* op) {
  Json p = Json::object();
  if (op) p["op"] = op;
  p["threshold"] = ShortestDouble(threshold);
  p["neighbors"] = options.neighbors;
  p["min_size"] = options.min_size;
  return JsonText(p);
}

}  // namespace

ClusterFace FaceOf(const FaceRecord& r) { return ClusterFace{r.face_id, r.image_path, r.image_sha256, r.face.box, {}, {}}; }

Status AttachSaved(Store& store, std::vector<FaceCluster>& clusters) {
  FS_ASSIGN(std::vector<SavedCluster> saved, store.SavedClusters());
  FS_ASSIGN(auto face_labels, store.FaceLabels());
  std::map<int64_t, const SavedCluster*> by_id;
  std::unordered_map<int64_t, const ClusterMember*> member_of;
  for (const SavedCluster& s : saved) {
    by_id[s.id] = &s;
    for (const ClusterMember& m : s.members) member_of[m.face_id] = &m;
  }
  std::unordered_map<int64_t, const ClusterLabel*> label_of;
  for (const auto& [face, label] : face_labels) label_of[face] = &label;
  for (FaceCluster& c : clusters) {
    if (auto it = by_id.find(c.id); it != by_id.end()) {
      c.label = it->second->label;
      c.created = it->second->created;
    }
    for (ClusterFace& f : c.faces) {
      if (auto m = member_of.find(f.face_id); m != member_of.end()) f.member = *m->second;
      if (auto l = label_of.find(f.face_id); l != label_of.end()) f.label = *l->second;
    }
  }
  return Ok();
}

void SortLargestFirst(std::vector<FaceCluster>& clusters) {
  std::sort(clusters.begin(), clusters.end(), [](const FaceCluster& a, const FaceCluster& b) {
    if (a.faces.size() != b.faces.size()) return a.faces.size() > b.faces.size();
    return a.faces.front().face_id < b.faces.front().face_id;
  });
}

std::vector<std::optional<int64_t>> MatchSavedIds(const std::vector<std::vector<int64_t>>& groups,
                                                  const std::vector<SavedCluster>& saved) {
  std::unordered_map<int64_t, size_t> saved_of;  // face -> index in `saved`
  for (size_t s = 0; s < saved.size(); ++s)
    for (const ClusterMember& m : saved[s].members) saved_of[m.face_id] = s;
  std::vector<std::optional<int64_t>> ids(groups.size());
  std::set<int64_t> given;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::map<size_t, size_t> shared;  // saved index -> faces in common
    for (int64_t face : groups[g])
      if (auto it = saved_of.find(face); it != saved_of.end()) ++shared[it->second];
    double best = 0;
    for (const auto& [s, common] : shared) {
      const double jaccard =
          static_cast<double>(common) / static_cast<double>(groups[g].size() + saved[s].members.size() - common);
      if (jaccard >= kKeepIdJaccard && jaccard > best && !given.count(saved[s].id)) {
        best = jaccard;
        ids[g] = saved[s].id;
      }
    }
    if (ids[g]) given.insert(*ids[g]);
  }
  return ids;
}

void KeepApart(std::vector<uint32_t>& labels, const std::vector<std::pair<uint32_t, uint32_t>>& edges,
               const std::vector<std::pair<uint32_t, uint32_t>>& apart) {
  if (apart.empty()) return;
  std::vector<std::vector<uint32_t>> links(labels.size()), partners(labels.size());
  for (auto [a, b] : edges) {
    links[a].push_back(b);
    links[b].push_back(a);
  }
  for (auto [a, b] : apart) {
    partners[a].push_back(b);
    partners[b].push_back(a);
  }
  uint32_t next_label = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end()) + 1;
  auto inside = [&](uint32_t node, uint32_t label) {
    return std::count_if(links[node].begin(), links[node].end(), [&](uint32_t n) { return labels[n] == label; });
  };
  auto clashes = [&](uint32_t node, uint32_t label) {
    return std::any_of(partners[node].begin(), partners[node].end(), [&](uint32_t p) { return labels[p] == label; });
  };
  // Each move takes a node to a group where it has no link, so the clashes only go down.
  for (bool moved = true; moved;) {
    moved = false;
    for (auto [a, b] : apart) {
      if (labels[a] != labels[b]) continue;
      const auto in_a = inside(a, labels[a]), in_b = inside(b, labels[b]);
      const uint32_t node = in_a < in_b ? a : in_b < in_a ? b : std::max(a, b);
      std::map<uint32_t, long> votes;
      for (uint32_t n : links[node])
        if (labels[n] != labels[node] && !clashes(node, labels[n])) ++votes[labels[n]];
      auto best = std::max_element(votes.begin(), votes.end(),
                                   [](const auto& x, const auto& y) { return x.second < y.second; });
      labels[node] = best == votes.end() ? next_label++ : best->first;
      moved = true;
    }
  }
}

Result<ClusterReport> ClusterCorpus(const CorpusConfig& config, const ClusterOptions& options) {
  if (options.neighbors < 1) return Fail(ErrorCode::kInvalidArgument, "--neighbors must be at least 1");
  if (options.min_size < 1) return Fail(ErrorCode::kInvalidArgument, "--min-size must be at least 1");
  if (options.iterations < 1) return Fail(ErrorCode::kInvalidArgument, "--iterations must be at least 1");
  FS_ASSIGN(Opened o, OpenForClustering(config, options.save));
  FS_ASSIGN(const float threshold, LinkThreshold(*o.store, options, /*saved=*/false));

  // The nodes: every live face not covered by an opt-out, in face id order.
  std::vector<ClusterFace> faces;
  std::vector<Embedding> embeddings;
  FS_TRY(o.store->ForEachFace([&](const FaceRecord& r) {
    if (o.optouts.Matches(r.face.embedding)) return;
    faces.push_back(FaceOf(r));
    embeddings.push_back(r.face.embedding);
  }));
  if (faces.size() >= UINT32_MAX) return Fail(ErrorCode::kInvalidArgument, "too many faces to cluster");
  std::unordered_map<int64_t, uint32_t> node_of;
  node_of.reserve(faces.size());
  for (size_t i = 0; i < faces.size(); ++i) node_of[faces[i].face_id] = static_cast<uint32_t>(i);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  FS_TRY(ForEachNeighbour(*o.index.index, embeddings, options, threshold, [&](size_t q, int64_t face) {
    const auto self = static_cast<uint32_t>(q);
    auto it = node_of.find(face);
    if (it == node_of.end() || it->second == self) return;  // stale, opted out, or itself
    edges.emplace_back(std::min(self, it->second), std::max(self, it->second));
  }));
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  spdlog::debug("cluster: {} faces, {} edges within {} from the index in {:.2f} s", faces.size(), edges.size(),
                threshold, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  FS_ASSIGN(std::vector<uint32_t> labels,
            ChineseWhispers(static_cast<uint32_t>(faces.size()), edges, options.iterations));
  FS_ASSIGN(std::vector<ApartLink> links, o.store->ApartLinks());
  std::vector<std::pair<uint32_t, uint32_t>> apart;
  for (const ApartLink& l : links) {
    auto a = node_of.find(l.a), b = node_of.find(l.b);
    if (a != node_of.end() && b != node_of.end()) apart.emplace_back(a->second, b->second);
  }
  KeepApart(labels, edges, apart);
  std::map<uint32_t, std::vector<uint32_t>> by_label;
  for (uint32_t i = 0; i < labels.size(); ++i) by_label[labels[i]].push_back(i);
  std::vector<std::vector<uint32_t>> members;
  for (auto& [label, m] : by_label) members.push_back(std::move(m));
  // Largest first; ties by smallest face id (members are in face id order), so the numbering is stable.
  std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
    return a.size() != b.size() ? a.size() > b.size() : a.front() < b.front();
  });

  ClusterReport report;
  report.threshold = threshold;
  report.faces = static_cast<int64_t>(faces.size());
  report.edges = static_cast<int64_t>(edges.size());
  report.clusters_total = static_cast<int64_t>(members.size());
  std::vector<int64_t> ids(members.size());
  for (size_t i = 0; i < members.size(); ++i) ids[i] = static_cast<int64_t>(i) + 1;
  if (options.save) {
    std::vector<std::vector<int64_t>> groups;
    for (const auto& m : members) {
      std::vector<int64_t>& g = groups.emplace_back();
      for (uint32_t i : m) g.push_back(faces[i].face_id);
    }
    FS_ASSIGN(std::vector<SavedCluster> saved, o.store->SavedClusters());
    std::vector<std::optional<int64_t>> kept = MatchSavedIds(groups, saved);
    ClusterChange change;
    change.replace_all = true;
    for (size_t g = 0; g < groups.size(); ++g) change.groups.push_back({kept[g], std::move(groups[g]), "save"});
    change.meta.emplace_back(kThresholdKey, fmt::format("{}", threshold));
    report.kept = std::count_if(kept.begin(), kept.end(), [](const auto& k) { return k.has_value(); });
    report.created = static_cast<int64_t>(members.size()) - report.kept;
    report.dropped = static_cast<int64_t>(saved.size()) - report.kept;
    change.results = {{"faces", report.faces}, {"kept", report.kept}, {"created", report.created}};
    FS_ASSIGN(ids, o.store->ChangeClusters(change, MakeAuditRecord(config.audit,
                                                                     {"cluster", Params(threshold, options, "save"), {}, ""})));
  }
  int64_t returned_faces = 0;
  for (size_t k = 0; k < members.size(); ++k) {
    if (members[k].size() < static_cast<size_t>(options.min_size)) break;
    FaceCluster& c = report.clusters.emplace_back();
    c.id = ids[k];
    for (uint32_t i : members[k]) c.faces.push_back(std::move(faces[i]));
    returned_faces += static_cast<int64_t>(members[k].size());
  }
  if (options.save) {
    FS_TRY(AttachSaved(*o.store, report.clusters));
    return report;
  }
  // The record goes in before any result leaves the engine; no record, no result.
  const std::string results = JsonText(
      {{"faces", report.faces}, {"clusters", report.clusters.size()}, {"faces_returned", returned_faces}});
  FS_TRY(AppendAudit(*o.store, config.audit, {"cluster", Params(threshold, options, nullptr), {}, results}));
  return report;
}

Result<ClusterReport> UpdateClusters(const CorpusConfig& config, const ClusterOptions& options) {
  if (options.neighbors < 1) return Fail(ErrorCode::kInvalidArgument, "--neighbors must be at least 1");
  FS_ASSIGN(Opened o, OpenForClustering(config, /*write=*/true));
  FS_ASSIGN(std::vector<SavedCluster> saved, o.store->SavedClusters());
  if (saved.empty())
    return Fail(ErrorCode::kNotFound, "no saved clusters to update: run `facesearch cluster --save` first");
  FS_ASSIGN(const float threshold, LinkThreshold(*o.store, options, /*saved=*/true));
  // Group of each face: a saved cluster's id, or -(1 + n) for the n-th new group.
  std::unordered_map<int64_t, int64_t> group_of;
  for (const SavedCluster& s : saved)
    for (const ClusterMember& m : s.members) group_of[m.face_id] = s.id;
  FS_ASSIGN(std::vector<int64_t> all, o.store->FaceIds());
  std::vector<int64_t> fresh;
  for (int64_t id : all)
    if (!group_of.count(id)) fresh.push_back(id);
  FS_ASSIGN(std::vector<FaceRecord> rows, o.store->GetFaces(fresh));
  std::erase_if(rows, [&](const FaceRecord& r) { return o.optouts.Matches(r.face.embedding); });
  ClusterReport report;
  report.threshold = threshold;
  report.faces = static_cast<int64_t>(all.size());
  report.clusters_total = static_cast<int64_t>(saved.size());
  // Nothing to place: no change to commit, and no face shown, so no audit record either.
  if (rows.empty()) return report;
  std::vector<Embedding> embeddings;
  for (const FaceRecord& r : rows) embeddings.push_back(r.face.embedding);

  std::vector<std::vector<int64_t>> hits(rows.size());
  FS_TRY(ForEachNeighbour(*o.index.index, embeddings, options, threshold,
                          [&](size_t q, int64_t face) { if (face != rows[q].face_id) hits[q].push_back(face); }));
  FS_ASSIGN(std::vector<ApartLink> links, o.store->ApartLinks());
  std::unordered_map<int64_t, std::vector<int64_t>> partners;
  for (const ApartLink& l : links) {
    partners[l.a].push_back(l.b);
    partners[l.b].push_back(l.a);
  }
  // A face marked "not this person" for a subject never joins a cluster labelled with it.
  FS_ASSIGN(std::vector<Subject> subjects, o.store->Subjects());
  std::unordered_map<int64_t, std::set<int64_t>> not_subject;  // face -> subject ids
  for (const Subject& s : subjects)
    for (const SubjectExclusion& e : s.exclusions) not_subject[e.face_id].insert(s.id);
  std::map<int64_t, std::vector<int64_t>> added;  // group -> its new faces
  int64_t new_groups = 0;
  for (size_t q = 0; q < rows.size(); ++q) {
    const int64_t face = rows[q].face_id;
    std::set<int64_t> barred;
    for (int64_t p : partners[face])
      if (auto it = group_of.find(p); it != group_of.end()) barred.insert(it->second);
    if (auto ns = not_subject.find(face); ns != not_subject.end())
      for (const SavedCluster& s : saved)
        if (s.label && ns->second.count(s.label->subject_id)) barred.insert(s.id);
    std::map<int64_t, int> votes;
    int64_t choice = 0;
    int best = 0;
    for (int64_t n : hits[q]) {  // nearest first, so a tie goes to the nearest
      auto it = group_of.find(n);
      if (it == group_of.end() || barred.count(it->second)) continue;
      if (++votes[it->second] > best) {
        best = votes[it->second];
        choice = it->second;
      }
    }
    if (best == 0) choice = -(++new_groups);
    else report.joined += choice > 0;
    group_of[face] = choice;
    added[choice].push_back(face);
  }
  report.new_faces = static_cast<int64_t>(rows.size());
  report.created = new_groups;
  ClusterChange change;
  for (auto& [group, faces] : added)
    change.groups.push_back({group > 0 ? std::optional<int64_t>(group) : std::nullopt, faces, "update"});
  change.results = {{"new_faces", report.new_faces}, {"joined", report.joined}, {"created", report.created}};
  FS_ASSIGN(std::vector<int64_t> ids, o.store->ChangeClusters(change, MakeAuditRecord(config.audit,
                                                                 {"cluster", Params(threshold, options, "update"), {}, ""})));
  // The clusters that gained faces, whole.
  std::set<int64_t> touched(ids.begin(), ids.end());
  FS_ASSIGN(saved, o.store->SavedClusters());
  for (const SavedCluster& s : saved) {
    if (!touched.count(s.id)) continue;
    std::vector<int64_t> members;
    for (const ClusterMember& m : s.members) members.push_back(m.face_id);
    FS_ASSIGN(std::vector<FaceRecord> records, o.store->GetFaces(members));
    FaceCluster& c = report.clusters.emplace_back();
    c.id = s.id;
    for (const FaceRecord& r : records) c.faces.push_back(FaceOf(r));
  }
  SortLargestFirst(report.clusters);
  report.clusters_total = static_cast<int64_t>(saved.size());
  FS_TRY(AttachSaved(*o.store, report.clusters));
  return report;
}

}  // namespace facesearch
