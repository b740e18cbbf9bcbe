#include "face/chinese_whispers.h"

#include <dlib/clustering/chinese_whispers.h>

#include <exception>
#include <string>

namespace facesearch {

Result<std::vector<uint32_t>> ChineseWhispers(uint32_t n, const std::vector<std::pair<uint32_t, uint32_t>>& edges,
                                              int iterations) {
  if (n == 0) return std::vector<uint32_t>{};
  std::vector<dlib::sample_pair> pairs;
  pairs.reserve(edges.size() + n);
  for (uint32_t i = 0; i < n; ++i) pairs.emplace_back(i, i);
  for (const auto& [a, b] : edges) {
    if (a >= n || b >= n) return Fail(ErrorCode::kInvalidArgument, "cluster edge names a face beyond the graph");
    pairs.emplace_back(a, b);
  }
  std::vector<unsigned long> labels;
  try {
    dlib::chinese_whispers(pairs, labels, static_cast<unsigned long>(iterations));
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInternal, std::string("dlib chinese_whispers failed: ") + e.what());
  }
  if (labels.size() != n) return Fail(ErrorCode::kInternal, "chinese_whispers labelled the wrong number of faces");
  return std::vector<uint32_t>(labels.begin(), labels.end());
}

}  // namespace facesearch
