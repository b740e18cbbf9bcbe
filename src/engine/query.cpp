// `facesearch query`: probe photo → same decode/detect/align/embed pipeline → nearest faces in the
// index → joined back to SQLite (dropping ids with no live row) → ranked matches.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/corpus_handle.h"
#include "engine/privacy_internal.h"
#include "facesearch/analyze.h"
#include "facesearch/embed.h"
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

std::string AuditParams(const QueryOptions& options, const std::string& photo, int faces_detected, bool embedded) {
  nlohmann::ordered_json params = {
      {"probe", photo},
      {"top_k", options.top_k},
      {"threshold", AuditFloat(options.threshold)},
      {"all_faces", options.all_faces},
      {"face", nullptr},
      {"detector", DetectorName(options.pipeline.detector)},
      {"retry", RetryStrategyName(options.pipeline.retry)},
      {"min_face", options.pipeline.min_face},
      {"faces_detected", faces_detected},
  };
  if (options.face) params["face"] = *options.face;
  if (embedded) params["embedded"] = true;
  return AuditJson(params);
}

// What a query needs from the corpus before its probe is analysed.
struct Prepared {
  PipelineOptions pipeline;  // its embedding resolved against the corpus
  OptOutFilter optouts;
};

Result<Prepared> Prepare(Corpus::Impl& c, const QueryOptions& options, const AuditContext& audit) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  Prepared p{options.pipeline, {}};
  std::lock_guard store_lock(c.store_mu);
  FS_ASSIGN(p.pipeline.embedding, c.ModeFor(p.pipeline));
  FS_TRY(CheckCaseRequired(*c.store, audit, "query"));
  FS_ASSIGN(p.optouts, OptOutFilter::Load(*c.store));
  return p;
}

// Searches with the probe's faces (or reports why it has none to search with), after catching up
// with other processes' writes, and commits the audit record: what Query and QueryEmbedding share.
Result<ProbeOutcome> Answer(Corpus::Impl& c, const std::string& name, const Result<PhotoFaces>& analyzed,
                            const QueryOptions& options, const OptOutFilter& optouts, const AuditContext& audit,
                            bool embedded) {
  ProbeOutcome out;
  out.photo = out.result.probe_path = name;
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
  // The audit record is committed before any result leaves the engine; no record, no result.
  std::lock_guard store_lock(c.store_mu);
  FS_TRY(AppendAudit(*c.store, audit,
                     {"query", AuditParams(options, name, out.result.faces_detected, embedded),
                      {out.result.probe_sha256}, AuditJson(returned)}));
  return out;
}

}  // namespace

Result<ProbeOutcome> Corpus::Query(const ProbeImage& probe, const QueryOptions& options) {
  return Query(probe, options, impl_->config.audit);
}

Result<ProbeOutcome> Corpus::Query(const ProbeImage& probe, const QueryOptions& options, const AuditContext& audit) {
  Impl& c = *impl_;
  FS_ASSIGN(Prepared prepared, Prepare(c, options, audit));
  FS_ASSIGN(Impl::Lease analyzer, c.LeaseAnalyzer(prepared.pipeline));
  auto analyzed = [&]() -> Result<PhotoFaces> {
    if (probe.bytes) return analyzer->AnalyzeBytes(probe.name, *probe.bytes);
    FS_ASSIGN(std::string bytes, ReadProbeBytes(probe, static_cast<size_t>(prepared.pipeline.max_file_bytes)));
    return analyzer->AnalyzeBytes(probe.name, bytes);
  }();
  return Answer(c, probe.name, analyzed, options, prepared.optouts, audit, /*embedded=*/false);
}

Result<ProbeOutcome> Corpus::QueryEmbedding(const EmbeddedProbe& probe, const QueryOptions& options) {
  return QueryEmbedding(probe, options, impl_->config.audit);
}

