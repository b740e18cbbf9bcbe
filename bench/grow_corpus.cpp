// grow_corpus — grows a real corpus to benchmark scale with synthetic faces (issue #16).
//
//   grow_corpus CORPUS_DIR EXPORT.jsonl N [SEED]
//
// Adds N synthetic faces, one per synthetic image, to the existing corpus at CORPUS_DIR through the
// Store (the same SQLite rows, generation bumps and transactions as `facesearch index`), drawn
// around the real embeddings of EXPORT.jsonl (a `facesearch export` of that corpus; the model in
// bench/synthetic_faces.h). Each image gets a unique SHA-256 and the path
// "synthetic:/<seed>/<n>.jpg", so `forget --image` and `info` treat them like any image. The
// index is not touched: the next command catches it up or rebuilds it, as after any ingest.
// Used by scripts/bench/bench-scale.sh; not a product command (nothing here runs a model).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "face/models.h"
#include "store/store.h"
#include "synthetic_faces.h"

namespace fs = facesearch;

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR EXPORT.jsonl N [SEED]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path db = std::filesystem::path(argv[1]) / "corpus.sqlite";
  const long long n = std::atoll(argv[3]);
  const unsigned long long seed = argc == 5 ? std::strtoull(argv[4], nullptr, 10) : 1;
  if (n <= 0) {
    std::fprintf(stderr, "grow_corpus: N must be a positive number of faces\n");
    return 2;
  }
  fs::bench::RealFaces real;
  std::string error;
  if (!fs::bench::LoadJsonl(argv[2], &real, &error)) {
    std::fprintf(stderr, "grow_corpus: %s\n", error.c_str());
    return 2;
  }
  auto store = fs::Store::Open(db, fs::ModelIdentity());
  if (!store) {
    std::fprintf(stderr, "grow_corpus: %s\n", store.error().message.c_str());
    return 2;
  }
  fs::bench::FaceGenerator gen(real, seed);
  constexpr long long kBatch = 20000;  // faces per transaction
  std::vector<float> vectors(kBatch * fs::kEmbeddingDim);
  const auto start = std::chrono::steady_clock::now();
  for (long long done = 0; done < n;) {
    const long long m = std::min(kBatch, n - done);
    gen.Corpus(static_cast<size_t>(m), vectors.data());
    std::vector<std::pair<fs::ImageRecord, std::vector<fs::Face>>> batch;
    batch.reserve(static_cast<size_t>(m));
    for (long long i = 0; i < m; ++i) {
      const std::string name = std::to_string(seed) + "/" + std::to_string(done + i);
      fs::ImageRecord image;
      image.sha256 = fs::Sha256Hex("synthetic:" + name);
      image.path = "synthetic:/" + name + ".jpg";
      image.width = image.height = 150;
      fs::Face face;
      face.box = {25, 25, 100, 100};
      face.det_score = 1.0;
      std::copy_n(vectors.data() + i * fs::kEmbeddingDim, fs::kEmbeddingDim, face.embedding.begin());
      batch.push_back({std::move(image), {face}});
    }
    if (auto added = (*store)->AddImages(batch); !added) {
      std::fprintf(stderr, "grow_corpus: %s\n", added.error().message.c_str());
      return 2;
    }
    done += m;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\rgrow_corpus: %lld / %lld faces (%.0f s)", done, n, s);
  }
  std::fprintf(stderr, "\n");
  return 0;
}
