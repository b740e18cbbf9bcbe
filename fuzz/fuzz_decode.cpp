// libFuzzer target: untrusted bytes → header checks → OpenCV decode → dlib HOG detection,
// landmarks and embedding (the path every ingested file takes). Build and run: scripts/fuzz.sh.
//
// Models come from $FACESEARCH_MODELS (or the cache); without them only decoding is fuzzed.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "face/analyzer.h"
#include "face/models.h"
#include "image/decode.h"

namespace {
std::unique_ptr<facesearch::FaceAnalyzer> g_analyzer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto analyzer = facesearch::LoadDlibAnalyzer(facesearch::ResolveModelsDir(std::nullopt),
                                               facesearch::AnalyzerOptions{facesearch::DetectorKind::kHog, 0});
  if (analyzer) g_analyzer = std::move(*analyzer);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  facesearch::DecodeLimits limits;
  limits.max_pixels = 2'000'000;  // keep each run fast; the cap logic itself is exercised too
  auto image = facesearch::DecodeImage(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (image && g_analyzer) (void)g_analyzer->Analyze(*image);
  return 0;
}
