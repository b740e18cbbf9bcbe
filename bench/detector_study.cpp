// Detector-miss study (issue #7): on the images where the default detector pass (HOG, upsample 1)
// finds no face, what does each retry strategy recover, is the recovered face the labelled person,
// and what does it cost? Built on demand: cmake --build build --target detector_study.
//
//   build/detector_study MODELS_DIR CORPUS.sqlite LIST_FILE
//
// LIST_FILE: one LFW image path per line (Name/Name_NNNN.jpg), e.g. the corpus's 'noface' images.
// CORPUS.sqlite: an LFW corpus indexed with the default pipeline; the recovered face (the one
// nearest the image centre, as `eval lfw` picks it) counts as the labelled person when it lies
// within 0.6 of the centre face of one of that person's other images ("same person"); people with
// no other image are "unverifiable". "Centred": the box's centre is within 25 px of the image's
// (LFW crops are centred on the labelled face), a check that needs no other image.
#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "face/analyzer.h"
#include "image/decode.h"
#include "common/fs.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

struct Strategy {
  const char* name;
  std::vector<DetectPass> retry;
};

double CentreDistance(const Box& b, int w, int h) {
  return std::hypot(b.x + b.w / 2.0 - w / 2.0, b.y + b.h / 2.0 - h / 2.0);
}

// person → centre-face embeddings of that person's images (path, embedding).
std::map<std::string, std::vector<std::pair<std::string, Embedding>>> LoadReference(const char* db) {
  std::map<std::string, std::vector<std::pair<std::string, Embedding>>> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return out;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT i.path, f.x, f.y, f.w, f.h, f.embedding FROM faces f JOIN images i ON i.id = f.image_id",
                     -1, &st, nullptr);
  std::map<std::string, std::pair<double, Embedding>> best;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::string path = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    Box b{sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3),
          sqlite3_column_int64(st, 4)};
    double d = CentreDistance(b, 250, 250);
    Embedding e;
    std::memcpy(e.data(), sqlite3_column_blob(st, 5), sizeof e);
    auto it = best.find(path);
    if (it == best.end() || d < it->second.first) best[path] = {d, e};
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  for (auto& [path, de] : best) out[fs::path(path).parent_path().filename().string()].emplace_back(path, de.second);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODELS_DIR CORPUS.sqlite LIST_FILE\n", argv[0]);
    return 2;
  }
  auto reference = LoadReference(argv[2]);
  std::vector<std::string> files;
  std::ifstream list(argv[3]);
  for (std::string line; std::getline(list, line);)
    if (!line.empty()) files.push_back(line);
  std::vector<RgbImage> images;
  for (const auto& f : files) {
    auto bytes = ReadFile(f, 1 << 26);
    auto img = bytes ? DecodeImage(*bytes, DecodeLimits{}) : Result<RgbImage>(std::unexpected(bytes.error()));
    if (!img) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 2;
    }
    images.push_back(std::move(*img));
  }
  const DetectorKind H = DetectorKind::kHog, C = DetectorKind::kCnn;
  const std::vector<Strategy> strategies = {
      {"none (default pass only)", {}},
      {"HOG upsample 2", {{H, 2, 0.0}}},
      {"HOG upsample 1, threshold -0.5", {{H, 1, -0.5}}},
      {"HOG upsample 1, threshold -1.0", {{H, 1, -1.0}}},
      {"HOG upsample 2, threshold -0.5", {{H, 2, -0.5}}},
      {"CNN upsample 0", {{C, 0, 0.0}}},
      {"CNN upsample 1", {{C, 1, 0.0}}},
      {"HOG threshold -0.5, then CNN upsample 0", {{H, 1, -0.5}, {C, 0, 0.0}}},
  };
  std::printf("| strategy (after HOG upsample 1 finds nothing) | images with a face | centred face | same person (within 0.6) | farther than 0.6 | unverifiable | ms per image |\n|---|---|---|---|---|---|---|\n");
  for (const Strategy& s : strategies) {
    AnalyzerOptions options;
    options.retry = s.retry;
    auto analyzer = LoadDlibAnalyzer(argv[1], options);
    if (!analyzer) {
      std::fprintf(stderr, "%s\n", analyzer.error().message.c_str());
      return 2;
    }
    int found = 0, centred = 0, correct = 0, wrong = 0, unverifiable = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < images.size(); ++i) {
      auto faces = (*analyzer)->Analyze(images[i]);
      if (!faces || faces->empty()) continue;
      ++found;
      const Face* centre = &faces->front();
      for (const Face& f : *faces)
        if (CentreDistance(f.box, images[i].width, images[i].height) <
            CentreDistance(centre->box, images[i].width, images[i].height))
          centre = &f;
      const double offset = CentreDistance(centre->box, images[i].width, images[i].height);
      if (offset <= 25) ++centred;
      std::string person = fs::path(files[i]).parent_path().filename().string();
      float nearest = 99;
      for (const auto& [path, e] : reference[person])
        if (path != files[i]) nearest = std::min(nearest, EmbeddingDistance(e, centre->embedding));
      const char* verdict = nearest == 99 ? "unverifiable" : nearest <= 0.6f ? "person" : "other";
      if (nearest == 99) ++unverifiable; else if (nearest <= 0.6f) ++correct; else ++wrong;
      std::fprintf(stderr, "%s\t%s\tscore %.3f\tbox %ldx%ld\tcentre offset %.0f\tnearest same-name %.3f\t%s\n", s.name,
                   files[i].c_str(), centre->det_score, static_cast<long>(centre->box.w),
                   static_cast<long>(centre->box.h), offset, nearest, verdict);
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / images.size();
    std::printf("| %s | %d of %zu | %d | %d | %d | %d | %.0f |\n", s.name, found, images.size(), centred, correct, wrong,
                unverifiable, ms);
    std::fflush(stdout);
  }
  return 0;
}
