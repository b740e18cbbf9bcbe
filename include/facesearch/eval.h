// Accuracy measurement on Labeled Faces in the Wild (LFW), with the field's protocols, and the
// distance → false-match-rate calibration that `query` prints beside every distance.
//
// Embeddings come from a corpus that has indexed the LFW images (`facesearch index lfw/images`),
// so the figures measure exactly what `query` searches. An image is represented by the face
// nearest to the image centre (LFW crops are centred on the labelled person); an image with no
// detected face is a "miss".
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

struct RocPoint {
  float threshold = 0;
  double far = 0;  // false accept rate: impostor pairs with distance <= threshold
  double tar = 0;  // true accept rate: genuine pairs with distance <= threshold
};

struct VerificationReport {
  int pairs = 0;         // 6000 for pairs.txt
  int pairs_missed = 0;  // pairs where either image has no face (counted as errors)
  int images_missed = 0;
  std::vector<double> fold_accuracy;    // misses counted as errors
  std::vector<float> fold_threshold;    // chosen on the other nine folds
  double mean_accuracy = 0, std_accuracy = 0;
  double mean_accuracy_found = 0;       // same, over pairs where both faces were found
  double accuracy_at_06 = 0;            // fixed threshold 0.6, misses counted as errors
  float same_person_distance = 0.6f;    // the corpus model's (SamePersonDistance)
  double accuracy_at_same_person = 0;   // at that distance, misses counted as errors
  double tar_at_far_1e3 = 0, tar_at_far_1e2 = 0;  // over pairs where both faces were found
  std::vector<RocPoint> roc;
};

// pairs_file: the standard View 2 pairs.txt. images_dir: LFW's images/ (Name/Name_NNNN.jpg).
// Errors: kInvalidArgument for a malformed pairs file; corpus errors.
Result<VerificationReport> EvalLfwVerification(const CorpusConfig& config,
                                               const std::filesystem::path& images_dir,
                                               const std::filesystem::path& pairs_file);

struct IdentificationReport {
  int gallery = 0;            // enrolled images: one per person with >= 2 images, plus distractors
  int distractors = 0;        // single-image people in the gallery
  int mated_probes = 0;       // other images of enrolled people
  int non_mated_probes = 0;   // images of held-out people (not in the gallery)
  int probes_missed = 0;      // probes without a face (count as misses / non-answers)
  double rank1 = 0, rank10 = 0;                  // mated probes, misses counted as failures
  double fnir_at_fpir_1e2 = 0, fnir_at_fpir_1e3 = 0;
  float threshold_fpir_1e2 = 0, threshold_fpir_1e3 = 0;
};

// Open-set 1:N identification the way NIST FRVT measures face search. People with >= 2 images,
// sorted by name, alternate between enrolled (first image in the gallery, other images are mated
// probes) and held out (all images are non-mated probes); single-image people are distractors.
Result<IdentificationReport> EvalLfwIdentification(const CorpusConfig& config,
                                                   const std::filesystem::path& images_dir);

struct CalibrationRow {
  float distance = 0;
  double fmr = 0;   // share of different-person pairs at or below this distance
  double fnmr = 0;  // share of same-person pairs above this distance
};

// Genuine and impostor distances over every pair of LFW images (one face per image), tabulated
// every 0.01 from 0 to 2.0. Also reports how many pairs each side had.
struct CalibrationTable {
  int64_t genuine_pairs = 0, impostor_pairs = 0;
  std::vector<CalibrationRow> rows;
};
Result<CalibrationTable> BuildLfwCalibration(const CorpusConfig& config,
                                             const std::filesystem::path& images_dir);

// dlib's same-person distance, the default threshold of a small corpus.
inline constexpr float kDefaultThreshold = 0.6f;
// The strangers a default query expects among its matches (Calibration::DefaultThreshold).
inline constexpr double kDefaultExpectedStrangers = 1.0;

// A distance → error-rate table measured on LFW with one embedding mode, compiled in from data/
// (plain: data/calibration.tsv, flip: data/calibration-flip.tsv). The modes average different
// views, which pulls every distance in, so a table is only right for faces embedded with the mode
// it was measured with: `query` and `compare` take the one for their faces' mode.
inline constexpr int kSubjectTableReferences = 5;

class Calibration {
 public:
  // The table measured with `mode`; for a mode without one (jitter:N, the 68-point alignments),
  // the plain table, and exact() is false: its false-match rates are then approximate.
  static Calibration For(const EmbeddingMode& mode);
  // The table of a subject search (Corpus::QuerySubject) with `references` references, for this
  // table's mode: the distance to their mean embedding, measured on LFW for 2 to
  // kSubjectTableReferences references (plain embeddings). One reference is a photo search: this
  // table. More references than measured take the largest table, and a mode without tables of its
  // own the plain ones; exact() is then false. mode() says which table it is, e.g. "plain refs=3".
  Calibration ForReferences(int references) const;

  const std::string& mode() const { return mode_; }      // the mode the table was measured with
  const std::string& source() const { return source_; }  // e.g. "data/calibration-flip.tsv"
  bool exact() const { return exact_; }  // measured with the mode it was asked for
  // The model's same-person distance (SamePersonDistance): dlib's 0.6, SFace's 1.1287.
  float same_person_distance() const { return same_person_; }
  EmbeddingModel model() const { return model_; }  // the model of the faces it is for

  // Interpolated; distances beyond the table clamp to its ends.
  double Fmr(float distance) const;   // share of different-person pairs at or below the distance
  double Fnmr(float distance) const;  // share of same-person pairs above it
  // The largest tabulated distance t with Fmr(t) <= max_fmr (0 when even 0 exceeds it).
  float ThresholdForFmr(double max_fmr) const;
  // `query`'s threshold when the user gives neither --threshold nor --max-fmr, for a corpus of
  // `corpus_faces` faces: same_person_distance() (dlib's 0.6), lowered where needed so that FMR(t) x N, the strangers
  // expected among the matches, stays at or below kDefaultExpectedStrangers. A fixed 0.6 expects
  // about 6,190 strangers among 1M faces: a default that must then be ignored. At most 0.6 (up to
  // about 160 faces it is 0.6); beyond what the table resolves (about 4e7 faces for the plain
  // table) it is the largest distance at which LFW showed no stranger.
  float DefaultThreshold(int64_t corpus_faces) const;

 private:
  Calibration(size_t table, std::string mode, bool exact, EmbeddingModel model);
  size_t table_ = 0;  // index into the compiled-in tables
  std::string mode_, source_;
  bool exact_ = true;
  EmbeddingModel model_ = EmbeddingModel::kDlib;
  float same_person_ = kDefaultThreshold;
};

// Plain-language band for a false-match rate: "very strong", "strong", "moderate", "weak",
// "very weak".
const char* ConfidenceBand(double fmr);

}  // namespace facesearch
