// PerceptualHash through OpenCV contrib's img_hash (Debian libopencv-contrib-dev).
#include "image/phash.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <unordered_map>
#include <opencv2/core.hpp>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgproc.hpp>

namespace facesearch {

uint64_t PerceptualHash(const RgbImage& image) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
  cv::Mat bgr, bits;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);  // PHash converts BGR to grey
  cv::img_hash::pHash(bgr, bits);              // 1x8 bytes
  uint64_t hash = 0;
  for (int i = 0; i < bits.cols; ++i) hash = (hash << 8) | bits.at<uint8_t>(0, i);
  return hash;
}

std::vector<std::vector<size_t>> GroupNearDuplicates(const std::vector<uint64_t>& hashes) {
  // Distinct hashes, and which positions hold each.
  std::vector<uint64_t> distinct(hashes);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  std::vector<size_t> parent(distinct.size());
  std::iota(parent.begin(), parent.end(), size_t{0});
  auto root = [&](size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  constexpr int kBlocks = kNearDuplicateBits + 1;
  for (int b = 0; b < kBlocks; ++b) {
    const int lo = 64 * b / kBlocks, hi = 64 * (b + 1) / kBlocks;
    const uint64_t mask = hi - lo == 64 ? ~uint64_t{0} : ((uint64_t{1} << (hi - lo)) - 1);
    std::unordered_map<uint64_t, std::vector<size_t>> buckets;
    for (size_t i = 0; i < distinct.size(); ++i) buckets[(distinct[i] >> lo) & mask].push_back(i);
    for (const auto& [key, members] : buckets)
      for (size_t x = 0; x < members.size(); ++x)
        for (size_t y = x + 1; y < members.size(); ++y)
          if (NearDuplicates(distinct[members[x]], distinct[members[y]]))
            parent[root(members[x])] = root(members[y]);
  }
  std::map<size_t, std::vector<size_t>> by_root;  // ordered by root, then re-ordered below
  for (size_t i = 0; i < hashes.size(); ++i) {
    const size_t d = static_cast<size_t>(std::lower_bound(distinct.begin(), distinct.end(), hashes[i]) - distinct.begin());
    by_root[root(d)].push_back(i);
  }
  std::vector<std::vector<size_t>> groups;
  for (auto& [r, members] : by_root)
    if (members.size() > 1) groups.push_back(std::move(members));
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  return groups;
}

}  // namespace facesearch
