// Graph clustering with dlib's Chinese whispers (dlib stays in src/face).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "facesearch/error.h"

namespace facesearch {

// Labels nodes 0..n-1 (labels 0..clusters-1) by Chinese whispers over undirected, unweighted edges
// (i, j), as dlib's face clustering example does; every node is its own neighbour too, so a node
// without edges is a cluster of one. Deterministic (dlib::rand's fixed seed) for the same edges.
// Errors: kInvalidArgument for an edge naming a node >= n; kInternal if dlib throws.
Result<std::vector<uint32_t>> ChineseWhispers(uint32_t n, const std::vector<std::pair<uint32_t, uint32_t>>& edges,
                                              int iterations);

}  // namespace facesearch
