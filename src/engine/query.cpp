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
#include "face/models.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

bool QueryResult::any_match() const {
  return std::any_of(probes.begin(), probes.end(), [](const ProbeFace& p) { return !p.matches.empty(); });
}

namespace {

Result<std::string> ReadProbe(const std::string& photo, size_t max_bytes) {
  if (photo != "-") return ReadFile(photo, max_bytes);
  std::string bytes;
  char buf[1 << 16];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    bytes.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (bytes.size() > max_bytes)
      return Fail(ErrorCode::kDecode, "probe on stdin is larger than the size limit");
  }
  if (bytes.empty()) return Fail(ErrorCode::kInvalidArgument, "no image data on stdin");
  return bytes;
}

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
    matches.push_back(Match{static_cast<int>(matches.size()) + 1, h.face_id, h.distance,
                            r.image_path, r.image_sha256, r.face.box});
  }
  return matches;
}

}  // namespace

Result<QueryResult> QueryPhoto(const CorpusConfig& config, const std::string& photo,
                               const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  CorpusPaths corpus = PathsFor(config.corpus_dir);
  FS_TRY(RequireCorpus(corpus));
  FS_TRY(CheckCorpusPermissions(config));

  QueryResult result;
  result.probe_path = photo;
  DecodeLimits limits = LimitsFrom(options.pipeline);
  FS_ASSIGN(std::string bytes, ReadProbe(photo, static_cast<size_t>(limits.max_bytes)));
  result.probe_sha256 = Sha256Hex(bytes);
  auto image = DecodeImage(bytes, limits);
  if (!image) return Fail(ErrorCode::kDecode, "cannot read probe " + photo + ": " + image.error().message);

  FS_ASSIGN(auto analyzer, LoadAnalyzer(config, options.pipeline));
  FS_ASSIGN(std::vector<Face> faces, analyzer->Analyze(*image));
  result.faces_detected = static_cast<int>(faces.size());

  // Repair the index on disk too when no writer is busy; otherwise repair in memory only.
  auto lock = FileLock::Acquire(corpus.lock, /*exclusive=*/true, /*wait=*/false);
  FS_ASSIGN(auto store, Store::Open(corpus.database, ModelIdentity()));
  FS_TRY(CheckCaseRequired(*store, config.audit, "query"));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, corpus.index_dir, /*persist=*/lock.has_value()));
  result.corpus_faces = opened.index->ntotal();

  std::vector<int> chosen;
  for (int i = 0; i < result.faces_detected; ++i) chosen.push_back(i);
  if (!options.all_faces && !chosen.empty()) {
    auto area = [&](int i) { return faces[i].box.w * faces[i].box.h; };
    chosen = {*std::max_element(chosen.begin(), chosen.end(),
                                [&](int a, int b) { return area(a) < area(b); })};
  }
  for (int i : chosen) {
    ProbeFace probe{i, faces[i], {}};
    FS_ASSIGN(probe.matches, FindMatches(*store, *opened.index, faces[i], options, optouts));
    result.probes.push_back(std::move(probe));
  }
  // The audit record is committed before any result leaves this function; no record, no result.
  std::vector<int64_t> returned;
  for (const ProbeFace& p : result.probes)
    for (const Match& m : p.matches) returned.push_back(m.face_id);
  const std::string params =
      "{\"probe\":" + JsonQuote(photo) + ",\"top_k\":" + std::to_string(options.top_k) +
      ",\"threshold\":" + JsonFloat(options.threshold) +
      ",\"all_faces\":" + (options.all_faces ? "true" : "false") +
      ",\"detector\":" + (options.pipeline.detector == DetectorKind::kCnn ? "\"cnn\"" : "\"hog\"") +
      ",\"faces_detected\":" + std::to_string(result.faces_detected) + "}";
  FS_TRY(AppendAudit(*store, config.audit, {"query", params, {result.probe_sha256}, JsonIdArray(returned)}));
  return result;
}

}  // namespace facesearch
