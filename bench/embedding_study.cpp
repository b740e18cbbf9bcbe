// Embedding study (issue #7, docs/benchmarks.md "What closes the gap"): re-embed the LFW faces a
// corpus already found, under other alignments and embedding modes, without detecting again.
// Built on demand: cmake --build build --target embedding_study.
//
//   build/embedding_study [--only LIST] MODELS_DIR CORPUS.sqlite PAIRS_FILE IMAGES_DIR OUT_DIR VARIANT...
//
// For every image named in PAIRS_FILE (LFW View 2 pairs.txt) — or only those listed one per line
// in LIST (Name/Name_NNNN.jpg) — takes the corpus's face nearest the image centre (the one
// `eval lfw` uses), and for each VARIANT computes its landmarks, chip and embedding at that box.
// VARIANT is MODE[:padP]: MODE an --embedding mode (plain, flip, jitter:N, optionally +lm68 or
// +lm5+lm68), P the chip padding (default 0.25, dlib's). Writes OUT_DIR/VARIANT.sql, a script of
// "UPDATE faces SET embedding = ..." statements: applied to a copy of the corpus, `eval lfw`
// measures that variant on exactly the same detections. Prints, per variant, the CPU time of the
// landmarks + chip + embedding per face (one thread) and the largest distance to the corpus's own
// embedding (0 for the corpus's own settings).
#include <sqlite3.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "face/analyzer.h"
#include "facesearch/engine.h"
#include "image/decode.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

struct CentreFace {
  int64_t id = 0;
  Box box;
  Embedding embedding{};
  double offset = 1e18;
};

std::map<std::string, CentreFace> LoadCentreFaces(const char* db, const fs::path& images_dir) {
  std::map<std::string, CentreFace> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return out;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT f.id, i.path, f.x, f.y, f.w, f.h, f.embedding FROM faces f JOIN images i ON i.id = f.image_id",
                     -1, &st, nullptr);
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(images_dir, ec);
  while (sqlite3_step(st) == SQLITE_ROW) {
    fs::path path = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    std::string key = fs::weakly_canonical(path, ec).lexically_relative(root).string();
    CentreFace f;
    f.id = sqlite3_column_int64(st, 0);
    f.box = Box{sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4),
                sqlite3_column_int64(st, 5)};
    std::memcpy(f.embedding.data(), sqlite3_column_blob(st, 6), sizeof f.embedding);
    // As eval lfw (src/eval/lfw_faces.cpp): squared offset of the box centre from (125, 125).
    double cx = f.box.x + f.box.w / 2.0 - 125, cy = f.box.y + f.box.h / 2.0 - 125;
    f.offset = cx * cx + cy * cy;
    auto it = out.find(key);
    if (it == out.end() || f.offset < it->second.offset) out[key] = f;
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

std::set<std::string> PairImages(const char* pairs_file) {
  std::set<std::string> out;
  std::ifstream in(pairs_file);
  std::string line;
  std::getline(in, line);  // "10 300"
  auto name = [](const std::string& person, int n) {
    char file[32];
    std::snprintf(file, sizeof file, "_%04d.jpg", n);
    return person + "/" + person + file;
  };
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<std::string> f;
    for (std::string w; ss >> w;) f.push_back(w);
    if (f.size() == 3) {
      out.insert(name(f[0], std::stoi(f[1])));
      out.insert(name(f[0], std::stoi(f[2])));
    } else if (f.size() == 4) {
      out.insert(name(f[0], std::stoi(f[1])));
      out.insert(name(f[2], std::stoi(f[3])));
    }
  }
  return out;
}

