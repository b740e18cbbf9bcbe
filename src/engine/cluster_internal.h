// Engine-internal pieces of clustering and kept clusters (facesearch/cluster.h), shared by
// cluster.cpp (clustering, --save, --update) and saved_clusters.cpp (list, show, label, merge,
// split, different). MatchSavedIds and KeepApart need no corpus and are tested in the fast tier.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "facesearch/cluster.h"
#include "store/store.h"

namespace facesearch {

// For each group (face ids, ascending), the id of the saved cluster whose faces have a Jaccard
// index of at least kKeepIdJaccard with the group's, the highest when several do; none when no
// saved cluster does. No id is given twice.
std::vector<std::optional<int64_t>> MatchSavedIds(const std::vector<std::vector<int64_t>>& groups,
                                                  const std::vector<SavedCluster>& saved);

// Makes `labels` (node -> group) respect "different people" links: while two linked nodes share
// a group, the one with fewer edges inside it (ties: the higher node) moves to the group of its
// neighbours that holds most of its edges and none of its links, or to a new group of its own.
void KeepApart(std::vector<uint32_t>& labels, const std::vector<std::pair<uint32_t, uint32_t>>& edges,
               const std::vector<std::pair<uint32_t, uint32_t>>& apart);

ClusterFace FaceOf(const FaceRecord& r);
// Largest first; ties by smallest face id.
void SortLargestFirst(std::vector<FaceCluster>& clusters);
// Sets each cluster's label and creation, and each face's placement and own label, from the
// saved clusters (by cluster id and face id).
Status AttachSaved(Store& store, std::vector<FaceCluster>& clusters);

}  // namespace facesearch
