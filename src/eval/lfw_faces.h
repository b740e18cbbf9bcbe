// The LFW images as a corpus sees them: for every image, the embedding of its face nearest to the
// image centre, or "no face". Shared by the verification, identification and calibration code.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch::eval {

struct LfwPerson {
  std::string name;
  std::vector<std::filesystem::path> images;  // sorted: Name_0001.jpg, Name_0002.jpg, ...
};

class LfwFaces {
 public:
  // Lists images_dir (Name/Name_NNNN.jpg) and reads the corpus's faces for those images.
  // Errors: kNotFound when images_dir or the corpus is missing, kInvalidArgument when the corpus
  // holds none of the LFW images (it was not indexed from images_dir).
  static Result<LfwFaces> Load(const CorpusConfig& config, const std::filesystem::path& images_dir);

  const std::vector<LfwPerson>& people() const { return people_; }
  std::filesystem::path ImagePath(const std::string& name, int number) const;
  // The embedding for an image; nullptr when the image has no face or is not in the corpus.
  const Embedding* Find(const std::filesystem::path& image) const;
  int indexed_images() const { return indexed_; }

 private:
  std::filesystem::path dir_;
  std::vector<LfwPerson> people_;
  std::map<std::string, Embedding> faces_;  // canonical image path → chosen face
  int indexed_ = 0;
};

}  // namespace facesearch::eval
