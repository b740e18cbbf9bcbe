// `facesearch forget` and `facesearch optout`: erasure with tombstones, opt-outs, and the scrub
// that follows every erasure (index rebuilt and saved, WAL checkpointed with TRUNCATE).
//
// Order under the write lock: the erased faces are scrubbed from the index file in place
// (ScrubIndexFirst); SQLite commits the erasure, its audit record, a "scrub pending" mark and (on a
// corpus that keeps its training) the scrubbed file's snapshot record together; then the index
// is recorded again (a small corpus's compacted and trained anew first); then the WAL is
// checkpointed and truncated and only then the mark cleared (Store::FinishScrub). A crash after
// the commit leaves no copy of the erased embeddings in the index file, and the mark, which makes
// the next command that opens the corpus finish the scrub (and `verify` report it until then);
// queries drop ids with no live row.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/crash_point.h"
#include "common/sha256.h"
#include "common/time.h"
#include "common/json.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/models.h"
#include "facesearch/analyze.h"
#include "facesearch/subject.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

struct PhotoFace {
  std::string sha256;
  Face face;
};

// The largest face of an analysed photo. Errors: kInvalidArgument when it has none.
Result<PhotoFace> LargestFace(const PhotoFaces& photo) {
  if (photo.faces.empty())
    return Fail(ErrorCode::kInvalidArgument, "no face found in " + photo.path +
                                                 "; try --upsample 2 or --detector cnn");
  FS_ASSIGN(const int largest, ChooseFace(photo, std::nullopt));
  return PhotoFace{photo.sha256, photo.faces[static_cast<size_t>(largest)]};
}

// `photo` analysed in the corpus's embedding mode with models loaded for this call (a command
// runs once; a server passes what its resident analyzers found instead).
Result<PhotoFaces> AnalyzeWithNewModels(const CorpusConfig& config, const ProbeImage& photo,
                                        const PipelineOptions& pipeline) {
  FS_ASSIGN(PipelineOptions resolved, WithCorpusEmbedding(config, pipeline));
  FS_ASSIGN(auto analyzer, PhotoAnalyzer::Load(config, resolved));
  return analyzer->Analyze(photo);
}

Result<std::vector<int64_t>> FacesWithin(Store& store, const Embedding& e, float threshold) {
  std::vector<int64_t> ids;
  FS_TRY(store.ForEachEmbedding(0, [&](int64_t id, const Embedding& other) {
    if (EmbeddingDistance(e, other) <= threshold) ids.push_back(id);
  }));
  return ids;
}

std::string CountsJson(const EraseCounts& c) {
  return JsonText({{"faces_erased", c.faces}, {"images_erased", c.images}});
}

struct ScrubbedIndex {
  std::unique_ptr<VectorIndex> index;
  std::optional<IndexSnapshot> record;  // recorded by the erasure's own transaction (Store::Erase)
};

// Before an erasure commits: scrub its faces from the index file (VectorIndex::Erase: in place,
// every kind, flushed), so that no crash at any later point leaves their embeddings in an index
// file. A corpus that keeps its training (KeepsTrainingAfterErasure) keeps this file: it is
// stamped with the generation the erasure will commit and recorded in the erasure's transaction,
// so that after the commit no crash can leave it unrecorded (the next command would rebuild the
// whole index: minutes at 10M faces). A small corpus is compacted and trained anew after the commit
// (FinishErasure); a crash before that makes the next command rebuild it from SQLite (seconds).
// A crash before the commit, too: the file no longer holds faces that SQLite still does.
Result<ScrubbedIndex> ScrubIndexFirst(Store& store, const CorpusPaths& paths, const std::set<int64_t>& image_ids,
                                      const std::set<int64_t>& face_ids) {
  const std::vector<int64_t> images(image_ids.begin(), image_ids.end());
  FS_ASSIGN(std::vector<int64_t> erased, store.FaceIdsOfImages(images));
  erased.insert(erased.end(), face_ids.begin(), face_ids.end());
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(store, paths.index_dir, /*persist=*/true));
  ScrubbedIndex out{std::move(opened.index), std::nullopt};
  VectorIndex& index = *out.index;
  FS_ASSIGN(const int64_t scrubbed, index.Erase(erased));
  if (scrubbed == 0) return out;  // none of them in the index (images without faces): file untouched
  const bool kept = KeepsTrainingAfterErasure(index.main_rows());
  FS_ASSIGN(const int64_t generation, store.Generation());
  const int64_t stamp = kept ? generation + 1 : generation;  // Store::Erase bumps it by one
  FS_ASSIGN(std::string model_identity, store.ModelIdentity());
  FS_ASSIGN(const SavedFile saved, index.Save(paths.index_dir / kIndexFileName, IndexStamp{stamp, std::move(model_identity)}));
  if (kept) out.record = SnapshotOf(index, stamp, saved);
  return out;
}

