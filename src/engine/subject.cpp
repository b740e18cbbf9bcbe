// Subjects: named people with reference faces (facesearch/subject.h). Adding, renaming and
// removing take the corpus write lock and commit with their audit record; searching with a
// subject is Corpus::QuerySubject (query.cpp).
#include "facesearch/subject.h"

#include <algorithm>
#include <set>

#include "common/json.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "facesearch/analyze.h"
#include "face/models.h"

namespace facesearch {

Embedding SubjectTemplate(const Subject& subject) {
  Embedding mean{};
  for (const SubjectReference& r : subject.references)
    for (int i = 0; i < kEmbeddingDim; ++i) mean[i] += r.embedding[i];
  const float n = static_cast<float>(std::max<size_t>(1, subject.references.size()));
  for (float& v : mean) v /= n;
  return mean;
}

float SubjectDistance(const Subject& subject, const Embedding& face) {
  return EmbeddingDistance(SubjectTemplate(subject), face);
}

Status CheckSubjectName(const std::string& name) {
  if (name.empty() || name.size() > 100)
    return Fail(ErrorCode::kInvalidArgument, "a subject name has 1 to 100 characters");
  if (name.front() == '-')
    return Fail(ErrorCode::kInvalidArgument, "a subject name cannot start with '-' (it would read as an option)");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return Fail(ErrorCode::kInvalidArgument, "a subject name cannot hold control characters");
  return Ok();
}

namespace {

// One reference per photo: its largest face. A photo without a face fails the whole request.
Result<std::vector<SubjectReference>> PhotoReferences(const CorpusConfig& config, const SubjectAddRequest& request) {
  std::vector<SubjectReference> refs;
  if (request.photos.empty()) return refs;
  FS_ASSIGN(PipelineOptions pipeline, WithCorpusEmbedding(config, request.pipeline));
  FS_ASSIGN(auto analyzer, PhotoAnalyzer::Load(config, pipeline));
  for (const std::string& photo : request.photos) {
    FS_ASSIGN(PhotoFaces faces, analyzer->Analyze(ProbeImage::File(photo)));
    if (faces.faces.empty())
      return Fail(ErrorCode::kInvalidArgument, "no face found in " + photo +
                                                   ": a reference needs one (try --upsample 2 or --detector cnn); "
                                                   "no subject was changed");
    FS_ASSIGN(int largest, ChooseFace(faces, std::nullopt));
    SubjectReference r;
    r.embedding = faces.faces[largest].embedding;
    r.box = faces.faces[largest].box;
    r.source = photo;
    r.photo_sha256 = faces.sha256;
    refs.push_back(std::move(r));
  }
  return refs;
}

Status AppendFaceReferences(Store& store, const std::vector<int64_t>& face_ids, std::vector<SubjectReference>& refs) {
  FS_ASSIGN(std::vector<FaceRecord> rows, store.GetFaces(face_ids));
  std::set<int64_t> found;
  for (const FaceRecord& row : rows) {
    found.insert(row.face_id);
    SubjectReference r;
    r.embedding = row.face.embedding;
    r.box = row.face.box;
    r.source = "face-id " + std::to_string(row.face_id);
    r.photo_sha256 = row.image_sha256;
    r.face_id = row.face_id;
    refs.push_back(std::move(r));
  }
  for (int64_t id : face_ids)
    if (!found.count(id))
      return Fail(ErrorCode::kNotFound, "--face-id " + std::to_string(id) +
                                            " names no face in the corpus (query and export print face ids); "
                                            "no subject was changed");
  return Ok();
}

std::string AddParams(const SubjectAddRequest& request) {
  return JsonText({{"op", "add"},
                    {"name", request.name},
                    {"append", request.append},
                    {"photos", request.photos},
                    {"face_ids", request.face_ids}});
}

}  // namespace

Result<Subject> AddSubject(const CorpusConfig& config, const SubjectAddRequest& request) {
  FS_TRY(CheckSubjectName(request.name));
  if (request.photos.empty() && request.face_ids.empty())
    return Fail(ErrorCode::kInvalidArgument, "give the subject's reference faces: --photo FILE or --face-id N");
  FS_TRY(RequireCorpus(PathsFor(config.corpus_dir)));
  // Photos are analysed before the lock is taken: a slow model load never holds up other writers.
  FS_ASSIGN(std::vector<SubjectReference> refs, PhotoReferences(config, request));
  // Locked: a reference can never be taken from a face that a concurrent `forget` is erasing.
  FS_ASSIGN(LockedCorpus opened, OpenLockedCorpus(config, request.photos.empty() ? StoreUse::kWrite : StoreUse::kModels));
  FS_TRY(AppendFaceReferences(*opened.store, request.face_ids, refs));
  // An opt-out wins over any wish to follow a person: its face is never a reference.
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*opened.store));
  for (const SubjectReference& r : refs)
    if (optouts.Matches(r.embedding))
      return Fail(ErrorCode::kInvalidArgument, "the face of " + r.source +
                                                   " matches an opt-out (`facesearch optout list`): it cannot be a "
                                                   "subject's reference; no subject was changed");
  std::vector<std::string> shas;
  for (const SubjectReference& r : refs) shas.push_back(r.photo_sha256);
  return opened.store->AddSubjectReferences(request.name, request.append, refs,
                                            MakeAuditRecord(config.audit, {"subject", AddParams(request), shas, ""}));
}

