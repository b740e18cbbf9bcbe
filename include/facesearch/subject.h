// Subjects: a named person with several reference faces, kept in the corpus (schema v6) with who
// added each reference, when and for which case. `query --subject` searches with all of them at
// once (Corpus::QuerySubject). Like engine.h, nothing here prints; see docs/usage.md "Subjects".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "facesearch/engine.h"
#include "facesearch/subject_types.h"

namespace facesearch {

// How a subject's references become one score for a corpus face: the distance from the face to
// the mean of the references' embeddings (the template). Measured against the best and mean
// distances on LFW (docs/benchmarks.md, "Subjects"); calibrated per number of references
// (Calibration::ForSubject).
float SubjectDistance(const Subject& subject, const Embedding& face);
Embedding SubjectTemplate(const Subject& subject);

// A subject name: 1 to 100 characters, no control characters, not starting with '-'. Names are
// compared exactly. Errors: kInvalidArgument saying what is wrong.
Status CheckSubjectName(const std::string& name);

struct SubjectAddRequest {
  std::string name;
  std::vector<std::string> photos;  // the largest face of each
  std::vector<int64_t> face_ids;    // corpus faces (ids as query and export print them)
  bool append = false;              // add to an existing subject instead of creating one
  PipelineOptions pipeline;         // for the photos
};

// Creates the subject (or, with append, extends it) with one reference per photo and face id, in
// one transaction with its audit record ("subject", op "add"). Nothing changes when any input
// fails. Errors: kInvalidArgument (bad or duplicate name, no reference given, a photo with no
// face, a face that an opt-out covers), kNotFound (no corpus, unknown subject with append, an
// unknown face id), kDecode, kModel, kDatabase.
Result<Subject> AddSubject(const CorpusConfig& config, const SubjectAddRequest& request);
// Read-only; no audit record (listing names shows no biometric result).
Result<std::vector<Subject>> ListSubjects(const CorpusConfig& config);
// Errors: kNotFound naming `subject list`.
Result<Subject> GetSubject(const CorpusConfig& config, const std::string& name);
// "Not this person": marks corpus faces as not the subject, audited ("subject", op "exclude"):
// subject searches never return them, and export/forget --subject leave them out. Errors:
// kNotFound (no subject, an unknown face id), kInvalidArgument (a face that is a reference, no
// face id given); nothing changes then.
Status ExcludeFromSubject(const CorpusConfig& config, const std::string& name, const std::vector<int64_t>& face_ids);
// Audited ("subject", op "rename"). Errors: kNotFound, kInvalidArgument (bad or taken name).
Status RenameSubject(const CorpusConfig& config, const std::string& from, const std::string& to);
// Deletes the subject and its references (their embeddings scrubbed like an erasure), audited
// ("subject", op "remove"). The corpus faces stay: `forget --subject` erases those too.
Status RemoveSubject(const CorpusConfig& config, const std::string& name);

// `export --subject`: the subject's faces in the corpus, exactly those `forget --subject` would
// erase at `threshold` (every face within it of the template, and the faces its references came
// from, less those marked "not this person"), nearest first, each with its distance to the template. The audit record ("export",
// params subject and threshold, the face ids) is committed first. Errors: kNotFound, kIo, kDatabase.
Status ExportSubjectFaces(const CorpusConfig& config, const std::string& name, float threshold,
                          const std::function<void(const FaceRecord&, float distance)>& fn);

}  // namespace facesearch