// After the erasure committed: record the scrubbed index (a small corpus's is compacted and
// trained anew: KeepsTrainingAfterErasure), then finish the scrub (WAL checkpointed and
// truncated) so that no copy of the erased rows is left in the corpus files.
Status FinishErasure(Store& store, const CorpusPaths& paths, VectorIndex& index) {
  if (!KeepsTrainingAfterErasure(index.main_rows())) {
    if (index.spec().kind != IndexKind::kExact)
      spdlog::info("training the {} index anew on the faces that remain: under {} faces a centroid or "
                   "range can be close to one erased face's embedding (from there the training is kept)",
                   IndexKindName(index.spec().kind), kKeepTrainingFrom);
    FS_TRY(CompactIndex(index));
  }
  FS_TRY(SaveCorpusIndex(store, index, paths.index_dir));
  return FinishScrubOrWarn(store, paths);
}

// The --threshold given, or the same-person distance of the corpus's model (distances of two models
// are on different scales: dlib's 0.6 would let an SFace opt-out miss the person).
Result<float> ThresholdFor(Store& store, const std::optional<float>& given) {
  if (given) return *given;
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(store));
  return SamePersonDistance(mode.value_or(EmbeddingMode{}).model);
}

}  // namespace

Status FinishScrubOrWarn(Store& store, const CorpusPaths& paths) {
  auto finished = store.FinishScrub();
  if (!finished && finished.error().code == ErrorCode::kBusy) {
    spdlog::warn("another process is reading the corpus, so {}-wal could not be truncated yet; "
                 "the erased rows may linger there and in {} until the next facesearch command "
                 "finishes the scrub (`facesearch verify` reports it meanwhile)",
                 paths.database.string(), paths.database.string());
    return Ok();
  }
  return finished;
}

namespace {

// The SHA-256 naming an image to forget: the file's, or the text itself when it is a digest and no
// such file exists (a server's client names the file by its content: the path is the client's).
std::optional<std::string> ContentDigest(const std::string& image) {
  if (auto sha = Sha256File(image)) return *sha;
  if (image.size() != 64 || !std::all_of(image.begin(), image.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
    return std::nullopt;
  std::string sha = image;
  std::transform(sha.begin(), sha.end(), sha.begin(), [](unsigned char c) { return std::tolower(c); });
  return sha;
}

}  // namespace

Result<ForgetSummary> Forget(const CorpusConfig& config, const ForgetRequest& request) {
  const bool like = !request.like_photo.empty();
  if (request.images.empty() && request.face_ids.empty() && !like && !request.older_than_s &&
      request.subject.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "say what to forget: --image PATH, --face-id N, --like PHOTO, --subject NAME or --older-than 30d");
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));

  AuditEvent event{"forget", "", {}, ""};
  std::optional<PhotoFace> probe;
  if (like) {
    FS_ASSIGN(PhotoFaces photo, AnalyzeWithNewModels(config, ProbeImage::File(request.like_photo), request.pipeline));
    FS_ASSIGN(probe, LargestFace(photo));
    event.probe_sha256.push_back(probe->sha256);
  }
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, like ? StoreUse::kModels : StoreUse::kWrite));
  FS_ASSIGN(const float threshold, ThresholdFor(*store, request.threshold));

  std::set<int64_t> image_ids, face_ids;
  std::vector<std::string> by;
  for (const std::string& path : request.images) {
    std::vector<int64_t> found;
    if (auto sha = ContentDigest(path)) {
      event.probe_sha256.push_back(*sha);
      FS_ASSIGN(std::optional<int64_t> id, store->FindImageBySha(*sha));
      if (id) found.push_back(*id);
    }
    if (found.empty()) {
      FS_ASSIGN(found, store->FindImagesByPath(fs::absolute(path).lexically_normal().string()));
    }
    if (found.empty())
      return Fail(ErrorCode::kNotFound, path + " is not in the corpus (by content or by path)");
    image_ids.insert(found.begin(), found.end());
  }
  if (!request.images.empty()) by.push_back("image");
  if (!request.face_ids.empty()) {
    FS_ASSIGN(std::vector<FaceRecord> rows, store->GetFaces(request.face_ids));
    if (rows.size() != std::set<int64_t>(request.face_ids.begin(), request.face_ids.end()).size())
      return Fail(ErrorCode::kNotFound, "some --face-id values name no face in the corpus "
                                        "(see `facesearch export` or query output for ids)");
    face_ids.insert(request.face_ids.begin(), request.face_ids.end());
    by.push_back("face-id");
  }
  if (probe) {
    FS_ASSIGN(std::vector<int64_t> near, FacesWithin(*store, probe->face.embedding, threshold));
    face_ids.insert(near.begin(), near.end());
    by.push_back("like");
  }
  std::optional<int64_t> subject_id;
  if (!request.subject.empty()) {
    FS_ASSIGN(std::vector<Subject> found, store->Subjects(request.subject));
    if (found.empty())
      return Fail(ErrorCode::kNotFound, "no subject named '" + request.subject +
                                            "'; `facesearch subject list` shows them; nothing was erased");
    subject_id = found.front().id;
    FS_ASSIGN(std::vector<SubjectFace> faces, FacesOfSubject(*store, found.front(), threshold));
    for (const SubjectFace& f : faces) face_ids.insert(f.face_id);
    by.push_back("subject");
  }
  Json params = {
      {"by", by}, {"images", request.images.size()}, {"face_ids", request.face_ids}};
  if (like || subject_id) params["threshold"] = ShortestDouble(threshold);
  if (subject_id) {
    params["subject"] = request.subject;
    params["subject_id"] = *subject_id;
  }
  if (request.older_than_s) {
    const std::string cutoff = IsoUtc(std::time(nullptr) - static_cast<std::time_t>(*request.older_than_s));
    FS_ASSIGN(std::vector<int64_t> old, store->FindImagesAddedBefore(cutoff));
    image_ids.insert(old.begin(), old.end());
    params["older_than_s"] = *request.older_than_s;
    params["added_before"] = cutoff;
    by.push_back("retention");
    params["by"] = by;  // "by" was written before the retention selector was known
  }
  event.params = JsonText(params);

  std::string reason = request.older_than_s && by.size() == 1 ? "retention" : "forget";
  auto make_audit = [&](const EraseCounts& c) {
    AuditEvent e = event;
    e.results = CountsJson(c);
    return MakeAuditRecord(config.audit, e);
  };
  ForgetSummary summary;
  FS_ASSIGN(ScrubbedIndex scrubbed, ScrubIndexFirst(*store, paths, image_ids, face_ids));
  CrashPoint("index-scrubbed");
  FS_ASSIGN(summary.erased, store->Erase({image_ids.begin(), image_ids.end()}, {face_ids.begin(), face_ids.end()},
                                         reason, make_audit, subject_id, scrubbed.record));
  CrashPoint("erasure-committed");
  FS_TRY(FinishErasure(*store, paths, *scrubbed.index));
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  summary.faces_left = counts.faces;
  spdlog::info("erased {} face(s) and {} image(s); {} face(s) remain", summary.erased.faces,
               summary.erased.images, summary.faces_left);
  return summary;
}

