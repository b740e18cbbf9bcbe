// libFuzzer target: the parsers that read text an investigator did not write — manifests (JSONL
// and CSV), URL lists (each line through LooksLikeUrl and libcurl's URL parser, as ingest does),
// robots.txt bodies and X-Robots-Tag headers from web servers. Build and run: scripts/fuzz.sh.
//
// The first byte picks the parser, the rest is its input, so one corpus grows for all of them.
// Besides memory errors (ASan/UBSan), it checks the invariants callers rely on: a manifest row
// names a location and each problem has a reason; rules never throw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/manifest.h"
#include "facesearch/engine.h"
#include "fetch/fetcher.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void Manifest(std::string_view text, facesearch::ManifestFormat format) {
  std::vector<facesearch::FileOutcome> problems;
  auto rows = facesearch::ParseManifest(text, format, "fuzz", problems);
  if (rows)
    for (const auto& r : *rows) Check(!r.location.empty());
  for (const auto& p : problems) Check(p.reason == "manifest" && !p.error.empty());
}

void UrlList(std::string_view text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(start, end - start));
    if (facesearch::LooksLikeUrl(line)) {
      auto parts = facesearch::ParseUrl(line);
      if (parts && !parts->host.empty()) Check(!parts->path_and_query.empty() && parts->path_and_query[0] == '/');
    }
    start = end + 1;
  }
}

void Robots(std::string_view text) {
  // The body's last line doubles as a path to test, so paths and patterns evolve together.
  auto rules = facesearch::RobotsRules::Parse(text, "facesearch");
  std::string path = "/";
  if (auto nl = text.rfind('\n'); nl != std::string_view::npos) path.append(text.substr(nl + 1));
  (void)rules.Allowed(path);
  (void)rules.Allowed("/");
  (void)rules.Allowed("/images/a.jpg?x=1");
}

void RobotsTag(std::string_view text) {
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    values.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  (void)facesearch::RobotsTagForbids(values);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: Manifest(text, facesearch::ManifestFormat::kJsonl); break;
    case 1: Manifest(text, facesearch::ManifestFormat::kCsv); break;
    case 2: UrlList(text); break;
    case 3: Robots(text); break;
    default: RobotsTag(text); break;
  }
  return 0;
}
