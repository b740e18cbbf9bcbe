// Kept clusters (facesearch/cluster.h): list, show, label, merge, split and "different people".
// Every change takes the corpus write lock (serialised with erasures) and commits with its audit
// record (Store::ChangeClusters); list and show are audited like any command that shows faces.
#include <algorithm>
#include <set>
#include <unordered_map>

#include "common/json.h"
#include "engine/cluster_internal.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "facesearch/cluster.h"
#include "facesearch/subject.h"

namespace facesearch {

namespace {

std::string FaceText(int64_t face) { return "face " + std::to_string(face); }

Result<const SavedCluster*> FindSaved(const std::vector<SavedCluster>& saved, int64_t id) {
  for (const SavedCluster& s : saved)
    if (s.id == id) return &s;
  return Fail(ErrorCode::kNotFound, "no saved cluster " + std::to_string(id) +
                                        " (`facesearch cluster list` shows them; `cluster --save` keeps a clustering)"
                                        "; nothing was changed");
}

bool Holds(const SavedCluster& c, int64_t face) {
  return std::any_of(c.members.begin(), c.members.end(), [&](const ClusterMember& m) { return m.face_id == face; });
}

std::vector<int64_t> FaceIdsOf(const SavedCluster& c) {
  std::vector<int64_t> ids;
  for (const ClusterMember& m : c.members) ids.push_back(m.face_id);
  return ids;
}

Status RequireFace(Store& store, int64_t face) {
  FS_ASSIGN(std::vector<FaceRecord> rows, store.GetFaces(std::vector<int64_t>{face}));
  if (rows.empty())
    return Fail(ErrorCode::kNotFound, "--face-id " + std::to_string(face) +
                                          " names no face in the corpus (query, export and `cluster show` print "
                                          "face ids); nothing was changed");
  return Ok();
}

Result<Subject> FindSubject(Store& store, const std::string& name) {
  FS_ASSIGN(std::vector<Subject> found, store.Subjects(name));
  if (found.empty())
    return Fail(ErrorCode::kNotFound, "no subject named '" + name +
                                          "' (`facesearch subject list` shows them, `subject add` creates one); "
                                          "nothing was changed");
  return found.front();
}

Status Commit(Store& store, const CorpusConfig& config, ClusterChange change, const nlohmann::ordered_json& params,
              std::vector<int64_t>* ids = nullptr) {
  FS_ASSIGN(std::vector<int64_t> written,
            store.ChangeClusters(change, MakeAuditRecord(config.audit, {"cluster", JsonText(params), {}, ""})));
  if (ids) *ids = std::move(written);
  return Ok();
}

// The faces of `ids` still in the corpus and not covered by an opt-out, as cluster faces.
Result<std::vector<FaceRecord>> VisibleFaces(Store& store, const OptOutFilter& optouts, const std::vector<int64_t>& ids) {
  FS_ASSIGN(std::vector<FaceRecord> rows, store.GetFaces(ids));
  std::erase_if(rows, [&](const FaceRecord& r) { return optouts.Matches(r.face.embedding); });
  return rows;
}

// A search-like command that shows faces: corpus checked, store writable for its audit record.
Result<std::unique_ptr<Store>> OpenForShowing(const CorpusConfig& config) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_TRY(RequireWritable(paths, "showing saved clusters must commit its audit record first"));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  FS_TRY(CheckCaseRequired(*store, config.audit, "cluster"));
  return store;
}

}  // namespace

Result<std::vector<FaceCluster>> SavedClusterList(const CorpusConfig& config, int min_size) {
  if (min_size < 1) return Fail(ErrorCode::kInvalidArgument, "--min-size must be at least 1");
  FS_ASSIGN(auto store, OpenForShowing(config));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));
  FS_ASSIGN(std::vector<SavedCluster> saved, store->SavedClusters());
  std::vector<int64_t> ids;
  for (const SavedCluster& s : saved)
    if (s.members.size() >= static_cast<size_t>(min_size))
      for (const ClusterMember& m : s.members) ids.push_back(m.face_id);
  FS_ASSIGN(std::vector<FaceRecord> rows, VisibleFaces(*store, optouts, ids));
  std::unordered_map<int64_t, const FaceRecord*> row_of;
  for (const FaceRecord& r : rows) row_of[r.face_id] = &r;
  std::vector<FaceCluster> clusters;
  int64_t shown = 0;
  for (const SavedCluster& s : saved) {
    FaceCluster c;
    c.id = s.id;
    for (const ClusterMember& m : s.members)
      if (auto it = row_of.find(m.face_id); it != row_of.end()) c.faces.push_back(FaceOf(*it->second));
    if (c.faces.size() < static_cast<size_t>(min_size)) continue;
    shown += static_cast<int64_t>(c.faces.size());
    clusters.push_back(std::move(c));
  }
  SortLargestFirst(clusters);
  FS_TRY(AttachSaved(*store, clusters));
  FS_TRY(AppendAudit(*store, config.audit,
                     {"cluster", JsonText({{"op", "list"}, {"min_size", min_size}}), {},
                      JsonText({{"clusters", clusters.size()}, {"faces_returned", shown}})}));
  return clusters;
}

