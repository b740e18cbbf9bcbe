// Near-duplicate study (issue #20, docs/benchmarks.md "Near-duplicate images"): which of OpenCV
// img_hash's hashes tells copies of one picture from different photos, and at what threshold?
// Built on demand: cmake --build build --target near_dup_study; run by
// scripts/study/near_duplicates.sh.
//
//   build/near_dup_study LFW_IMAGES_DIR [MAX_PEOPLE]
//
// Every LFW image (decoded by facesearch's own DecodeImage, as at ingest) is copied five ways,
// each copy written as a file's bytes and decoded again: "resize50" (half size, INTER_AREA, JPEG
// quality 90), "jpeg40" (re-encoded at quality 40), "crop5" (5% of the width and height cut
// away, half on each side, JPEG 90), "crop5corner" (the same 5% cut from the top-left corner),
// "repost" (resize50 + crop5 + quality 40 at once) and "mirror" (flipped left-right, JPEG 90). For each hash and threshold it prints the share of each kind of copy within the
// threshold of its original (recall), and the pairs of DIFFERENT photos within it: every pair of
// photos of one person (LFW folders; the hard case: same face, same framing) and 1,000,000 random
// pairs of photos of different people. Then, for facesearch's PerceptualHash at
// kNearDuplicateBits, the grouping as the product does it (every pair of the originals and their
// resize50, jpeg40 and crop5 copies compared), with its pairwise precision and recall.
#include <opencv2/core.hpp>
#include <opencv2/img_hash.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/fs.h"
#include "image/decode.h"
#include "image/phash.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

const char* const kCopyKinds[] = {"resize50", "jpeg40", "crop5", "crop5corner", "repost", "mirror"};
constexpr int kKinds = 6;

cv::Mat ToBgr(const RgbImage& img) {
  cv::Mat rgb(img.height, img.width, CV_8UC3, const_cast<uint8_t*>(img.pixels.data())), bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

// Encodes `bgr` as a JPEG file's bytes and decodes them as ingest does.
RgbImage AsFile(const cv::Mat& bgr, int quality) {
  std::vector<uchar> buf;
  cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, quality});
  auto img = DecodeImage(std::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()), {});
  if (!img) { std::fprintf(stderr, "re-decode failed: %s\n", img.error().message.c_str()); std::exit(2); }
  return *img;
}

cv::Mat Resize50(const cv::Mat& m) {
  cv::Mat out;
  cv::resize(m, out, cv::Size(m.cols / 2, m.rows / 2), 0, 0, cv::INTER_AREA);
  return out;
}
// 5% of the width and height cut away: half on each side, or all from the top-left corner.
cv::Mat Crop5(const cv::Mat& m) {
  const int dx = m.cols / 40, dy = m.rows / 40;
  return m(cv::Rect(dx, dy, m.cols - 2 * dx, m.rows - 2 * dy)).clone();
}
cv::Mat Crop5Corner(const cv::Mat& m) {
  const int dx = m.cols / 20, dy = m.rows / 20;
  return m(cv::Rect(dx, dy, m.cols - dx, m.rows - dy)).clone();
}

std::vector<RgbImage> Copies(const RgbImage& original) {
  const cv::Mat bgr = ToBgr(original);
  cv::Mat mirror;
  cv::flip(bgr, mirror, 1);
  return {AsFile(Resize50(bgr), 90), AsFile(bgr, 40),        AsFile(Crop5(bgr), 90),
          AsFile(Crop5Corner(bgr), 90), AsFile(Crop5(Resize50(bgr)), 40), AsFile(mirror, 90)};
}

struct Algo {
  const char* name;
  cv::Ptr<cv::img_hash::ImgHashBase> hash;
  std::vector<double> thresholds;
  bool similarity;  // RadialVariance's compare is a correlation: larger is closer
};

struct Photo {
  std::string path;
  int person;
  std::vector<cv::Mat> hashes;                      // per algorithm: the original's
  std::vector<std::array<cv::Mat, kKinds>> copies;  // per algorithm: each copy's
  uint64_t phash = 0;
  std::array<uint64_t, kKinds> copy_phash{};
};

bool Within(const Algo& a, const cv::Mat& x, const cv::Mat& y, double t) {
  const double d = a.hash->compare(x, y);
  return a.similarity ? d >= t : d <= t;
}

