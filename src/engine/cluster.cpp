// `facesearch cluster`: a k-nearest-neighbour graph from the corpus index, labelled by Chinese
// whispers.
#include "facesearch/cluster.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <span>
#include <unordered_map>

#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "face/chinese_whispers.h"
#include "index/corpus_index.h"

namespace facesearch {

namespace {
constexpr size_t kBatch = 1024;  // probes per index pass: bounds the hit lists held at once
}

Result<ClusterReport> ClusterCorpus(const CorpusConfig& config, const ClusterOptions& options) {
  if (options.neighbors < 1) return Fail(ErrorCode::kInvalidArgument, "--neighbors must be at least 1");
  if (options.min_size < 1) return Fail(ErrorCode::kInvalidArgument, "--min-size must be at least 1");
  if (options.iterations < 1) return Fail(ErrorCode::kInvalidArgument, "--iterations must be at least 1");
  FS_ASSIGN(const CorpusPaths corpus, CheckExistingCorpus(config));
  FS_ASSIGN(auto store, OpenStore(corpus, StoreUse::kModels));
  FS_TRY(CheckCaseRequired(*store, config.audit, "cluster"));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));
  FS_ASSIGN(OpenedIndex opened, OpenIndexForReading(*store, corpus));
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(*store));
  const bool sface = mode && mode->model == EmbeddingModel::kSface;
  const float threshold = options.threshold.value_or(sface ? kSfaceClusterDistance : kDlibClusterDistance);

  // The nodes: every live face not covered by an opt-out, in face id order.
  std::vector<ClusterFace> faces;
  std::vector<Embedding> embeddings;
  FS_TRY(store->ForEachFace([&](const FaceRecord& r) {
    if (optouts.Matches(r.face.embedding)) return;
    faces.push_back(ClusterFace{r.face_id, r.image_path, r.image_sha256, r.face.box});
    embeddings.push_back(r.face.embedding);
  }));
  if (faces.size() >= UINT32_MAX) return Fail(ErrorCode::kInvalidArgument, "too many faces to cluster");
  std::unordered_map<int64_t, uint32_t> node_of;
  node_of.reserve(faces.size());
  for (size_t i = 0; i < faces.size(); ++i) node_of[faces[i].face_id] = static_cast<uint32_t>(i);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::pair<uint32_t, uint32_t>> edges;
  std::unique_ptr<ProgressSink> progress = ProgressFor(static_cast<int64_t>(faces.size()));
  if (progress)
    progress->Start("finding each face's " + std::to_string(options.neighbors) + " nearest neighbours (" +
                        IndexKindName(opened.index->spec().kind) + " index)",
                    static_cast<int64_t>(faces.size()));
  for (size_t begin = 0; begin < embeddings.size(); begin += kBatch) {
    if (progress) progress->Advance(static_cast<int64_t>(begin));
    const size_t count = std::min(kBatch, embeddings.size() - begin);
    // k + 1: the face itself comes back as its own nearest neighbour.
    FS_ASSIGN(auto hits, opened.index->SearchBatch(std::span(embeddings).subspan(begin, count), options.neighbors + 1));
    for (size_t q = 0; q < count; ++q) {
      const auto self = static_cast<uint32_t>(begin + q);
      for (const Hit& h : hits[q]) {
        if (h.distance > threshold) break;  // nearest first
        auto it = node_of.find(h.face_id);
        if (it == node_of.end() || it->second == self) continue;  // stale, opted out, or itself
        edges.emplace_back(std::min(self, it->second), std::max(self, it->second));
      }
    }
  }
  if (progress) progress->Finish();
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  spdlog::debug("cluster: {} faces, {} edges within {} from the index in {:.2f} s", faces.size(), edges.size(),
                threshold, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  FS_ASSIGN(std::vector<uint32_t> labels,
            ChineseWhispers(static_cast<uint32_t>(faces.size()), edges, options.iterations));
  std::vector<std::vector<uint32_t>> members;
  for (uint32_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= members.size()) members.resize(labels[i] + 1);
    members[labels[i]].push_back(i);
  }
  // Largest first; ties by smallest face id (members are in face id order), so the numbering is stable.
  std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) {
    return a.size() != b.size() ? a.size() > b.size() : a.front() < b.front();
  });

  ClusterReport report;
  report.threshold = threshold;
  report.faces = static_cast<int64_t>(faces.size());
  report.edges = static_cast<int64_t>(edges.size());
  report.clusters_total = static_cast<int64_t>(members.size());
  int64_t returned_faces = 0;
  for (const auto& m : members) {
    if (m.size() < static_cast<size_t>(options.min_size)) break;
    FaceCluster& c = report.clusters.emplace_back();
    c.id = static_cast<int>(report.clusters.size());
    for (uint32_t i : m) c.faces.push_back(std::move(faces[i]));
    returned_faces += static_cast<int64_t>(m.size());
  }
  // The record goes in before any result leaves the engine; no record, no result.
  const std::string params = "{\"threshold\":" + JsonFloat(threshold) +
                             ",\"neighbors\":" + std::to_string(options.neighbors) +
                             ",\"min_size\":" + std::to_string(options.min_size) + "}";
  const std::string results = "{\"faces\":" + std::to_string(report.faces) +
                              ",\"clusters\":" + std::to_string(report.clusters.size()) +
                              ",\"faces_returned\":" + std::to_string(returned_faces) + "}";
  FS_TRY(AppendAudit(*store, config.audit, {"cluster", params, {}, results}));
  return report;
}

}  // namespace facesearch
