// Open-set 1:N identification on LFW, measured the way NIST FRVT measures face search (NISTIR
// 8271): rank-k identification rate of mated searches, and FNIR at a threshold that yields a
// given FPIR on non-mated searches. FNIR here is at rank 1: the mate must be the top candidate
// and within the threshold.
#include <algorithm>
#include <cmath>

#include "eval/lfw_faces.h"
#include "facesearch/eval.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

struct GalleryEntry {
  int person = 0;
  const Embedding* embedding = nullptr;
};

struct Search {
  int mate_rank = 0;            // 1-based rank of the mate; 0 when absent from the gallery
  float mate_distance = 0;
  float best_distance = 0;      // nearest gallery entry of any person
};

Search Run(const Embedding& probe, int person, const std::vector<GalleryEntry>& gallery) {
  Search s;
  s.best_distance = INFINITY;
  float mate = INFINITY;
  std::vector<float> d(gallery.size());
  for (size_t g = 0; g < gallery.size(); ++g) {
    d[g] = EmbeddingDistance(probe, *gallery[g].embedding);
    s.best_distance = std::min(s.best_distance, d[g]);
    if (gallery[g].person == person) mate = d[g];
  }
  if (std::isfinite(mate)) {
    s.mate_distance = mate;
    s.mate_rank = 1 + static_cast<int>(std::count_if(d.begin(), d.end(), [&](float x) { return x < mate; }));
  }
  return s;
}

}  // namespace

Result<IdentificationReport> EvalLfwIdentification(const CorpusConfig& config, const fs::path& images_dir) {
  FS_ASSIGN(eval::LfwFaces lfw, eval::LfwFaces::Load(config, images_dir));
  IdentificationReport r;
  std::vector<GalleryEntry> gallery;
  struct Probe { int person; const Embedding* embedding; bool mated; };
  std::vector<Probe> probes;
  int multi = 0;
  const auto& people = lfw.people();
  for (int p = 0; p < static_cast<int>(people.size()); ++p) {
    const auto& images = people[p].images;
    if (images.size() == 1) {
      if (const Embedding* e = lfw.Find(images[0])) {
        gallery.push_back({p, e});
        ++r.distractors;
      }
      continue;
    }
    bool enrolled = (multi++ % 2) == 0;
    bool in_gallery = false;
    for (const auto& img : images) {
      const Embedding* e = lfw.Find(img);
      if (enrolled && !in_gallery) {
        if (!e) continue;  // the gallery takes the first image with a face
        gallery.push_back({p, e});
        in_gallery = true;
        continue;
      }
      probes.push_back({p, e, enrolled});
    }
  }
  r.gallery = static_cast<int>(gallery.size());

  std::vector<float> non_mated_best;
  std::vector<Search> mated;
  for (const Probe& probe : probes) {
    (probe.mated ? r.mated_probes : r.non_mated_probes)++;
    if (!probe.embedding) {
      ++r.probes_missed;
      if (probe.mated) mated.push_back(Search{});  // a miss: never identified
      continue;
    }
    Search s = Run(*probe.embedding, probe.person, gallery);
    if (probe.mated) mated.push_back(s);
    else non_mated_best.push_back(s.best_distance);
  }
  auto share = [&](auto pred) {
    return mated.empty() ? 0.0 : static_cast<double>(std::count_if(mated.begin(), mated.end(), pred)) / mated.size();
  };
  r.rank1 = share([](const Search& s) { return s.mate_rank == 1; });
  r.rank10 = share([](const Search& s) { return s.mate_rank >= 1 && s.mate_rank <= 10; });

  std::sort(non_mated_best.begin(), non_mated_best.end());
  auto threshold_for = [&](double fpir) {
    size_t allowed = static_cast<size_t>(std::floor(fpir * non_mated_best.size()));
    if (non_mated_best.empty() || allowed >= non_mated_best.size()) return 2.0f;
    return std::nextafter(non_mated_best[allowed], 0.0f);  // the next non-mated search must not hit
  };
  r.threshold_fpir_1e2 = threshold_for(1e-2);
  r.threshold_fpir_1e3 = threshold_for(1e-3);
  auto fnir = [&](float t) {
    return 1.0 - share([&](const Search& s) { return s.mate_rank == 1 && s.mate_distance <= t; });
  };
  r.fnir_at_fpir_1e2 = fnir(r.threshold_fpir_1e2);
  r.fnir_at_fpir_1e3 = fnir(r.threshold_fpir_1e3);
  return r;
}

}  // namespace facesearch
