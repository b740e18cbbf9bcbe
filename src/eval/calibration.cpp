// Distance → false-match rate, measured on LFW by BuildLfwCalibration, one table per embedding
// mode, shipped compiled in from data/calibration*.tsv (regenerate: facesearch eval calibrate on a
// corpus of that mode, see docs/benchmarks.md "Calibration").
#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <optional>
#include <span>

#include "eval/calibration_table.h"
#include "eval/lfw_faces.h"
#include "facesearch/eval.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

constexpr float kStep = 0.01f;
// 0.00 .. 2.00: the distance between unit vectors (SFace's) reaches 2; dlib's stay below ~1.2.
constexpr int kRows = 201;
constexpr int kBins = 20000;  // histogram resolution 0.0001

double Interpolate(std::span<const generated::CalibrationPoint> t, float distance,
                   double generated::CalibrationPoint::*field) {
  if (distance <= t.front().distance) return t.front().*field;
  if (distance >= t.back().distance) return t.back().*field;
  auto hi = std::upper_bound(t.begin(), t.end(), distance,
                             [](float d, const generated::CalibrationPoint& p) { return d < p.distance; });
  const generated::CalibrationPoint& h = *hi;
  const generated::CalibrationPoint& l = *(hi - 1);
  double w = (distance - l.distance) / (h.distance - l.distance);
  return l.*field + w * (h.*field - l.*field);
}

}  // namespace

Calibration::Calibration(size_t table, std::string mode, bool exact, EmbeddingModel model)
    : table_(table),
      mode_(std::move(mode)),
      source_(generated::kCalibrations[table].file),
      exact_(exact),
      model_(model),
      same_person_(SamePersonDistance(model)) {}

namespace {

std::optional<size_t> TableNamed(const std::string& name) {
  for (size_t i = 0; i < std::size(generated::kCalibrations); ++i)
    if (name == generated::kCalibrations[i].mode) return i;
  return std::nullopt;
}

}  // namespace

Calibration Calibration::For(const EmbeddingMode& mode) {
  const std::string name = EmbeddingModeName(mode);
  if (auto table = TableNamed(name)) return Calibration(*table, name, true, mode.model);
  return Calibration(0, generated::kCalibrations[0].mode, false, mode.model);  // table 0 is plain's
}

Calibration Calibration::ForReferences(int references) const {
  if (references <= 1) return *this;
  const int measured = std::min(references, kSubjectTableReferences);
  const std::string refs = " refs=" + std::to_string(measured);
  const std::string own = mode_ + refs;
  if (auto table = TableNamed(own)) return Calibration(*table, own, exact_ && measured == references, model_);
  // Reference tables were measured for dlib's plain mode only: another model keeps its own
  // one-face table (its distances are on its own scale), approximate.
  if (model_ != EmbeddingModel::kDlib) return Calibration(table_, mode_, false, model_);
  const std::string plain = generated::kCalibrations[0].mode + refs;
  return Calibration(TableNamed(plain).value(), plain, false, model_);  // every count up to the largest is compiled in
}

double Calibration::Fmr(float distance) const {
  return Interpolate(generated::kCalibrations[table_].points, distance, &generated::CalibrationPoint::fmr);
}

double Calibration::Fnmr(float distance) const {
  return Interpolate(generated::kCalibrations[table_].points, distance, &generated::CalibrationPoint::fnmr);
}

float Calibration::ThresholdForFmr(double max_fmr) const {
  float best = 0;
  for (const auto& p : generated::kCalibrations[table_].points)
    if (p.fmr <= max_fmr) best = p.distance;
  return best;
}

float Calibration::DefaultThreshold(int64_t corpus_faces) const {
  const double n = static_cast<double>(std::max<int64_t>(corpus_faces, 1));
  return std::min(same_person_, ThresholdForFmr(kDefaultExpectedStrangers / n));
}

const char* ConfidenceBand(double fmr) {
  if (fmr <= 1e-5) return "very strong";
  if (fmr <= 1e-4) return "strong";
  if (fmr <= 1e-3) return "moderate";
  if (fmr <= 1e-2) return "weak";
  return "very weak";
}

Result<CalibrationTable> BuildLfwCalibration(const CorpusConfig& config, const fs::path& images_dir) {
  FS_ASSIGN(eval::LfwFaces lfw, eval::LfwFaces::Load(config, images_dir));
  // One face per image, grouped by person.
  std::vector<const Embedding*> faces;
  std::vector<int> owner;
  for (int p = 0; p < static_cast<int>(lfw.people().size()); ++p)
    for (const auto& img : lfw.people()[p].images)
      if (const Embedding* e = lfw.Find(img)) {
        faces.push_back(e);
        owner.push_back(p);
      }
  std::vector<int64_t> genuine(kBins + 1, 0), impostor(kBins + 1, 0);
  for (size_t i = 0; i < faces.size(); ++i)
    for (size_t j = i + 1; j < faces.size(); ++j) {
      int bin = std::min(kBins, static_cast<int>(EmbeddingDistance(*faces[i], *faces[j]) / 1e-4f));
      ++(owner[i] == owner[j] ? genuine : impostor)[bin];
    }
  CalibrationTable table;
  for (int64_t c : genuine) table.genuine_pairs += c;
  for (int64_t c : impostor) table.impostor_pairs += c;
  int64_t g_at_or_below = 0, i_at_or_below = 0;
  int bin = 0;
  for (int row = 0; row < kRows; ++row) {
    float d = row * kStep;
    int last_bin = std::min(kBins, static_cast<int>(std::lround(d / 1e-4)));
    for (; bin <= last_bin; ++bin) {
      g_at_or_below += genuine[bin];
      i_at_or_below += impostor[bin];
    }
    table.rows.push_back({d, static_cast<double>(i_at_or_below) / std::max<int64_t>(1, table.impostor_pairs),
                          1.0 - static_cast<double>(g_at_or_below) / std::max<int64_t>(1, table.genuine_pairs)});
  }
  return table;
}

}  // namespace facesearch