Result<ClusterDetail> ShowCluster(const CorpusConfig& config, int64_t id) {
  FS_ASSIGN(auto store, OpenForShowing(config));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));
  FS_ASSIGN(std::vector<SavedCluster> saved, store->SavedClusters());
  FS_ASSIGN(const SavedCluster* found, FindSaved(saved, id));
  ClusterDetail detail;
  FS_ASSIGN(detail.records, VisibleFaces(*store, optouts, FaceIdsOf(*found)));
  detail.cluster.id = id;
  std::vector<int64_t> shown;
  for (const FaceRecord& r : detail.records) {
    detail.cluster.faces.push_back(FaceOf(r));
    shown.push_back(r.face_id);
  }
  std::vector<FaceCluster> one{std::move(detail.cluster)};
  FS_TRY(AttachSaved(*store, one));
  detail.cluster = std::move(one.front());
  FS_TRY(AppendAudit(*store, config.audit, {"cluster", JsonText({{"op", "show"}, {"cluster", id}}), {}, JsonText(shown)}));
  return detail;
}

Status LabelFaces(const CorpusConfig& config, const LabelTarget& target, const std::string& subject) {
  if (target.cluster_id.has_value() == target.face_id.has_value())
    return Fail(ErrorCode::kInvalidArgument, "label a saved cluster (cluster label ID --subject NAME) or one face "
                                             "(cluster label --face-id N --subject NAME), not both");
  FS_ASSIGN(LockedCorpus c, OpenLockedCorpus(config, StoreUse::kWrite));
  FS_ASSIGN(Subject who, FindSubject(*c.store, subject));
  std::vector<int64_t> faces;
  if (target.cluster_id) {
    FS_ASSIGN(std::vector<SavedCluster> saved, c.store->SavedClusters());
    FS_ASSIGN(const SavedCluster* found, FindSaved(saved, *target.cluster_id));
    faces = FaceIdsOf(*found);
  } else {
    FS_TRY(RequireFace(*c.store, *target.face_id));
    faces = {*target.face_id};
  }
  for (int64_t f : faces)
    if (who.Excludes(f))
      return Fail(ErrorCode::kInvalidArgument, FaceText(f) + " is marked not '" + subject +
                                                   "' (`subject show` lists it): split it out first; nothing was changed");
  // An opt-out wins over any label: its faces are never named.
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*c.store));
  FS_ASSIGN(std::vector<FaceRecord> rows, c.store->GetFaces(faces));
  for (const FaceRecord& r : rows)
    if (optouts.Matches(r.face.embedding))
      return Fail(ErrorCode::kInvalidArgument, FaceText(r.face_id) + " matches an opt-out (`facesearch optout list`): "
                                                                     "it cannot be labelled; nothing was changed");
  ClusterChange change;
  change.label = ClusterChange::Label{target.cluster_id, target.face_id, who.id};
  nlohmann::ordered_json params = {{"op", "label"}, {"subject", subject}, {"subject_id", who.id}};
  if (target.cluster_id) params["cluster"] = *target.cluster_id;
  else params["face_id"] = *target.face_id;
  return Commit(*c.store, config, std::move(change), params);
}

