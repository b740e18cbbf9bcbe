// Grouping the corpus faces into identities: `facesearch cluster`, and the clusters kept in the
// corpus (`cluster --save`, `--update`, `list`, `show`, `label`, `merge`, `split`, `different`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/cluster_types.h"
#include "facesearch/engine.h"

namespace facesearch {

struct ClusterOptions {
  // Faces closer than this are linked. Unset: 0.4 for dlib's model, stricter than query's 0.6
  // (links chain, so one false link merges two people; LFW figures in docs/benchmarks.md), and
  // kSfaceClusterDistance in an SFace corpus.
  std::optional<float> threshold;
  int neighbors = 32;      // links per face: its k nearest within the threshold
  // IVF kinds: lists visited per face while the graph is built; 0: kClusterNprobe.
  int nprobe = 0;
  int min_size = 2;        // clusters smaller than this are not returned
  int iterations = 100;    // Chinese-whispers passes over the faces
  // Keep every group (singletons too) in the corpus, with stable ids: a group whose faces have a
  // Jaccard index of at least kKeepIdJaccard with a saved cluster's takes that cluster's id (and
  // label); the others get new ids; saved clusters no group matched are dropped.
  bool save = false;
};

// Lists an IVF index visits per face for the k-NN graph, below the query default (64): at 1M faces
// (IVF-PQ, 1,024 lists) 64 took an estimated 34 min, 16 took 7 min 15 s at recall@10 0.988
// against 0.9997 (docs/benchmarks.md, "cluster at 1M faces"); a missed neighbour only drops an
// edge that the face's other near neighbours usually carry.
inline constexpr int kClusterNprobe = 16;

// A re-run keeps a saved cluster's id for the group that shares at least this share of their
// faces together (|A∩B| / |A∪B|). At 0.5 each saved cluster can match one group at most.
inline constexpr double kKeepIdJaccard = 0.5;

struct ClusterFace {
  int64_t face_id = 0;
  std::string image_path;
  std::string image_sha256;
  Box box;
  std::optional<ClusterMember> member;  // saved clusters: how and by whom the face got there
  std::optional<ClusterLabel> label;    // the face's own label (`cluster label --face-id`)
};

struct FaceCluster {
  int64_t id = 0;                     // 1-based, largest first; a saved cluster's stable id
  std::vector<ClusterFace> faces;     // in face id order
  std::optional<ClusterLabel> label;  // saved clusters: the subject it is labelled with
  Decision created;                   // saved clusters: the decision that created it
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
  // --save: groups that kept a saved id, got a new one, and saved clusters dropped.
  int64_t kept = 0, created = 0, dropped = 0;
  // --update: faces not in a saved cluster that were offered, and how many joined a saved one.
  int64_t new_faces = 0, joined = 0;
};

// Links each face to its `neighbors` nearest faces within `threshold`, found with the corpus's own
// search index in batches (memory grows with faces x neighbors, never faces^2), and labels the
// graph with Chinese whispers. Audited as "cluster" (a search) before anything is returned.
// Errors: kNotFound (no corpus), kInvalidArgument (options, or a required --case), corpus errors.
// "Different people" links (`cluster different`) are respected: when a group holds two linked
// faces, the one with fewer links inside it moves to its best other group without such a link, or
// alone. With options.save the groups are written (ClusterOptions::save) in one transaction with
// the audit record, and clusters carry their saved ids and labels.
Result<ClusterReport> ClusterCorpus(const CorpusConfig& config, const ClusterOptions& options);

// `cluster --update`: offers the faces in no saved cluster (those indexed since the save) to the
// saved clusters without clustering again. In face id order, each new face is linked like
// ClusterCorpus links (its `neighbors` nearest within the threshold of the save, unless given) and
// joins the saved cluster (or the new group) holding most of its links, ties to the nearest, never
// one with a face it is "different" from or one labelled with a subject it is marked not to be; a
// face with no link starts a new cluster. Saved faces
// never move. Returns the clusters that gained faces (all sizes). Audited ("cluster", op update)
// when a face was placed; with none to place nothing is written (new_faces 0).
// Errors: kNotFound (no corpus, nothing saved yet: run --save first), and those of ClusterCorpus.
Result<ClusterReport> UpdateClusters(const CorpusConfig& config, const ClusterOptions& options);

// The saved clusters of at least min_size faces, largest first, with labels. Shows faces, so it
// is audited ("cluster", op list). Errors: kNotFound (no corpus).
Result<std::vector<FaceCluster>> SavedClusterList(const CorpusConfig& config, int min_size);

// One saved cluster with each face's record (provenance, EXIF) beside it: records[i] is faces[i].
struct ClusterDetail {
  FaceCluster cluster;
  std::vector<FaceRecord> records;
};
// Audited ("cluster", op show, the face ids). Errors: kNotFound (no such cluster).
Result<ClusterDetail> ShowCluster(const CorpusConfig& config, int64_t id);

// What `cluster label` attaches a subject to: a saved cluster or one face. A label is the
// reviewer's statement that these faces are that person: it is stored, shown and audited; it
// adds no reference to the subject (references stay deliberate: `subject add --face-id`).
struct LabelTarget {
  std::optional<int64_t> cluster_id, face_id;
};
// Errors: kNotFound (cluster, face or subject), kInvalidArgument (a face marked "not this
// person" for the subject, or one an opt-out covers); nothing changes then.
Status LabelFaces(const CorpusConfig& config, const LabelTarget& target, const std::string& subject);

// `merge A B`: B's faces join A, and B goes (its id is not reused); A keeps its label, or takes
// B's when it has none. Errors: kNotFound, kInvalidArgument (A = B, labels of two subjects, or
// two faces marked "different" would meet); nothing changes then. Returns A's id.
Result<int64_t> MergeClusters(const CorpusConfig& config, int64_t a, int64_t b);

// `split ID --face-id F...`: the faces move into a new cluster, whose id is returned. Errors:
// kNotFound (no cluster), kInvalidArgument (a face not in it, or all of its faces); nothing
// changes then.
Result<int64_t> SplitCluster(const CorpusConfig& config, int64_t id, const std::vector<int64_t>& faces);

// "Not this person" for one face: a different-people link to another face, to every face of a
// saved cluster (the face leaves that cluster when it is in it), or a subject's exclusion
// (SubjectExclusion: that subject's searches never return the face). Later clustering, updates
// and merges respect face links. When `face` and `other_face` share a saved cluster, `face`
// leaves it for a cluster of its own. Audited. Errors: kNotFound, kInvalidArgument (a face
// against itself); nothing changes then.
struct DifferentFrom {
  std::optional<int64_t> face_id, cluster_id;
  std::string subject;
};
Status MarkDifferent(const CorpusConfig& config, int64_t face, const DifferentFrom& other);

}  // namespace facesearch
