// `facesearch query`: probe photo → same decode/detect/align/embed pipeline → nearest faces in the
// index → joined back to SQLite (dropping ids with no live row) → ranked matches.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <iterator>
#include <unordered_map>

#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
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
Result<std::vector<Match>> FindMatches(Store& store, const VectorIndex& index, const Face& face,
                                       const QueryOptions& options, const OptOutFilter& optouts) {
  FS_ASSIGN(std::vector<Hit> hits, index.Search(face.embedding, options.top_k));
  std::erase_if(hits, [&](const Hit& h) { return h.distance > options.threshold; });
  std::vector<int64_t> ids;
  std::transform(hits.begin(), hits.end(), std::back_inserter(ids), [](const Hit& h) { return h.face_id; });
  FS_ASSIGN(std::vector<FaceRecord> rows, store.GetFaces(ids));
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
                            r.image_path, r.image_sha256, r.face.box, r.provenance});
  }
  return matches;
}

// Which of the probe's faces to search with: --face N, every face, or the largest.
Result<std::vector<int>> ChooseProbeFaces(const PhotoFaces& photo, const QueryOptions& options) {
  if (options.face) {
    FS_ASSIGN(int i, ChooseFace(photo, options.face));
    return std::vector<int>{i};
  }
  std::vector<int> all(photo.faces.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  if (options.all_faces || all.empty()) return all;
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

Result<std::vector<ProbeOutcome>> QueryPhotos(const CorpusConfig& config, const std::vector<std::string>& photos,
                                              const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  if (std::count(photos.begin(), photos.end(), "-") > 1)
    return Fail(ErrorCode::kInvalidArgument, "only one probe can come from stdin (-)");
  CorpusPaths corpus = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(corpus));
  FS_TRY(CheckCorpusPermissions(config));
  FS_TRY(RequireWritable(corpus, "a query must commit its audit record before it shows a result"));
  FS_ASSIGN(PipelineOptions pipeline, WithCorpusEmbedding(config, options.pipeline));
  FS_ASSIGN(auto analyzer, PhotoAnalyzer::Load(config, pipeline));

  FS_ASSIGN(auto store, Store::Open(corpus.database, ModelIdentity()));
  FS_TRY(CheckCaseRequired(*store, config.audit, "query"));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));
  // No lock is held from here on (reading a probe from stdin may take forever): faces erased
  // meanwhile are dropped by FindMatches, which keeps only ids with a live row.
  FS_ASSIGN(OpenedIndex opened, OpenIndexForReading(*store, corpus));

  std::vector<ProbeOutcome> outcomes;
  for (const std::string& photo : photos) {
    ProbeOutcome& out = outcomes.emplace_back();
    out.photo = out.result.probe_path = photo;
    out.result.corpus_faces = opened.index->ntotal();
    auto analyzed = analyzer->Analyze(photo);
    if (!analyzed) {
      out.error = analyzed.error();
      continue;
    }
    out.result.probe_sha256 = analyzed->sha256;
    out.result.faces_detected = static_cast<int>(analyzed->faces.size());
    auto chosen = ChooseProbeFaces(*analyzed, options);
    if (!chosen) {
      out.error = chosen.error();
      continue;
    }
    std::vector<int64_t> returned;
    for (int i : *chosen) {
      ProbeFace probe{i, analyzed->faces[i], analyzed->quality[i], {}};
      FS_ASSIGN(probe.matches, FindMatches(*store, *opened.index, probe.face, options, optouts));
      for (const Match& m : probe.matches) returned.push_back(m.face_id);
      out.result.probes.push_back(std::move(probe));
    }
    // The audit record is committed before any result leaves this function; no record, no result.
    FS_TRY(AppendAudit(*store, config.audit,
                       {"query", AuditParams(options, photo, out.result.faces_detected),
                        {out.result.probe_sha256}, JsonIdArray(returned)}));
  }
  return outcomes;
}

}  // namespace facesearch