Result<int64_t> MergeClusters(const CorpusConfig& config, int64_t a, int64_t b) {
  if (a == b)
    return Fail(ErrorCode::kInvalidArgument, "cannot merge cluster " + std::to_string(a) +
                                                 " with itself: give two saved clusters; nothing was changed");
  FS_ASSIGN(LockedCorpus c, OpenLockedCorpus(config, StoreUse::kWrite));
  FS_ASSIGN(std::vector<SavedCluster> saved, c.store->SavedClusters());
  FS_ASSIGN(const SavedCluster* into, FindSaved(saved, a));
  FS_ASSIGN(const SavedCluster* from, FindSaved(saved, b));
  if (into->label && from->label && into->label->subject_id != from->label->subject_id)
    return Fail(ErrorCode::kInvalidArgument, "cluster " + std::to_string(a) + " is labelled '" + into->label->subject +
                                                 "' and cluster " + std::to_string(b) + " '" + from->label->subject +
                                                 "': two people cannot be merged; nothing was changed");
  FS_ASSIGN(std::vector<ApartLink> links, c.store->ApartLinks());
  for (const ApartLink& l : links)
    if ((Holds(*into, l.a) && Holds(*from, l.b)) || (Holds(*into, l.b) && Holds(*from, l.a)))
      return Fail(ErrorCode::kInvalidArgument, FaceText(l.a) + " and " + FaceText(l.b) +
                                                   " are marked different people (`cluster different`, audit record " +
                                                   std::to_string(l.decided.audit_seq) +
                                                   "): these clusters cannot be merged; nothing was changed");
  ClusterChange change;
  change.groups.push_back({a, FaceIdsOf(*from), "merge"});
  if (!into->label && from->label) change.label = ClusterChange::Label{a, std::nullopt, from->label->subject_id};
  FS_TRY(Commit(*c.store, config, std::move(change), {{"op", "merge"}, {"into", a}, {"from", b}}));
  return a;
}

Result<int64_t> SplitCluster(const CorpusConfig& config, int64_t id, const std::vector<int64_t>& faces) {
  if (faces.empty())
    return Fail(ErrorCode::kInvalidArgument, "say which faces to split off: --face-id N (`cluster show ID` lists them)");
  FS_ASSIGN(LockedCorpus c, OpenLockedCorpus(config, StoreUse::kWrite));
  FS_ASSIGN(std::vector<SavedCluster> saved, c.store->SavedClusters());
  FS_ASSIGN(const SavedCluster* found, FindSaved(saved, id));
  for (int64_t f : faces)
    if (!Holds(*found, f))
      return Fail(ErrorCode::kInvalidArgument, FaceText(f) + " is not in cluster " + std::to_string(id) +
                                                   " (`facesearch cluster show " + std::to_string(id) +
                                                   "` lists its faces); nothing was changed");
  if (std::set<int64_t>(faces.begin(), faces.end()).size() == found->members.size())
    return Fail(ErrorCode::kInvalidArgument, "those are all the faces of cluster " + std::to_string(id) +
                                                 ": leave at least one behind; nothing was changed");
  ClusterChange change;
  change.groups.push_back({std::nullopt, faces, "split"});
  std::vector<int64_t> ids;
  FS_TRY(Commit(*c.store, config, std::move(change), {{"op", "split"}, {"cluster", id}, {"face_ids", faces}}, &ids));
  return ids.front();
}

Status MarkDifferent(const CorpusConfig& config, int64_t face, const DifferentFrom& other) {
  const int given = other.face_id.has_value() + other.cluster_id.has_value() + !other.subject.empty();
  if (given != 1)
    return Fail(ErrorCode::kInvalidArgument, "say who face " + std::to_string(face) +
                                                 " is not: one of --face-id N, --cluster ID or --subject NAME");
  if (!other.subject.empty()) return ExcludeFromSubject(config, other.subject, {face});
  if (other.face_id == face)
    return Fail(ErrorCode::kInvalidArgument, "a face cannot be a different person from itself; nothing was changed");
  FS_ASSIGN(LockedCorpus c, OpenLockedCorpus(config, StoreUse::kWrite));
  FS_TRY(RequireFace(*c.store, face));
  FS_ASSIGN(std::vector<SavedCluster> saved, c.store->SavedClusters());
  ClusterChange change;
  nlohmann::ordered_json params = {{"op", "different"}, {"face_id", face}};
  const SavedCluster* shared = nullptr;  // the saved cluster `face` must leave
  if (other.face_id) {
    FS_TRY(RequireFace(*c.store, *other.face_id));
    change.apart.emplace_back(face, *other.face_id);
    for (const SavedCluster& s : saved)
      if (Holds(s, face) && Holds(s, *other.face_id)) shared = &s;
    params["other_face_id"] = *other.face_id;
  } else {
    FS_ASSIGN(const SavedCluster* found, FindSaved(saved, *other.cluster_id));
    for (const ClusterMember& m : found->members)
      if (m.face_id != face) change.apart.emplace_back(face, m.face_id);
    if (change.apart.empty())
      return Fail(ErrorCode::kInvalidArgument, "cluster " + std::to_string(*other.cluster_id) + " holds only face " +
                                                   std::to_string(face) + "; nothing was changed");
    if (Holds(*found, face)) shared = found;
    params["cluster"] = *other.cluster_id;
  }
  if (shared) change.groups.push_back({std::nullopt, {face}, "different"});
  return Commit(*c.store, config, std::move(change), params);
}

}  // namespace facesearch