struct Variant {
  std::string name;
  std::unique_ptr<FaceAnalyzer> analyzer;
  std::FILE* sql = nullptr;
  double cpu_s = 0;
  int faces = 0;
  float max_diff = 0;
};

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  int a = 1;
  if (argc > 2 && std::strcmp(argv[1], "--only") == 0) {
    only = argv[2];
    a = 3;
  }
  if (argc - a < 6) {
    std::fprintf(stderr, "usage: %s [--only LIST] MODELS_DIR CORPUS.sqlite PAIRS_FILE IMAGES_DIR OUT_DIR VARIANT...\n",
                 argv[0]);
    return 2;
  }
  const fs::path models = argv[a], images_dir = argv[a + 3], out_dir = argv[a + 4];
  auto centre = LoadCentreFaces(argv[a + 1], images_dir);
  std::set<std::string> wanted = PairImages(argv[a + 2]);
  if (!only.empty()) {
    std::set<std::string> listed;
    std::ifstream in(only);
    for (std::string line; std::getline(in, line);)
      if (wanted.count(line)) listed.insert(line);
    wanted = listed;
  }
  std::fprintf(stderr, "%zu images wanted, %zu faces in the corpus\n", wanted.size(), centre.size());

  std::vector<Variant> variants;
  fs::create_directories(out_dir);
  for (int i = a + 5; i < argc; ++i) {
    std::string spec = argv[i];
    AnalyzerOptions options;
    std::string rest = spec;
    if (auto p = rest.find(":pad"); p != std::string::npos) {
      options.chip_padding = std::stod(rest.substr(p + 4));
      rest = rest.substr(0, p);
    }
    auto mode = ParseEmbeddingMode(rest);
    if (!mode) {
      std::fprintf(stderr, "%s\n", mode.error().message.c_str());
      return 2;
    }
    options.embedding = *mode;
    auto analyzer = LoadDlibAnalyzer(models, options);
    if (!analyzer) {
      std::fprintf(stderr, "%s\n", analyzer.error().message.c_str());
      return 2;
    }
    Variant v{spec, std::move(*analyzer)};
    v.sql = std::fopen((out_dir / (spec + ".sql")).c_str(), "w");
    std::fprintf(v.sql, "BEGIN;\n");
    variants.push_back(std::move(v));
  }

  int done = 0, missing = 0;
  for (const std::string& rel : wanted) {
    auto it = centre.find(rel);
    if (it == centre.end()) {
      ++missing;
      continue;
    }
    auto bytes = ReadFile(images_dir / rel, 1 << 26);
    auto img = bytes ? DecodeImage(*bytes, DecodeLimits{}) : Result<RgbImage>(std::unexpected(bytes.error()));
    if (!img) {
      std::fprintf(stderr, "cannot read %s\n", rel.c_str());
      return 2;
    }
    for (Variant& v : variants) {
      double t0 = CpuSeconds();
      auto faces = v.analyzer->AnalyzeBoxes(*img, {it->second.box});
      v.cpu_s += CpuSeconds() - t0;
      if (!faces || faces->size() != 1) {
        std::fprintf(stderr, "%s: %s\n", rel.c_str(), faces ? "no face" : faces.error().message.c_str());
        return 2;
      }
      ++v.faces;
      const Embedding& e = faces->front().embedding;
      v.max_diff = std::max(v.max_diff, EmbeddingDistance(e, it->second.embedding));
      std::fprintf(v.sql, "UPDATE faces SET embedding = X'");
      const auto* b = reinterpret_cast<const unsigned char*>(e.data());
      for (size_t k = 0; k < sizeof e; ++k) std::fprintf(v.sql, "%02x", b[k]);
      std::fprintf(v.sql, "' WHERE id = %lld;\n", static_cast<long long>(it->second.id));
    }
    if (++done % 500 == 0) {
      std::fprintf(stderr, "%d images\n", done);
      for (Variant& v : variants) std::fflush(v.sql);
    }
  }
  std::printf("| variant | faces | CPU ms per face | max distance to the corpus embedding |\n|---|---|---|---|\n");
  for (Variant& v : variants) {
    std::fprintf(v.sql, "COMMIT;\n");
    std::fclose(v.sql);
    std::printf("| %s | %d | %.1f | %.4f |\n", v.name.c_str(), v.faces, 1000 * v.cpu_s / std::max(1, v.faces),
                v.max_diff);
  }
  std::fprintf(stderr, "%d images done, %d without a face in the corpus\n", done, missing);
  return 0;
}