Result<OptOutResult> AddOptOut(const CorpusConfig& config, const OptOutRequest& request) {
  FS_TRY(CheckExistingCorpus(config));
  FS_ASSIGN(PhotoFaces photo, AnalyzeWithNewModels(config, request.photo, request.pipeline));
  return AddOptOut(config, request, photo);
}

Result<OptOutResult> AddOptOut(const CorpusConfig& config, const OptOutRequest& request, const PhotoFaces& photo) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_ASSIGN(PhotoFace probe, LargestFace(photo));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kModels));
  FS_ASSIGN(const float threshold, ThresholdFor(*store, request.threshold));

  const std::string params =
      JsonText({{"op", "add"}, {"threshold", ShortestDouble(threshold)}, {"reason", request.reason}});
  OptOutRecord record;
  record.embedding = probe.face.embedding;
  record.threshold = threshold;
  record.reason = request.reason;
  record.request_id = config.audit.request_id;
  OptOutResult result;
  FS_ASSIGN(result.id, store->AddOptOut(record, MakeAuditRecord(config.audit,
                                                                {"optout", params, {probe.sha256}, ""})));
  FS_ASSIGN(std::vector<int64_t> near, FacesWithin(*store, probe.face.embedding, threshold));
  if (!near.empty()) {
    const std::string erase_params = JsonText({{"op", "erase"}, {"optout_id", result.id}});
    auto make_audit = [&](const EraseCounts& c) {
      return MakeAuditRecord(config.audit, {"optout", erase_params, {}, CountsJson(c)});
    };
    FS_ASSIGN(ScrubbedIndex scrubbed,
              ScrubIndexFirst(*store, paths, {}, std::set<int64_t>(near.begin(), near.end())));
    FS_ASSIGN(result.erased, store->Erase({}, near, "opt-out " + std::to_string(result.id), make_audit,
                                          std::nullopt, scrubbed.record));
    FS_TRY(FinishErasure(*store, paths, *scrubbed.index));
    return result;
  }
  FS_TRY(FinishScrubOrWarn(*store, paths));
  return result;
}

Result<std::vector<OptOutRecord>> ListOptOuts(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  return store->OptOuts();
}

Status RemoveOptOut(const CorpusConfig& config, int64_t id) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  const std::string params = JsonText({{"op", "remove"}, {"optout_id", id}});
  FS_TRY(store->RemoveOptOut(id, MakeAuditRecord(config.audit, {"optout", params, {}, "null"})));
  return FinishScrubOrWarn(*store, paths);  // the removed embedding leaves the WAL too
}

Result<std::vector<int64_t>> RemoveOptOutsOfRequest(const CorpusConfig& config, const std::string& request_id) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  const std::string params = JsonText({{"op", "remove"}, {"optout_request_id", request_id}});
  FS_ASSIGN(std::vector<int64_t> ids,
            store->RemoveOptOutsOfRequest(request_id, MakeAuditRecord(config.audit, {"optout", params, {}, ""})));
  FS_TRY(FinishScrubOrWarn(*store, paths));
  return ids;
}

}  // namespace facesearch
