// `facesearch query`: probe photo → same decode/detect/align/embed pipeline → nearest faces in the
// index → joined back to SQLite (dropping ids with no live row) → ranked matches.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <unordered_map>

#include "common/sha256.h"
#include "common/json.h"
#include "engine/corpus.h"
#include "engine/corpus_handle.h"
#include "engine/privacy_internal.h"
#include "engine/video.h"
#include "facesearch/analyze.h"
#include "facesearch/embed.h"
#include "facesearch/subject.h"
#include "face/models.h"
#include "image/phash.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

bool QueryResult::any_match() const {
  return std::any_of(probes.begin(), probes.end(), [](const ProbeFace& p) { return !p.matches.empty(); });
}

namespace {

size_t Root(std::vector<size_t>& parent, size_t i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

// Groups matches whose images are near-duplicates (image/phash.h; transitively), the nearest of
// each group first: it counts the others in `copies`, and they name it in `copy_of` or, when
// collapsing, are dropped (ranks are renumbered). Two faces of one image are not copies.
void GroupCopies(std::vector<Match>& matches, const std::vector<const FaceRecord*>& rows, bool collapse) {
  std::vector<size_t> parent(matches.size());
  for (size_t i = 0; i < parent.size(); ++i) parent[i] = i;
  for (size_t i = 0; i < matches.size(); ++i)
    for (size_t j = i + 1; j < matches.size(); ++j)
      if (rows[i]->phash && rows[j]->phash && rows[i]->image_id != rows[j]->image_id &&
          NearDuplicates(*rows[i]->phash, *rows[j]->phash)) {
        const size_t a = Root(parent, i), b = Root(parent, j);
        parent[std::max(a, b)] = std::min(a, b);  // the nearest is the root
      }
  for (size_t i = 0; i < matches.size(); ++i) {
    const size_t root = Root(parent, i);
    if (root == i) continue;
    ++matches[root].copies;
    matches[i].copy_of = matches[root].face_id;
  }
  if (!collapse) return;
  std::erase_if(matches, [](const Match& m) { return m.copy_of.has_value(); });
  for (size_t i = 0; i < matches.size(); ++i) matches[i].rank = static_cast<int>(i) + 1;
}

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
  std::vector<const FaceRecord*> matched_rows;
  for (const Hit& h : hits) {
    auto it = by_id.find(h.face_id);
    if (it == by_id.end()) continue;  // stale index entry: the face is gone from SQLite
    const FaceRecord& r = *it->second;
    if (optouts.Matches(r.face.embedding)) continue;
    if (std::min(r.face.box.w, r.face.box.h) < options.pipeline.min_face) continue;  // --min-face
    matches.push_back(Match{static_cast<int>(matches.size()) + 1, h.face_id, h.distance, r.image_path,
                            r.image_sha256, r.face.box, r.provenance, r.photo, 0, std::nullopt, r.face.video});
    matched_rows.push_back(&r);
  }
  GroupCopies(matches, matched_rows, options.collapse_copies);
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

std::string AuditParams(const QueryOptions& options, const std::string& photo, int faces_detected, bool embedded) {
  Json params = {
      {"probe", photo},
      {"top_k", options.top_k},
      {"threshold", ShortestDouble(options.threshold)},
      {"all_faces", options.all_faces},
      {"face", nullptr},
      {"detector", DetectorName(options.pipeline.detector)},
      {"retry", RetryStrategyName(options.pipeline.retry)},
      {"min_face", options.pipeline.min_face},
      {"collapse_copies", options.collapse_copies},
      {"faces_detected", faces_detected},
  };
  if (options.face) params["face"] = *options.face;
  if (embedded) params["embedded"] = true;
  return JsonText(params);
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

// The faces a search is among: the Store's live count (O(1)), not the index's rows, which keep
// erased faces' scrubbed places until the next compaction.
Result<int64_t> LiveFaceCount(Corpus::Impl& c) {
  std::lock_guard store_lock(c.store_mu);
  return c.store->FaceCount();
}

// Searches with the probe's faces (or reports why it has none to search with), after catching up
// with other processes' writes, and commits the audit record: what Query and QueryEmbedding share.
Result<ProbeOutcome> Answer(Corpus::Impl& c, const std::string& name, const Result<PhotoFaces>& analyzed,
                            const QueryOptions& options, const OptOutFilter& optouts, const AuditContext& audit,
                            bool embedded) {
  ProbeOutcome out;
  out.photo = out.result.probe_path = name;
  out.result.threshold = options.threshold;
  // Searched against what the corpus holds now: faces another process added or erased since the
  // last call are caught up with first.
  FS_TRY(c.CatchUp());
  FS_ASSIGN(out.result.corpus_faces, LiveFaceCount(c));
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
                      {out.result.probe_sha256}, JsonText(returned)}));
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
    if (!probe.stream && IsVideoFile(probe.name)) return analyzer->AnalyzeVideo(probe.name, prepared.pipeline.video);
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


Result<ProbeOutcome> Corpus::QuerySubject(const std::string& name, const QueryOptions& options) {
  if (options.top_k < 1) return Fail(ErrorCode::kInvalidArgument, "--top-k must be at least 1");
  Impl& c = *impl_;
  OptOutFilter optouts;
  std::vector<Subject> found;
  {
    std::lock_guard store_lock(c.store_mu);
    FS_TRY(c.ModeFor(options.pipeline));
    FS_TRY(CheckCaseRequired(*c.store, c.config.audit, "query"));
    FS_ASSIGN(optouts, OptOutFilter::Load(*c.store));
    FS_ASSIGN(found, c.store->Subjects(name));
  }
  if (found.empty())
    return Fail(ErrorCode::kNotFound, "no subject named '" + name + "'; `facesearch subject list` shows them");
  Subject subject = std::move(found.front());
  // An opt-out that came after the reference still wins: that face is never searched with.
  const size_t before = subject.references.size();
  std::erase_if(subject.references, [&](const SubjectReference& r) { return optouts.Matches(r.embedding); });
  if (subject.references.size() < before)
    spdlog::warn("subject '{}': {} reference(s) match an opt-out and were left out", name,
                 before - subject.references.size());
  if (subject.references.empty())
    return Fail(ErrorCode::kInvalidArgument, "subject '" + name + "' has no reference left to search with");
  FS_TRY(c.CatchUp());

  ProbeOutcome out;
  out.photo = out.result.probe_path = "subject:" + name;
  out.result.subject = name;
  out.result.threshold = options.threshold;
  out.result.references = static_cast<int>(subject.references.size());
  out.result.faces_detected = out.result.references;
  FS_ASSIGN(out.result.corpus_faces, LiveFaceCount(c));
  ProbeFace probe;
  probe.face.embedding = SubjectTemplate(subject);
  // Faces marked "not this person" are searched past, so that top_k others still come back.
  QueryOptions wider = options;
  wider.top_k += static_cast<int>(subject.exclusions.size());
  FS_ASSIGN(probe.matches, FindMatches(c, probe.face, wider, optouts));
  std::erase_if(probe.matches, [&](const Match& m) { return subject.Excludes(m.face_id); });
  if (probe.matches.size() > static_cast<size_t>(options.top_k)) probe.matches.resize(static_cast<size_t>(options.top_k));
  for (size_t i = 0; i < probe.matches.size(); ++i) probe.matches[i].rank = static_cast<int>(i) + 1;
  std::vector<int64_t> returned;
  for (const Match& m : probe.matches) returned.push_back(m.face_id);
  out.result.probes.push_back(std::move(probe));
  std::vector<std::string> shas;
  for (const SubjectReference& r : subject.references) shas.push_back(r.photo_sha256);
  std::lock_guard store_lock(c.store_mu);
  FS_TRY(AppendAudit(*c.store, c.config.audit,
                     {"query", AuditParams(options, out.photo, out.result.faces_detected, /*embedded=*/false), shas,
                      JsonText(returned)}));
  return out;
}

Result<std::vector<ProbeOutcome>> QuerySubjects(const CorpusConfig& config,
                                                const std::vector<std::pair<std::string, QueryOptions>>& subjects) {
  if (subjects.empty()) return std::vector<ProbeOutcome>{};
  FS_ASSIGN(auto corpus, Corpus::Open(config));
  std::vector<ProbeOutcome> outcomes;
  for (const auto& [name, options] : subjects) {
    FS_ASSIGN(outcomes.emplace_back(), corpus->QuerySubject(name, options));
  }
  return outcomes;
}

namespace {

// Assigns each outcome one of its candidate faces in the image, all distinct, trying each
// outcome's nearest first (a handful of faces per image: a depth-first search is enough).
bool AssignDistinct(const std::vector<std::vector<const Match*>>& candidates, size_t next,
                    std::vector<const Match*>& chosen) {
  if (next == candidates.size()) return true;
  for (const Match* m : candidates[next]) {
    if (std::any_of(chosen.begin(), chosen.end(), [&](const Match* c) { return c->face_id == m->face_id; })) continue;
    chosen.push_back(m);
    if (AssignDistinct(candidates, next + 1, chosen)) return true;
    chosen.pop_back();
  }
  return false;
}

}  // namespace

std::vector<TogetherImage> FindTogether(const std::vector<ProbeOutcome>& outcomes) {
  std::vector<TogetherImage> together;
  if (outcomes.empty()) return together;
  // Per image (by content), per outcome: its matches there, nearest first.
  std::map<std::string, std::vector<std::vector<const Match*>>> by_image;
  for (size_t o = 0; o < outcomes.size(); ++o) {
    if (outcomes[o].error) return together;
    for (const ProbeFace& p : outcomes[o].result.probes)
      for (const Match& m : p.matches) {
        auto& slots = by_image[m.image_sha256];
        slots.resize(outcomes.size());
        slots[o].push_back(&m);
      }
  }
  for (auto& [sha, slots] : by_image) {
    for (auto& s : slots)
      std::sort(s.begin(), s.end(), [](const Match* a, const Match* b) { return a->distance < b->distance; });
    std::vector<const Match*> chosen;
    if (!AssignDistinct(slots, 0, chosen)) continue;
    TogetherImage image{chosen.front()->image_path, sha, {}, 0};
    for (const Match* m : chosen) {
      image.matches.push_back(*m);
      image.worst_distance = std::max(image.worst_distance, m->distance);
    }
    together.push_back(std::move(image));
  }
  std::sort(together.begin(), together.end(),
            [](const TogetherImage& a, const TogetherImage& b) { return a.worst_distance < b.worst_distance; });
  return together;
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
  return QueryEmbedRecords(*corpus, embed, embed_file, options, config.audit);
}

Result<std::vector<ProbeOutcome>> QueryEmbedRecords(Corpus& corpus, const EmbedFile& embed, const std::string& name,
                                                    const QueryOptions& options, const AuditContext& audit) {
  FS_ASSIGN(EmbeddingMode mode, corpus.EmbeddingModeFor(options.pipeline.embedding));
  FS_TRY(CheckEmbedHeader(embed.header, mode, name));
  std::vector<ProbeOutcome> outcomes;
  for (const EmbeddedImage& r : embed.records) {
    if (r.status == EmbeddedImage::Status::kErased) continue;  // a tombstone (export --embed-file) is no probe
    if (r.status == EmbeddedImage::Status::kError || r.status == EmbeddedImage::Status::kIssue) {
      ProbeOutcome& out = outcomes.emplace_back();
      out.photo = out.result.probe_path = r.path;
      out.error = Error{ErrorCode::kDecode, r.path + " could not be embedded (" + r.reason + "): " + r.error};
      continue;
    }
    EmbeddedProbe probe{r.AsPhotoFaces(), embed.header.mode, embed.header.model_identity};
    FS_ASSIGN(outcomes.emplace_back(), corpus.QueryEmbedding(probe, options, audit));
  }
  return outcomes;
}

}  // namespace facesearch
