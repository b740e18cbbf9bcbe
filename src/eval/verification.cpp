// LFW View 2 verification: 10 folds of 300 same + 300 different pairs; the threshold is chosen on
// nine folds and accuracy measured on the tenth. Pairs with a missing face count as errors in the
// headline figure (they are reported separately too).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "eval/lfw_faces.h"
#include "facesearch/eval.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

struct Pair {
  int fold = 0;
  bool same = false;
  std::optional<float> distance;  // absent when a face is missing
};

Result<std::vector<Pair>> ReadPairs(const fs::path& file, const eval::LfwFaces& lfw, int* images_missed) {
  std::ifstream in(file);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open pairs file " + file.string());
  int folds = 0, per_side = 0;
  if (!(in >> folds >> per_side) || folds <= 0 || per_side <= 0)
    return Fail(ErrorCode::kInvalidArgument, file.string() + ": first line must be '<folds> <pairs>'");
  std::vector<Pair> pairs;
  std::set<std::string> missed;
  auto lookup = [&](const std::string& name, int n) {
    fs::path p = lfw.ImagePath(name, n);
    const Embedding* e = lfw.Find(p);
    if (!e) missed.insert(p.string());
    return e;
  };
  for (int fold = 0; fold < folds; ++fold) {
    for (int k = 0; k < 2 * per_side; ++k) {
      bool same = k < per_side;
      std::string a, b;
      int i = 0, j = 0;
      bool ok = same ? static_cast<bool>(in >> a >> i >> j) : static_cast<bool>(in >> a >> i >> b >> j);
      if (!ok) return Fail(ErrorCode::kInvalidArgument, file.string() + ": truncated at fold " + std::to_string(fold + 1));
      const Embedding* ea = lookup(a, i);
      const Embedding* eb = lookup(same ? a : b, j);
      Pair p{fold, same, std::nullopt};
      if (ea && eb) p.distance = EmbeddingDistance(*ea, *eb);
      pairs.push_back(p);
    }
  }
  *images_missed = static_cast<int>(missed.size());
  return pairs;
}

bool Correct(const Pair& p, float t) { return p.distance && ((*p.distance <= t) == p.same); }

// The threshold that maximises accuracy over `pairs` (missing pairs are errors at any threshold).
float BestThreshold(const std::vector<const Pair*>& pairs) {
  std::vector<const Pair*> found;
  for (const Pair* p : pairs)
    if (p->distance) found.push_back(p);
  std::sort(found.begin(), found.end(), [](const Pair* a, const Pair* b) { return *a->distance < *b->distance; });
  // Threshold below everything: every found different pair is right.
  int correct = static_cast<int>(std::count_if(found.begin(), found.end(), [](const Pair* p) { return !p->same; }));
  int best = correct;
  float best_t = found.empty() ? 0.6f : *found.front()->distance - 1e-4f;
  for (size_t i = 0; i < found.size(); ++i) {
    correct += found[i]->same ? 1 : -1;  // pair i moves to "accepted"
    bool boundary = i + 1 == found.size() || *found[i + 1]->distance > *found[i]->distance;
    if (boundary && correct > best) {
      best = correct;
      best_t = i + 1 < found.size() ? (*found[i]->distance + *found[i + 1]->distance) / 2 : *found[i]->distance;
    }
  }
  return best_t;
}

double Tar(const std::vector<float>& genuine, float t) {
  return genuine.empty() ? 0 : static_cast<double>(std::upper_bound(genuine.begin(), genuine.end(), t) - genuine.begin()) / genuine.size();
}

// TAR at the largest threshold whose FAR does not exceed `far`.
double TarAtFar(const std::vector<float>& genuine, const std::vector<float>& impostor, double far) {
  if (impostor.empty()) return 0;
  size_t allowed = static_cast<size_t>(std::floor(far * impostor.size()));
  if (allowed >= impostor.size()) return 1.0;
  float limit = impostor[allowed];  // accepting this impostor would exceed the FAR
  return static_cast<double>(std::lower_bound(genuine.begin(), genuine.end(), limit) - genuine.begin()) / genuine.size();
}

}  // namespace

Result<VerificationReport> EvalLfwVerification(const CorpusConfig& config, const fs::path& images_dir,
                                               const fs::path& pairs_file) {
  FS_ASSIGN(eval::LfwFaces lfw, eval::LfwFaces::Load(config, images_dir));
  VerificationReport r;
  FS_ASSIGN(std::vector<Pair> pairs, ReadPairs(pairs_file, lfw, &r.images_missed));
  r.pairs = static_cast<int>(pairs.size());
  int folds = pairs.empty() ? 0 : pairs.back().fold + 1;
  std::vector<double> found_acc;
  for (int fold = 0; fold < folds; ++fold) {
    std::vector<const Pair*> train, test;
    for (const Pair& p : pairs) (p.fold == fold ? test : train).push_back(&p);
    float t = BestThreshold(train);
    int right = 0, found = 0, found_right = 0;
    for (const Pair* p : test) {
      right += Correct(*p, t);
      if (p->distance) {
        ++found;
        found_right += Correct(*p, t);
      }
    }
    r.fold_threshold.push_back(t);
    r.fold_accuracy.push_back(static_cast<double>(right) / test.size());
    found_acc.push_back(found ? static_cast<double>(found_right) / found : 0);
  }
  auto mean = [](const std::vector<double>& v) { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); };
  r.mean_accuracy = mean(r.fold_accuracy);
  r.mean_accuracy_found = mean(found_acc);
  double var = 0;
  for (double a : r.fold_accuracy) var += (a - r.mean_accuracy) * (a - r.mean_accuracy);
  r.std_accuracy = r.fold_accuracy.size() > 1 ? std::sqrt(var / (r.fold_accuracy.size() - 1)) : 0;

  std::vector<float> genuine, impostor;
  FS_ASSIGN(EmbeddingMode mode, ResolvedEmbeddingMode(config, PipelineOptions{}));
  r.same_person_distance = SamePersonDistance(mode.model);
  int right06 = 0, right_same = 0;
  for (const Pair& p : pairs) {
    right06 += Correct(p, 0.6f);
    right_same += Correct(p, r.same_person_distance);
    if (!p.distance) {
      ++r.pairs_missed;
      continue;
    }
    (p.same ? genuine : impostor).push_back(*p.distance);
  }
  r.accuracy_at_06 = pairs.empty() ? 0 : static_cast<double>(right06) / pairs.size();
  r.accuracy_at_same_person = pairs.empty() ? 0 : static_cast<double>(right_same) / pairs.size();
  std::sort(genuine.begin(), genuine.end());
  std::sort(impostor.begin(), impostor.end());
  r.tar_at_far_1e3 = TarAtFar(genuine, impostor, 1e-3);
  r.tar_at_far_1e2 = TarAtFar(genuine, impostor, 1e-2);
  for (int i = 0; i <= 150; ++i) {
    float t = i * 0.01f;
    r.roc.push_back({t, Tar(impostor, t), Tar(genuine, t)});
  }
  return r;
}

}  // namespace facesearch
