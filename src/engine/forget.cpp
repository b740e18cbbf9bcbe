// `facesearch forget` and `facesearch optout`: erasure with tombstones, opt-outs, and the scrub
// that follows every erasure (index rebuilt and saved, WAL checkpointed with TRUNCATE).
//
// Order under the write lock: the index snapshot record and file are dropped; SQLite commits the
// erasure, its audit record and a "scrub pending" mark together; then the index is rebuilt from
// SQLite and saved atomically; then the WAL is checkpointed and truncated and only then the mark
// cleared (Store::FinishScrub). A crash after the commit leaves no index file (so no copy of the
// erased embeddings), which the next open rebuilds, and the mark, which makes the next command
// that opens the corpus finish the scrub (and `verify` report it until then); queries drop ids
// with no live row.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/models.h"
#include "facesearch/subject.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

struct PhotoFace {
  std::string sha256;
  Face face;
};

// The largest face of `photo`. Errors: kInvalidArgument when it has none; read/decode/model errors.
Result<PhotoFace> LargestFace(const CorpusConfig& config, const std::string& photo,
                              const PipelineOptions& pipeline) {
  DecodeLimits limits = LimitsFrom(pipeline);
  FS_ASSIGN(std::string bytes, ReadFile(photo, static_cast<size_t>(limits.max_bytes)));
  auto image = DecodeImage(bytes, limits);
  if (!image) return Fail(ErrorCode::kDecode, "cannot read " + photo + ": " + image.error().message);
  FS_ASSIGN(PipelineOptions resolved, WithCorpusEmbedding(config, pipeline));
  FS_ASSIGN(auto analyzer, LoadAnalyzer(config, resolved));
  FS_ASSIGN(std::vector<Face> faces, analyzer->Analyze(*image));
  if (faces.empty())
    return Fail(ErrorCode::kInvalidArgument, "no face found in " + photo +
                                                 "; try --upsample 2 or --detector cnn");
  auto largest = std::max_element(faces.begin(), faces.end(), [](const Face& a, const Face& b) {
    return a.box.w * a.box.h < b.box.w * b.box.h;
  });
  return PhotoFace{Sha256Hex(bytes), *largest};
}

Result<std::vector<int64_t>> FacesWithin(Store& store, const Embedding& e, float threshold) {
  std::vector<int64_t> ids;
  FS_TRY(store.ForEachEmbedding(0, [&](int64_t id, const Embedding& other) {
    if (EmbeddingDistance(e, other) <= threshold) ids.push_back(id);
  }));
  return ids;
}

