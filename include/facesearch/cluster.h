// Grouping the corpus faces into identities: `facesearch cluster`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

struct ClusterOptions {
  // Faces closer than this are linked. Unset: 0.4 for dlib's model, stricter than query's 0.6
  // (links chain, so one false link merges two people; LFW figures in docs/benchmarks.md), and
  // kSfaceClusterDistance in an SFace corpus.
  std::optional<float> threshold;
  int neighbors = 32;      // links per face: its k nearest within the threshold
  int min_size = 2;        // clusters smaller than this are not returned
  int iterations = 100;    // Chinese-whispers passes over the faces
};

struct ClusterFace {
  int64_t face_id = 0;
  std::string image_path;
  std::string image_sha256;
  Box box;
};

struct FaceCluster {
  int id = 0;                      // 1-based, largest cluster first
  std::vector<ClusterFace> faces;  // in face id order
};

// SFace's distance with about the LFW false-match rate of dlib's 0.4 (3.7e-6 against 4.0e-6 on
// the full-LFW tables; docs/benchmarks.md, "Full LFW, both model families").
inline constexpr float kDlibClusterDistance = 0.4f;
inline constexpr float kSfaceClusterDistance = 0.87f;

struct ClusterReport {
  float threshold = 0;          // the link distance used (the option, or the model's default)
  int64_t faces = 0;            // faces clustered (opted-out faces are left out)
  int64_t edges = 0;            // links within the threshold
  int64_t clusters_total = 0;   // clusters of any size, singletons included
  std::vector<FaceCluster> clusters;  // those with at least min_size faces, largest first
};

// Links each face to its `neighbors` nearest faces within `threshold`, found with the corpus's own
// search index in batches (memory grows with faces x neighbors, never faces^2), and labels the
// graph with Chinese whispers. Audited as "cluster" (a search) before anything is returned.
// Errors: kNotFound (no corpus), kInvalidArgument (options, or a required --case), corpus errors.
Result<ClusterReport> ClusterCorpus(const CorpusConfig& config, const ClusterOptions& options);

}  // namespace facesearch
