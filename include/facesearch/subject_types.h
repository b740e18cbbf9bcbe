// Value types of subjects (facesearch/subject.h), shared by the store, the engine and front ends.
// No third-party types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/types.h"

namespace facesearch {

// One reference face of a subject. Its embedding is biometric data: `subject remove` and
// `forget --subject` erase it (with the scrub every erasure gets), and erasing the corpus face it
// was taken from (`forget --face-id`, an opt-out) erases the reference with it.
struct SubjectReference {
  int64_t id = 0;
  Embedding embedding{};
  std::string source;               // the photo's path as given, or "face-id N"
  std::string photo_sha256;         // of the photo (for a face-id reference: of its corpus image)
  std::optional<int64_t> face_id;   // the corpus face it was taken from, if any
  Box box;                          // the face in that photo
  std::string added_at;             // ISO-8601 UTC: the time of its audit record
  std::string added_by;             // OS user, as in the audit record
  std::string case_id;              // --case when it was added ("" when none)
  int64_t audit_seq = 0;            // the audit record that added it (`facesearch audit`)
};

// "Not this person": a corpus face someone judged not to be the subject. Subject searches never
// return it, and `forget --subject` / `export --subject` leave it out. It goes when the face is erased.
struct SubjectExclusion {
  int64_t face_id = 0;
  std::string added_at, added_by, case_id;
  int64_t audit_seq = 0;
};

struct Subject {
  int64_t id = 0;
  std::string name;
  std::string created_at, created_by, case_id;
  std::vector<SubjectReference> references;  // oldest first
  std::vector<SubjectExclusion> exclusions;  // oldest first
  bool Excludes(int64_t face_id) const {
    for (const SubjectExclusion& e : exclusions)
      if (e.face_id == face_id) return true;
    return false;
  }
};

}  // namespace facesearch