int Find(std::vector<int>& parent, int i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) { std::fprintf(stderr, "usage: %s LFW_IMAGES_DIR [MAX_PEOPLE [all]]\n", argv[0]); return 2; }
  const size_t max_people = argc > 2 ? std::stoul(argv[2]) : SIZE_MAX;
  const bool all_hashes = argc > 3 && std::string(argv[3]) == "all";
  cv::setNumThreads(1);
  std::vector<Algo> algos = {
      {"PHash", cv::img_hash::PHash::create(), {3, 4, 5, 6, 7, 8, 10, 12, 14}, false},
      {"AverageHash", cv::img_hash::AverageHash::create(), {2, 4, 6, 8, 10}, false},
      {"BlockMeanHash", cv::img_hash::BlockMeanHash::create(), {8, 16, 24, 32, 40}, false},
      {"MarrHildrethHash", cv::img_hash::MarrHildrethHash::create(), {40, 60, 80, 100, 120}, false},
      {"RadialVarianceHash", cv::img_hash::RadialVarianceHash::create(), {0.98, 0.95, 0.9, 0.85}, true},
      {"ColorMomentHash", cv::img_hash::ColorMomentHash::create(), {1, 2, 4, 8}, false},
  };
  // By default only the three the rules below combine: the others cost most of the time and lost
  // on the first 300 people (docs/benchmarks.md).
  if (!all_hashes)
    std::erase_if(algos, [](const Algo& a) {
      return std::string(a.name) != "PHash" && std::string(a.name) != "BlockMeanHash" &&
             std::string(a.name) != "ColorMomentHash";
    });
  auto algo_index = [&](const char* name) {
    for (size_t a = 0; a < algos.size(); ++a) if (std::string(algos[a].name) == name) return static_cast<int>(a);
    return -1;
  };
  std::vector<fs::path> people;
  for (const auto& e : fs::directory_iterator(argv[1])) people.push_back(e.path());
  std::sort(people.begin(), people.end());
  if (people.size() > max_people) people.resize(max_people);

  std::vector<Photo> photos;
  for (size_t p = 0; p < people.size(); ++p) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(people[p])) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto bytes = ReadFile(f, size_t{1} << 26);
      auto img = bytes ? DecodeImage(*bytes, {}) : Result<RgbImage>(std::unexpected(bytes.error()));
      if (!img) continue;
      Photo ph{f.string(), static_cast<int>(p), {}, {}, PerceptualHash(*img), {}};
      const std::vector<RgbImage> copies = Copies(*img);
      for (int k = 0; k < kKinds; ++k) ph.copy_phash[k] = PerceptualHash(copies[k]);
      for (auto& a : algos) {
        cv::Mat h;
        a.hash->compute(ToBgr(*img), h);
        ph.hashes.push_back(h.clone());
        std::array<cv::Mat, kKinds> c;
        for (int k = 0; k < kKinds; ++k) a.hash->compute(ToBgr(copies[k]), c[k]);
        ph.copies.push_back(c);
      }
      photos.push_back(std::move(ph));
    }
    if (p % 500 == 0) std::fprintf(stderr, "%zu/%zu people, %zu photos\n", p, people.size(), photos.size());
  }
  // Pairs of different photos: all pairs within each person's folder, and random pairs of people.
  std::vector<std::pair<int, int>> same_person, random_pairs;
  for (size_t i = 0; i < photos.size(); ++i)
    for (size_t j = i + 1; j < photos.size() && photos[j].person == photos[i].person; ++j)
      same_person.emplace_back(static_cast<int>(i), static_cast<int>(j));
  std::mt19937_64 rng(20);
  std::uniform_int_distribution<size_t> pick(0, photos.size() - 1);
  while (random_pairs.size() < 1'000'000) {
    const size_t i = pick(rng), j = pick(rng);
    if (photos[i].person != photos[j].person) random_pairs.emplace_back(static_cast<int>(i), static_cast<int>(j));
  }
  std::printf("photos\t%zu\tpeople\t%zu\tsame_person_pairs\t%zu\trandom_pairs\t%zu\n", photos.size(),
              people.size(), same_person.size(), random_pairs.size());
  std::printf("hash\tthreshold");
  for (const char* k : kCopyKinds) std::printf("\trecall_%s", k);
  std::printf("\tsame_person_false\trandom_false\n");
  for (size_t a = 0; a < algos.size(); ++a) {
    for (double t : algos[a].thresholds) {
      std::printf("%s\t%g", algos[a].name, t);
      for (int k = 0; k < kKinds; ++k) {
        size_t hit = 0;
        for (const Photo& ph : photos) hit += Within(algos[a], ph.hashes[a], ph.copies[a][k], t);
        std::printf("\t%.4f", static_cast<double>(hit) / photos.size());
      }
      size_t same = 0, rnd = 0;
      for (auto [i, j] : same_person) same += Within(algos[a], photos[i].hashes[a], photos[j].hashes[a], t);
      for (auto [i, j] : random_pairs) rnd += Within(algos[a], photos[i].hashes[a], photos[j].hashes[a], t);
      std::printf("\t%zu\t%zu\n", same, rnd);
    }
  }
  // Rules that require two hashes to agree: a copy keeps both its structure and its colours.
  struct Rule { std::string name; std::vector<std::pair<int, double>> parts; };
  std::vector<Rule> rules;
  const int ph = algo_index("PHash"), bm = algo_index("BlockMeanHash"), cm = algo_index("ColorMomentHash");
  for (double t : {8.0, 10.0, 12.0, 14.0}) {
    for (double c : {1.0, 2.0, 3.0})
      rules.push_back({"PHash<=" + std::to_string(int(t)) + "&ColorMoment<=" + std::to_string(int(c)), {{ph, t}, {cm, c}}});
    for (double b : {24.0, 32.0})
      rules.push_back({"PHash<=" + std::to_string(int(t)) + "&BlockMean<=" + std::to_string(int(b)), {{ph, t}, {bm, b}}});
  }
  auto rule_holds = [&](const Rule& r, auto&& hash_a, auto&& hash_b) {
    for (auto [a, t] : r.parts) if (!Within(algos[a], hash_a(a), hash_b(a), t)) return false;
    return true;
  };
  std::printf("rule");
  for (const char* k : kCopyKinds) std::printf("\trecall_%s", k);
  std::printf("\tsame_person_false\trandom_false\n");
  for (const Rule& r : rules) {
    std::printf("%s", r.name.c_str());
    for (int k = 0; k < kKinds; ++k) {
      size_t hit = 0;
      for (const Photo& p : photos)
        hit += rule_holds(r, [&](int a) -> const cv::Mat& { return p.hashes[a]; },
                          [&](int a) -> const cv::Mat& { return p.copies[a][k]; });
      std::printf("\t%.4f", static_cast<double>(hit) / photos.size());
    }
    size_t same = 0, rnd = 0;
    for (auto [i, j] : same_person)
      same += rule_holds(r, [&](int a) -> const cv::Mat& { return photos[i].hashes[a]; },
                         [&](int a) -> const cv::Mat& { return photos[j].hashes[a]; });
    for (auto [i, j] : random_pairs)
      rnd += rule_holds(r, [&](int a) -> const cv::Mat& { return photos[i].hashes[a]; },
                        [&](int a) -> const cv::Mat& { return photos[j].hashes[a]; });
    std::printf("\t%zu\t%zu\n", same, rnd);
  }
  for (auto [i, j] : same_person)
    if (HashDistance(photos[i].phash, photos[j].phash) <= 10)
      std::printf("same_person_close\t%s\t%s\t%d\n", photos[i].path.c_str(), photos[j].path.c_str(),
                  HashDistance(photos[i].phash, photos[j].phash));
  // The product's grouping: PerceptualHash at several thresholds, every pair of a collection of the
  // originals and their resize50, jpeg40 and crop5 copies, groups = connected components.
  std::vector<std::pair<uint64_t, int>> items;  // hash, original's index
  for (size_t i = 0; i < photos.size(); ++i) {
    items.emplace_back(photos[i].phash, static_cast<int>(i));
    for (int k = 0; k < 3; ++k) items.emplace_back(photos[i].copy_phash[k], static_cast<int>(i));
  }
  for (int bits : {4, 5, 6, 8}) {
    std::vector<int> parent(items.size());
    for (size_t i = 0; i < parent.size(); ++i) parent[i] = static_cast<int>(i);
    size_t true_pairs = 0, false_pairs = 0;
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t j = i + 1; j < items.size(); ++j) {
        if (HashDistance(items[i].first, items[j].first) > bits) continue;
        (items[i].second == items[j].second ? true_pairs : false_pairs)++;
        parent[Find(parent, static_cast<int>(i))] = Find(parent, static_cast<int>(j));
      }
    // Group-level: an original whose three copies all share its group, and groups mixing photos.
    size_t whole = 0;
    std::map<int, std::vector<int>> members;  // root → originals in it
    for (size_t i = 0; i < items.size(); ++i) members[Find(parent, static_cast<int>(i))].push_back(items[i].second);
    size_t mixed = 0, mixed_same_person = 0;
    for (auto& [root, m] : members) {
      std::sort(m.begin(), m.end());
      m.erase(std::unique(m.begin(), m.end()), m.end());
      if (m.size() > 1) {
        ++mixed;
        bool one_person = std::all_of(m.begin(), m.end(), [&](int o) { return photos[o].person == photos[m[0]].person; });
        mixed_same_person += one_person;
      }
    }
    for (size_t i = 0; i < photos.size(); ++i) {
      const int root = Find(parent, static_cast<int>(4 * i));
      bool all = true;
      for (int k = 1; k < 4; ++k) all = all && Find(parent, static_cast<int>(4 * i + k)) == root;
      whole += all;
    }
    const size_t copy_pairs = photos.size() * 6;  // 4 items of one picture: 6 pairs
    std::printf("grouping\tPerceptualHash<=%d\titems\t%zu\tpairs_within\t%zu\tpair_precision\t%.5f\tpair_recall\t%.4f\t"
                "pictures_whole\t%.4f\tgroups_mixing_photos\t%zu\tof_one_person\t%zu\n",
                bits, items.size(), true_pairs + false_pairs,
                static_cast<double>(true_pairs) / std::max<size_t>(1, true_pairs + false_pairs),
                static_cast<double>(true_pairs) / copy_pairs, static_cast<double>(whole) / photos.size(),
                mixed, mixed_same_person);
  }
  return 0;
}