Result<std::vector<SubjectFace>> FacesOfSubject(Store& store, const Subject& subject, float threshold) {
  const Embedding center = SubjectTemplate(subject);
  std::set<int64_t> referenced;
  for (const SubjectReference& r : subject.references)
    if (r.face_id) referenced.insert(*r.face_id);
  std::vector<SubjectFace> faces;
  FS_TRY(store.ForEachEmbedding(0, [&](int64_t id, const Embedding& e) {
    const float d = EmbeddingDistance(center, e);
    if ((d <= threshold || referenced.count(id)) && !subject.Excludes(id)) faces.push_back({id, d});
  }));
  std::sort(faces.begin(), faces.end(), [](const SubjectFace& a, const SubjectFace& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.face_id < b.face_id);
  });
  return faces;
}

Status ExportSubjectFaces(const CorpusConfig& config, const std::string& name, float threshold,
                          const std::function<void(const FaceRecord&, float)>& fn) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_TRY(RequireWritable(paths, "an export must commit its audit record before it shows a face"));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  FS_ASSIGN(std::vector<Subject> found, store->Subjects(name));
  if (found.empty())
    return Fail(ErrorCode::kNotFound, "no subject named '" + name + "'; `facesearch subject list` shows them");
  FS_ASSIGN(std::vector<SubjectFace> faces, FacesOfSubject(*store, found.front(), threshold));
  std::vector<int64_t> ids;
  for (const SubjectFace& f : faces) ids.push_back(f.face_id);
  FS_ASSIGN(std::vector<FaceRecord> rows, store->GetFaces(ids));
  std::vector<std::string> shas;
  for (const SubjectReference& r : found.front().references) shas.push_back(r.photo_sha256);
  const std::string params = JsonText({{"subject", name}, {"threshold", ShortestDouble(threshold)}});
  FS_TRY(AppendAudit(*store, config.audit, {"export", params, shas, JsonText(ids)}));
  size_t next = 0;  // rows follow `ids`, less any face erased meanwhile
  for (const FaceRecord& row : rows) {
    while (faces[next].face_id != row.face_id) ++next;
    fn(row, faces[next].distance);
  }
  return Ok();
}

Result<std::vector<Subject>> ListSubjects(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  return store->Subjects();
}

Result<Subject> GetSubject(const CorpusConfig& config, const std::string& name) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  FS_ASSIGN(std::vector<Subject> found, store->Subjects(name));
  if (found.empty())
    return Fail(ErrorCode::kNotFound, "no subject named '" + name + "'; `facesearch subject list` shows them");
  return found.front();
}

Status ExcludeFromSubject(const CorpusConfig& config, const std::string& name, const std::vector<int64_t>& face_ids) {
  if (face_ids.empty())
    return Fail(ErrorCode::kInvalidArgument, "say which faces are not this person: --face-id N (ids as query prints them)");
  FS_ASSIGN(LockedCorpus opened, OpenLockedCorpus(config, StoreUse::kWrite));
  const std::string params = JsonText({{"op", "exclude"}, {"name", name}, {"face_ids", face_ids}});
  return opened.store->ExcludeFromSubject(name, face_ids, MakeAuditRecord(config.audit, {"subject", params, {}, ""}));
}

Status RenameSubject(const CorpusConfig& config, const std::string& from, const std::string& to) {
  FS_TRY(CheckSubjectName(to));
  FS_ASSIGN(LockedCorpus opened, OpenLockedCorpus(config, StoreUse::kWrite));
  const std::string params =
      JsonText({{"op", "rename"}, {"name", from}, {"to", to}});
  return opened.store->RenameSubject(from, to, MakeAuditRecord(config.audit, {"subject", params, {}, ""}));
}

Status RemoveSubject(const CorpusConfig& config, const std::string& name) {
  FS_ASSIGN(LockedCorpus opened, OpenLockedCorpus(config, StoreUse::kWrite));
  const std::string params = JsonText({{"op", "remove"}, {"name", name}});
  FS_TRY(opened.store->RemoveSubject(name, MakeAuditRecord(config.audit, {"subject", params, {}, ""})));
  return FinishScrubOrWarn(*opened.store, opened.paths);
}

}  // namespace facesearch
