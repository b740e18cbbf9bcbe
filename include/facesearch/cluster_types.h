// Value types of kept clusters (facesearch/cluster.h), shared by the store, the engine and front
// ends. No third-party types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace facesearch {

// Who took a decision about faces (saved them in a cluster, labelled, merged, split, marked two
// people different), when, for which case, and the audit record that holds it.
struct Decision {
  std::string at;       // ISO-8601 UTC: the time of its audit record
  std::string by;       // OS user, as in the audit record
  std::string case_id;  // --case ("" when none)
  int64_t audit_seq = 0;
};

// A subject attached to a saved cluster or to one face (`cluster label`).
struct ClusterLabel {
  int64_t subject_id = 0;
  std::string subject;  // its name
  Decision decided;
};

// A face in a saved cluster: how it got there ("save", "update", "merge", "split", "different")
// and by whose decision.
struct ClusterMember {
  int64_t face_id = 0;
  std::string how;
  Decision decided;
};

struct SavedCluster {
  int64_t id = 0;  // stable: kept across `cluster --save` runs for substantially the same group
  Decision created;
  std::optional<ClusterLabel> label;
  std::vector<ClusterMember> members;  // in face id order
};

// "Not the same person": two faces that no clustering may put in one group (`cluster different`).
struct ApartLink {
  int64_t a = 0, b = 0;  // a < b
  Decision decided;
};

// One group to write: `id` a saved cluster, or none for a new one; its faces leave any cluster
// they were in.
struct ClusterWrite {
  std::optional<int64_t> id;
  std::vector<int64_t> faces;
  std::string how;
};

// One transaction of `Store::ChangeClusters`: memberships, "different" links, a label, settings.
// A cluster left without faces is deleted (`merge` empties the one whose faces moved).
struct ClusterChange {
  bool replace_all = false;  // `cluster --save`: every membership goes first; clusters left empty go
  std::vector<ClusterWrite> groups;
  std::vector<std::pair<int64_t, int64_t>> apart;  // new "different people" links
  struct Label {
    std::optional<int64_t> cluster_id, face_id;  // one of the two
    int64_t subject_id = 0;
  };
  std::optional<Label> label;
  std::vector<std::pair<std::string, std::string>> meta;  // cluster.* settings of a save
  std::vector<std::pair<std::string, int64_t>> results;  // counts for the audit record's results, before "clusters"
};

}  // namespace facesearch
