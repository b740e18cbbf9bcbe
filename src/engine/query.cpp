// `facesearch query`: probe photo → same decode/detect/align/embed pipeline → nearest faces in the
// index → joined back to SQLite (dropping ids with no live row) → ranked matches.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <unordered_map>

#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/corpus_handle.h"
#include "engine/privacy_internal.h"
#include "engine/video.h"
#include "facesearch/analyze.h"
#include "face/models.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

bool QueryResult::any_match() const {
  return std::any_of(probes.begin(), probes.end(), [](const ProbeFace& p) { return !p.matches.empty(); });
}

namespace {

// Hits matching an opt-out are dropped (defence in depth: ingest and `optout add` keep them out).
// The index is searched under its shared lock, the rows read under the Store's.
Result<std::vector<Match>> FindMatches(Corpus::Impl& c, const Face& face, const QueryOptions& options,
                                       const OptOutFilter& optouts) {
  std::vector<Hit> hits;
  {
    std::shared_lock lock(c.index_mu);
    FS_ASSIGN(hits, c.index->Search(face.embedding, options.top_k));
  }
  std::erase_if(hits, [&](const Hit& h) { return h.distance > options.threshold; });
  std::vector<int64_t> ids;
  std::transform(hits.begin(), hits.end(), std::back_inserter(ids), [](const Hit& h) { return h.face_id; });
  std::vector<FaceRecord> rows;
  {
    std::lock_guard store_lock(c.store_mu);
    FS_ASSIGN(rows, c.store->GetFaces(ids));
  }
  std::unordered_map<int64_t, const FaceRecord*> by_id;
  for (const auto& r : rows) by_id[r.face_id] = &r;
  std::vector<Match> matches;
  for (const Hit& h : hits) {
    auto it = by_id.find(h.face_id);
    if (it == by_id.end()) continue;  // stale index entry: the face is gone from SQLite
    const FaceRecord& r = *it->second;
    if (optouts.Matches(r.face.embedding)) continue;
    if (std::min(r.face.box.w, r.face.box.h) < options.pipeline.min_face) continue;  // --min-face
    matches.push_back(Match{static_cast<int>(matches.size()) + 1, h.face_id, h.distance,
                            r.image_path, r.image_sha256, r.face.box, r.provenance, r.face.video});
  }
  return matches;
}

// Which of the probe's faces to search with: --face N, every face (--all-faces, and every track
// of a video), or the largest.
Result<std::vector<int>> ChooseProbeFaces(const PhotoFaces& photo, const QueryOptions& options) {
  if (options.face) {
    FS_ASSIGN(int i, ChooseFace(photo, options.face));
    return std::vector<int>{i};
  }
  std::vector<int> all(photo.faces.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  if (options.all_faces || photo.video || all.empty()) return all;
  FS_ASSIGN(int largest, ChooseFace(photo, std::nullopt));
  return std::vector<int>{largest};
}

std::string AuditParams(const QueryOptions& options, const std::string& photo, int faces_detected) {
  return "{\"probe\":" + JsonString(photo) + ",\"top_k\":" + std::to_string(options.top_k) +
         ",\"threshold\":" + JsonFloat(options.threshold) +
         ",\"all_faces\":" + (options.all_faces ? "true" : "false") +
         ",\"face\":" + (options.face ? std::to_string(*options.face) : "null") +
         ",\"detector\":" + JsonString(DetectorName(options.pipeline.detector)) +
         ",\"retry\":" + JsonString(RetryStrategyName(options.pipeline.retry)) +
         ",\"min_face\":" + std::to_string(options.pipeline.min_face) +
         ",\"faces_detected\":" + std::to_string(faces_detected) + "}";
}

}  // namespace

Result<ProbeOutcome> Corpus::Query(const ProbeImage& probe, const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  Impl& c = *impl_;
  PipelineOptions pipeline = options.pipeline;
  OptOutFilter optouts;
  {
    std::lock_guard store_lock(c.store_mu);
    FS_ASSIGN(pipeline.embedding, c.ModeFor(pipeline.embedding));
    FS_TRY(CheckCaseRequired(*c.store, c.config.audit, "query"));
    FS_ASSIGN(optouts, OptOutFilter::Load(*c.store));
  }
  FS_ASSIGN(Impl::Lease analyzer, c.LeaseAnalyzer(pipeline));

  ProbeOutcome out;
  out.photo = out.result.probe_path = probe.name;
  auto analyzed = [&]() -> Result<PhotoFaces> {
    if (probe.bytes) return analyzer->AnalyzeBytes(probe.name, *probe.bytes);
    if (IsVideoFile(probe.name)) return analyzer->AnalyzeVideo(probe.name, pipeline.video);
    FS_ASSIGN(std::string bytes, ReadFile(probe.name, static_cast<size_t>(pipeline.max_file_bytes)));
    return analyzer->AnalyzeBytes(probe.name, bytes);
  }();
  // Searched against what the corpus holds now: faces another process added or erased since the
  // last call are caught up with first.
  FS_TRY(c.CatchUp());
  {
    std::shared_lock lock(c.index_mu);
    out.result.corpus_faces = c.index->ntotal();
  }
  if (!analyzed) {
    out.error = analyzed.error();
    return out;
  }
  out.result.probe_sha256 = analyzed->sha256;
  out.result.faces_detected = static_cast<int>(analyzed->faces.size());
  auto chosen = ChooseProbeFaces(*analyzed, options);
  if (!chosen) {
    out.error = chosen.error();
    return out;
  }
  std::vector<int64_t> returned;
  for (int i : *chosen) {
    ProbeFace face{i, analyzed->faces[i], analyzed->quality[i], {}};
    FS_ASSIGN(face.matches, FindMatches(c, face.face, options, optouts));
    for (const Match& m : face.matches) returned.push_back(m.face_id);
    out.result.probes.push_back(std::move(face));
  }
  // The audit record is committed before any result leaves this function; no record, no result.
  std::lock_guard store_lock(c.store_mu);
  FS_TRY(AppendAudit(*c.store, c.config.audit,
                     {"query", AuditParams(options, probe.name, out.result.faces_detected),
                      {out.result.probe_sha256}, JsonIdArray(returned)}));
  return out;
}

Result<std::vector<ProbeOutcome>> QueryPhotos(const CorpusConfig& config, const std::vector<std::string>& photos,
                                              const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  if (std::count(photos.begin(), photos.end(), "-") > 1)
    return Fail(ErrorCode::kInvalidArgument, "only one probe can come from stdin (-)");
  FS_ASSIGN(auto corpus, Corpus::Open(config, OpenOptions{options.pipeline}));
  std::vector<ProbeOutcome> outcomes;
  for (const std::string& photo : photos) {
    if (photo != "-") {
      FS_ASSIGN(outcomes.emplace_back(), corpus->Query(ProbeImage::File(photo), options));
      continue;
    }
    // The engine never reads stdin: this front door does, when the probe's turn comes.
    auto bytes = ReadPhotoBytes(photo, static_cast<size_t>(options.pipeline.max_file_bytes));
    if (!bytes) {
      ProbeOutcome& out = outcomes.emplace_back();
      out.photo = out.result.probe_path = photo;
      out.error = bytes.error();
      continue;
    }
    FS_ASSIGN(outcomes.emplace_back(), corpus->Query(ProbeImage::Bytes(photo, std::move(*bytes)), options));
  }
  return outcomes;
}

}  // namespace facesearch
