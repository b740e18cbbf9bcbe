#include "eval/lfw_faces.h"

#include <algorithm>
#include <cstdio>
#include <unordered_map>

namespace facesearch::eval {
namespace fs = std::filesystem;

namespace {

std::string Key(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return (ec ? p.lexically_normal() : c).string();
}

double CentreDistance(const Box& b, int width, int height) {
  double cx = b.x + b.w / 2.0 - width / 2.0, cy = b.y + b.h / 2.0 - height / 2.0;
  return cx * cx + cy * cy;
}

}  // namespace

Result<LfwFaces> LfwFaces::Load(const CorpusConfig& config, const fs::path& images_dir) {
  std::error_code ec;
  if (!fs::is_directory(images_dir, ec))
    return Fail(ErrorCode::kNotFound, "no LFW image directory at " + images_dir.string());
  LfwFaces out;
  out.dir_ = images_dir;
  for (const auto& entry : fs::directory_iterator(images_dir, ec)) {
    if (!entry.is_directory()) continue;
    LfwPerson person{entry.path().filename().string(), {}};
    for (const auto& img : fs::directory_iterator(entry.path(), ec))
      if (img.is_regular_file()) person.images.push_back(img.path());
    std::sort(person.images.begin(), person.images.end());
    if (!person.images.empty()) out.people_.push_back(std::move(person));
  }
  std::sort(out.people_.begin(), out.people_.end(),
            [](const LfwPerson& a, const LfwPerson& b) { return a.name < b.name; });

  // Keep, per image, the face nearest the centre. LFW images are 250x250; the exact size is not
  // stored per face, so the centre is estimated from the LFW crop size.
  constexpr int kLfwSide = 250;
  std::unordered_map<std::string, std::pair<double, Embedding>> best;
  FS_TRY(ExportFaces(config, [&](const FaceRecord& r) {
    std::string key = Key(r.image_path);
    double d = CentreDistance(r.face.box, kLfwSide, kLfwSide);
    auto it = best.find(key);
    if (it == best.end() || d < it->second.first) best[key] = {d, r.face.embedding};
  }));
  for (const auto& person : out.people_) {
    for (const auto& img : person.images) {
      auto it = best.find(Key(img));
      if (it != best.end()) {
        out.faces_.emplace(it->first, it->second.second);
        ++out.indexed_;
      }
    }
  }
  if (out.faces_.empty())
    return Fail(ErrorCode::kInvalidArgument,
                "the corpus holds no faces from " + images_dir.string() +
                    ": index the LFW images first (facesearch index " + images_dir.string() + ")");
  return out;
}

fs::path LfwFaces::ImagePath(const std::string& name, int number) const {
  char file[32];
  std::snprintf(file, sizeof file, "_%04d.jpg", number);
  return dir_ / name / (name + file);
}

const Embedding* LfwFaces::Find(const fs::path& image) const {
  auto it = faces_.find(Key(image));
  return it == faces_.end() ? nullptr : &it->second;
}

}  // namespace facesearch::eval
