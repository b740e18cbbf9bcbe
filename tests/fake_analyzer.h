// A deterministic face analyzer for tests that exercise the pipelines, not the models: no model
// file, no dlib, microseconds per image. Inject it through CorpusConfig::analyzer_factory.
//
// Its "faces" are drawn: a face is a filled rectangle whose red channel is 255 (nothing else in a
// test image may have red 255). The rectangle's green value is the person (0-127): the embedding
// is the unit vector of that axis, so two faces of one person are at distance 0 and two people at
// sqrt(2), far beyond any threshold. Its blue value adds blue/2550 on axis 127 - person: drawings
// of one person that differ only in blue are distinct content (other SHA-256) yet within 0.1 of
// each other.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "face/analyzer.h"
#include "facesearch/engine.h"

namespace facesearch::test {

class FakeAnalyzer : public FaceAnalyzer {
 public:
  Result<std::vector<Face>> Analyze(const RgbImage& image) override;
  Result<std::vector<Face>> AnalyzeBoxes(const RgbImage& image, const std::vector<Box>& boxes) override;
  Result<RgbImage> Chip(const RgbImage& image, const Face& face) override;
  std::unique_ptr<FaceAnalyzer> Clone() const override { return std::make_unique<FakeAnalyzer>(); }
};

// `config` with FakeAnalyzer injected for every pipeline (and no models directory needed).
CorpusConfig WithFakeAnalyzer(CorpusConfig config);

// One drawn face: a w x h rectangle at (x, y) of `person` (0-127), `shade` (0-254) its blue.
struct DrawnFace {
  int x = 0, y = 0, w = 120, h = 120;
  int person = 0;
  int shade = 0;
};

// Writes a PNG (lossless: the colours survive) of width x height, grey, with `faces` drawn on it.
void WriteFaceImage(const std::filesystem::path& path, const std::vector<DrawnFace>& faces, int width = 400,
                    int height = 300);

}  // namespace facesearch::test
