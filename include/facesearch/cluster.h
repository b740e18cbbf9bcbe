// Grouping the corpus faces into identities: `facesearch cluster`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

struct ClusterOptions {
  // Faces closer than this are linked. Stricter than query's 0.6: links chain, so one false link
  // merges two people (LFW figures in docs/benchmarks.md).
  float threshold = 0.4f;
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

struct ClusterReport {
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
