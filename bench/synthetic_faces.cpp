#include "synthetic_faces.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

namespace facesearch::bench {
namespace {

constexpr size_t kDim = 128;
constexpr size_t kJitterTable = 1 << 16;

// Finds `"key":` in line and returns the position after the colon, or npos.
size_t After(const std::string& line, const char* key) {
  const size_t at = line.find(std::string("\"") + key + "\":");
  return at == std::string::npos ? at : at + std::char_traits<char>::length(key) + 3;
}

}  // namespace

bool LoadJsonl(const std::string& path, RealFaces* faces, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  std::map<std::string, int> ids;
  std::string line;
  while (std::getline(in, line)) {
    size_t img = After(line, "image"), emb = After(line, "embedding");
    if (img == std::string::npos || emb == std::string::npos || line[img] != '"') continue;
    const size_t end = line.find('"', img + 1);
    const std::string person =
        std::filesystem::path(line.substr(img + 1, end - img - 1)).parent_path().filename();
    const char* p = line.c_str() + emb + 1;  // after '['
    std::vector<float> e;
    for (size_t d = 0; d < kDim; ++d) {
      char* next = nullptr;
      e.push_back(std::strtof(p, &next));
      if (next == p) break;
      p = next + 1;  // skip ',' or ']'
    }
    if (e.size() != kDim) continue;
    faces->embeddings.insert(faces->embeddings.end(), e.begin(), e.end());
    faces->identity.push_back(ids.emplace(person, static_cast<int>(ids.size())).first->second);
  }
  faces->identities = static_cast<int>(ids.size());
  if (faces->identity.empty()) *error = "no face with a 128-float embedding in " + path;
  return !faces->identity.empty();
}

FaceGenerator::FaceGenerator(const RealFaces& real, uint64_t seed) : state_(seed) {
  real_ = real.embeddings;
  n_real_ = real.identity.size();
  stats_.faces = n_real_;
  stats_.identities = static_cast<size_t>(real.identities);
  // Per-identity means, then residuals of identities with >= 2 faces (scaled by sqrt(m/(m-1)) so
  // that their spread estimates the population's, not the sample's).
  std::vector<std::vector<size_t>> members(stats_.identities);
  for (size_t i = 0; i < n_real_; ++i) members[static_cast<size_t>(real.identity[i])].push_back(i);
  double sum_sq = 0;
  std::vector<double> dim_sq(kDim, 0);
  for (const auto& m : members) {
    if (m.size() < 2) continue;
    std::vector<double> mean(kDim, 0);
    for (size_t i : m)
      for (size_t d = 0; d < kDim; ++d) mean[d] += real_[i * kDim + d] / m.size();
    const double unbias = std::sqrt(double(m.size()) / double(m.size() - 1));
    for (size_t i : m) {
      for (size_t d = 0; d < kDim; ++d) {
        const double r = (real_[i * kDim + d] - mean[d]) * unbias;
        residuals_.push_back(static_cast<float>(r));
        sum_sq += r * r;
        dim_sq[d] += r * r;
      }
    }
  }
  n_residuals_ = residuals_.size() / kDim;
  stats_.residuals = n_residuals_;
  if (n_residuals_ == 0) {  // no repeated identity: fall back to an isotropic 0.04 per dimension
    residuals_.assign(kDim, 0.f);
    n_residuals_ = 1;
    dim_sq.assign(kDim, 0.04 * 0.04);
    sum_sq = kDim * 0.04 * 0.04;
  }
  stats_.within_rms = std::sqrt(sum_sq / static_cast<double>(std::max<size_t>(stats_.residuals, 1)));
  double between = 0;
  for (size_t s = 0; s < 1000; ++s) {
    const size_t a = Next() % n_real_, b = Next() % n_real_;
    for (size_t d = 0; d < kDim; ++d) {
      const double x = real_[a * kDim + d] - real_[b * kDim + d];
      between += x * x / 1000;
    }
  }
  stats_.between_rms = std::sqrt(between);
  // Jitter: 10% of the mean per-dimension within-person sigma.
  double mean_var = 0;
  for (double v : dim_sq) mean_var += v / static_cast<double>(std::max<size_t>(stats_.residuals, 1)) / kDim;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.f, static_cast<float>(0.1 * std::sqrt(mean_var)));
  jitter_.resize(kJitterTable + kDim);
  for (float& j : jitter_) j = normal(rng);
}

uint64_t FaceGenerator::Next() {  // splitmix64
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void FaceGenerator::Face(uint64_t identity, float* out) {
  const float* centre = real_.data() + size_t{centre_face_[identity]} * kDim;
  const float* offset = residuals_.data() + size_t{centre_offset_[identity]} * kDim;
  const float* residual = residuals_.data() + (Next() % n_residuals_) * kDim;
  const float* jitter = jitter_.data() + Next() % kJitterTable;
  for (size_t d = 0; d < kDim; ++d) out[d] = centre[d] + offset[d] + residual[d] + jitter[d];
}

void FaceGenerator::Corpus(size_t n, float* out) {
  centre_face_.clear();
  centre_offset_.clear();
  size_t left_in_identity = 0;
  for (size_t i = 0; i < n; ++i) {
    if (left_in_identity == 0) {
      centre_face_.push_back(static_cast<uint32_t>(Next() % n_real_));
      centre_offset_.push_back(static_cast<uint32_t>(Next() % n_residuals_));
      left_in_identity = 1 + Next() % 19;
    }
    --left_in_identity;
    Face(centre_face_.size() - 1, out + i * kDim);
  }
}

void FaceGenerator::Probes(size_t nq, float* out) {
  for (size_t q = 0; q < nq; ++q) Face(Next() % centre_face_.size(), out + q * kDim);
}

}  // namespace facesearch::bench
