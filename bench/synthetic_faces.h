// Synthetic face-embedding corpora for benchmarks, shaped like real dlib embeddings.
//
// Real data: a JSONL export (`facesearch --corpus C export`), one face per line with its
// "image" path and 128-float "embedding"; a face's identity is the parent folder of its image
// (LFW's layout: lfw/<Person_Name>/<Person_Name>_0001.jpg).
//
// Model: within-person residuals r = e - mean(person) are pooled from every real identity with at
// least two faces. A synthetic identity's centre is a real embedding plus one pooled residual
// (a per-identity offset with the measured within-person spread); each of its faces adds another
// pooled residual and a small Gaussian jitter (10% of the per-dimension within-person sigma) so
// that no two rows coincide. Identities get 1..19 faces (mean 10). Probes are new faces of
// identities in the corpus, as when a new photo of an indexed person is searched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace facesearch::bench {

struct RealFaces {
  std::vector<float> embeddings;  // n x 128
  std::vector<int> identity;      // n, dense ids
  int identities = 0;
};

// Reads a JSONL export. Returns false and sets *error when nothing usable could be read.
bool LoadJsonl(const std::string& path, RealFaces* faces, std::string* error);

struct SpreadStats {
  size_t faces = 0, identities = 0, residuals = 0;
  double within_rms = 0;   // RMS distance of a face to its identity's mean
  double between_rms = 0;  // RMS distance between two random real faces
};

class FaceGenerator {
 public:
  FaceGenerator(const RealFaces& real, uint64_t seed);
  const SpreadStats& stats() const { return stats_; }
  // Writes n corpus faces (n x 128, row-major) into out. Deterministic for a given seed and n.
  void Corpus(size_t n, float* out);
  // Writes nq probe faces of identities drawn from those used by the last Corpus() call.
  void Probes(size_t nq, float* out);

 private:
  void Face(uint64_t identity, float* out);
  uint64_t Next();
  std::vector<float> real_, residuals_, jitter_;
  size_t n_real_ = 0, n_residuals_ = 0;
  std::vector<uint32_t> centre_face_, centre_offset_;  // per synthetic identity
  SpreadStats stats_;
  uint64_t state_;
};

}  // namespace facesearch::bench