std::string IsoAgo(int64_t seconds) {
  std::time_t t = std::time(nullptr) - static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string CountsJson(const EraseCounts& c) {
  return "{\"faces_erased\":" + std::to_string(c.faces) + ",\"images_erased\":" +
         std::to_string(c.images) + "}";
}

// After a committed erasure: rebuild and save the index (the delete generation moved), then
// finish the scrub (WAL checkpointed and truncated) so that no copy of the erased rows is left in
// the corpus files.
// Clearing the snapshot record first makes the rebuild a routine one (no repair warning); a crash
// before the new snapshot is recorded leaves no snapshot, which the next open rebuilds too.
Status Scrub(Store& store, const CorpusPaths& paths) {
  FS_TRY(store.ClearIndexSnapshot());
  FS_TRY(OpenCorpusIndex(store, paths.index_dir, /*persist=*/true));
  return FinishScrubOrWarn(store, paths);
}

// Before an erasure commits: forget the index snapshot and delete its file, so that a crash between
// the commit and Scrub's new index leaves no index at all (rebuilt by the next command) rather than
// a file that still holds the erased embeddings.
Status DropIndex(Store& store, const CorpusPaths& paths) {
  FS_TRY(store.ClearIndexSnapshot());
  std::error_code ec;
  fs::remove(paths.index_dir / kIndexFileName, ec);
  if (ec)
    return Fail(ErrorCode::kIo, "cannot remove " + (paths.index_dir / kIndexFileName).string() +
                                    " before the erasure: " + ec.message());
  return Ok();
}

Result<std::unique_ptr<Store>> OpenForWriting(const CorpusPaths& paths,
                                              bool models) {
  if (models) return Store::Open(paths.database, ModelIdentity());
  return Store::OpenExisting(paths.database);
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

Result<ForgetSummary> Forget(const CorpusConfig& config, const ForgetRequest& request) {
  const bool like = !request.like_photo.empty();
  if (request.images.empty() && request.face_ids.empty() && !like && !request.older_than_s &&
      request.subject.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "say what to forget: --image PATH, --face-id N, --like PHOTO, --subject NAME or --older-than 30d");
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));

  AuditEvent event{"forget", "", {}, ""};
  std::optional<PhotoFace> probe;
  if (like) {
    FS_ASSIGN(probe, LargestFace(config, request.like_photo, request.pipeline));
    event.probe_sha256.push_back(probe->sha256);
  }
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenForWriting(paths, like));

  std::set<int64_t> image_ids, face_ids;
  std::vector<std::string> by;
  for (const std::string& path : request.images) {
    std::vector<int64_t> found;
    if (auto sha = Sha256File(path)) {
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
    FS_ASSIGN(std::vector<int64_t> near, FacesWithin(*store, probe->face.embedding, request.threshold));
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
    FS_ASSIGN(std::vector<SubjectFace> faces, FacesOfSubject(*store, found.front(), request.threshold));
    for (const SubjectFace& f : faces) face_ids.insert(f.face_id);
    by.push_back("subject");
  }
  std::string params = "{\"by\":[";
  for (size_t i = 0; i < by.size(); ++i) {
    if (i) params += ',';
    params += JsonString(by[i]);
  }
  params += "],\"images\":" + std::to_string(request.images.size()) +
            ",\"face_ids\":" + JsonIdArray(request.face_ids);
  if (like || subject_id) params += ",\"threshold\":" + JsonFloat(request.threshold);
  if (subject_id)
    params += ",\"subject\":" + JsonString(request.subject) + ",\"subject_id\":" + std::to_string(*subject_id);
  if (request.older_than_s) {
    const std::string cutoff = IsoAgo(*request.older_than_s);
    FS_ASSIGN(std::vector<int64_t> old, store->FindImagesAddedBefore(cutoff));
    image_ids.insert(old.begin(), old.end());
    params += ",\"older_than_s\":" + std::to_string(*request.older_than_s) +
              ",\"added_before\":" + JsonString(cutoff);
    by.push_back("retention");
  }
  params += "}";
  event.params = params;

  std::string reason = request.older_than_s && by.size() == 1 ? "retention" : "forget";
  auto make_audit = [&](const EraseCounts& c) {
    AuditEvent e = event;
    e.results = CountsJson(c);
    return MakeAuditRecord(config.audit, e);
  };
  ForgetSummary summary;
  FS_TRY(DropIndex(*store, paths));
  FS_ASSIGN(summary.erased, store->Erase({image_ids.begin(), image_ids.end()},
                                         {face_ids.begin(), face_ids.end()}, reason, make_audit, subject_id));
  FS_TRY(Scrub(*store, paths));
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  summary.faces_left = counts.faces;
  spdlog::info("erased {} face(s) and {} image(s); {} face(s) remain", summary.erased.faces,
               summary.erased.images, summary.faces_left);
  return summary;
}

Result<OptOutResult> AddOptOut(const CorpusConfig& config, const OptOutRequest& request) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(PhotoFace probe, LargestFace(config, request.photo, request.pipeline));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, OpenForWriting(paths, /*models=*/true));

  const std::string params = "{\"op\":\"add\",\"threshold\":" + JsonFloat(request.threshold) +
                             ",\"reason\":" + JsonString(request.reason) + "}";
  OptOutRecord record;
  record.embedding = probe.face.embedding;
  record.threshold = request.threshold;
  record.reason = request.reason;
  OptOutResult result;
  FS_ASSIGN(result.id, store->AddOptOut(record, MakeAuditRecord(config.audit,
                                                                {"optout", params, {probe.sha256}, ""})));
  FS_ASSIGN(std::vector<int64_t> near, FacesWithin(*store, probe.face.embedding, request.threshold));
  if (!near.empty()) {
    const std::string erase_params = "{\"op\":\"erase\",\"optout_id\":" + std::to_string(result.id) + "}";
    auto make_audit = [&](const EraseCounts& c) {
      return MakeAuditRecord(config.audit, {"optout", erase_params, {}, CountsJson(c)});
    };
    FS_TRY(DropIndex(*store, paths));
    FS_ASSIGN(result.erased, store->Erase({}, near, "opt-out " + std::to_string(result.id), make_audit));
  }
  FS_TRY(Scrub(*store, paths));
  return result;
}

Result<std::vector<OptOutRecord>> ListOptOuts(const CorpusConfig& config) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(auto store, Store::OpenReadOnly(paths.database));
  return store->OptOuts();
}

Status RemoveOptOut(const CorpusConfig& config, int64_t id) {
  CorpusPaths paths = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(paths));
  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(paths, config.lock_wait_s));
  FS_ASSIGN(auto store, Store::OpenExisting(paths.database));
  const std::string params = "{\"op\":\"remove\",\"optout_id\":" + std::to_string(id) + "}";
  FS_TRY(store->RemoveOptOut(id, MakeAuditRecord(config.audit, {"optout", params, {}, "null"})));
  return FinishScrubOrWarn(*store, paths);  // the removed embedding leaves the WAL too
}

}  // namespace facesearch