Result<ProbeOutcome> Corpus::QueryEmbedding(const EmbeddedProbe& probe, const QueryOptions& options,
                                            const AuditContext& audit) {
  Impl& c = *impl_;
  FS_ASSIGN(Prepared prepared, Prepare(c, options, audit));
  if (probe.model_identity != ModelIdentity(probe.mode.model) || probe.mode != *prepared.pipeline.embedding)
    return Fail(ErrorCode::kInvalidArgument,
                "the probe " + probe.faces.path + " was embedded with '" + EmbeddingModeName(probe.mode) + "' " +
                    probe.model_identity + " and the corpus holds '" +
                    EmbeddingModeName(*prepared.pipeline.embedding) + "' " + ModelIdentity(prepared.pipeline.embedding->model) +
                    " embeddings: embed it again with this build and --embedding " +
                    EmbeddingModeName(*prepared.pipeline.embedding));
  if (probe.faces.quality.size() != probe.faces.faces.size())
    return Fail(ErrorCode::kInvalidArgument, "the probe " + probe.faces.path + " needs one quality per face");
  // --min-face applies to the probe's faces as the analyzer would have applied it.
  PhotoFaces faces = probe.faces;
  for (size_t i = faces.faces.size(); i-- > 0;)
    if (std::min(faces.faces[i].box.w, faces.faces[i].box.h) < options.pipeline.min_face) {
      faces.faces.erase(faces.faces.begin() + static_cast<std::ptrdiff_t>(i));
      faces.quality.erase(faces.quality.begin() + static_cast<std::ptrdiff_t>(i));
    }
  return Answer(c, probe.faces.path, faces, options, prepared.optouts, audit, /*embedded=*/true);
}

Result<std::vector<ProbeOutcome>> QueryPhotos(const CorpusConfig& config, const std::vector<ProbeImage>& probes,
                                              const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  if (std::count_if(probes.begin(), probes.end(), [](const ProbeImage& p) { return p.stream; }) > 1)
    return Fail(ErrorCode::kInvalidArgument, "only one probe can come from stdin (-)");
  FS_ASSIGN(auto corpus, Corpus::Open(config, OpenOptions{options.pipeline}));
  std::vector<ProbeOutcome> outcomes;
  for (const ProbeImage& probe : probes) {
    if (!probe.stream) {
      FS_ASSIGN(outcomes.emplace_back(), corpus->Query(probe, options));
      continue;
    }
    // A stream is read when the probe's turn comes (the corpus is already open: a query waiting
    // for its probe holds no lock); one that cannot be read fails that probe only.
    auto bytes = ReadProbeBytes(probe, static_cast<size_t>(options.pipeline.max_file_bytes));
    if (!bytes) {
      ProbeOutcome& out = outcomes.emplace_back();
      out.photo = out.result.probe_path = probe.name;
      out.error = bytes.error();
      continue;
    }
    FS_ASSIGN(outcomes.emplace_back(), corpus->Query(ProbeImage::Bytes(probe.name, std::move(*bytes)), options));
  }
  return outcomes;
}

Result<std::vector<ProbeOutcome>> QueryEmbedded(const CorpusConfig& config, const std::string& embed_file,
                                                std::istream* in, const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  FS_ASSIGN(EmbedFile embed, ReadEmbedFile(embed_file, in, kMaxListEntries));
  FS_ASSIGN(auto corpus, Corpus::Open(config));
  FS_ASSIGN(EmbeddingMode mode, corpus->EmbeddingModeFor(options.pipeline.embedding));
  FS_TRY(CheckEmbedHeader(embed.header, mode, embed_file));
  std::vector<ProbeOutcome> outcomes;
  for (const EmbeddedImage& r : embed.records) {
    if (r.status == EmbeddedImage::Status::kError || r.status == EmbeddedImage::Status::kIssue) {
      ProbeOutcome& out = outcomes.emplace_back();
      out.photo = out.result.probe_path = r.path;
      out.error = Error{ErrorCode::kDecode, r.path + " could not be embedded (" + r.reason + "): " + r.error};
      continue;
    }
    EmbeddedProbe probe{r.AsPhotoFaces(), embed.header.mode, embed.header.model_identity};
    FS_ASSIGN(outcomes.emplace_back(), corpus->QueryEmbedding(probe, options));
  }
  return outcomes;
}

}  // namespace facesearch
