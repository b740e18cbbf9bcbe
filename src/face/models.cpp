#include "face/models.h"

#include <cstdlib>
#include <cstring>
#include <system_error>

#include "common/fs.h"
#include "common/sha256.h"
#include "face/model_pins.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFixHint =
    "run scripts/fetch-models.sh from the facesearch source tree, or point --models / "
    "FACESEARCH_MODELS at a directory holding the pinned files";
constexpr const char* kFixHint68 =
    "run scripts/fetch-models.sh --with-68 from the facesearch source tree (the model's training "
    "data is for non-commercial use only: docs/models.md), or point --models / FACESEARCH_MODELS "
    "at a directory holding the pinned file";
constexpr const char* kFixHintOpenCv =
    "run scripts/fetch-models.sh --with-opencv from the facesearch source tree (docs/models.md), or "
    "point --models / FACESEARCH_MODELS at a directory holding the pinned file";

const char* FixHint(ModelId id) {
  switch (id) {
    case ModelId::kShape68: return kFixHint68;
    case ModelId::kYunet:
    case ModelId::kSface: return kFixHintOpenCv;
    default: return kFixHint;
  }
}

}  // namespace

const char* ModelFileName(ModelId id) {
  switch (id) {
    case ModelId::kResnet: return "dlib_face_recognition_resnet_model_v1.dat";
    case ModelId::kShape5: return "shape_predictor_5_face_landmarks.dat";
    case ModelId::kShape68: return "shape_predictor_68_face_landmarks.dat";
    case ModelId::kCnnDetector: return "mmod_human_face_detector.dat";
    case ModelId::kYunet: return "face_detection_yunet_2023mar.onnx";
    case ModelId::kSface: return "face_recognition_sface_2021dec.onnx";
  }
  return "";
}

const char* ModelSha256(ModelId id) {
  for (const auto& pin : generated::kModelPins)
    if (std::strcmp(pin.file, ModelFileName(id)) == 0) return pin.sha256;
  return nullptr;
}

fs::path ResolveModelsDir(const std::optional<fs::path>& flag) {
  if (flag && !flag->empty()) return *flag;
  if (const char* env = std::getenv("FACESEARCH_MODELS"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return fs::path(xdg) / "facesearch" / "models";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".cache" / "facesearch" / "models";
}

Result<fs::path> VerifiedModelPath(const fs::path& dir, ModelId id) {
  const char* pinned = ModelSha256(id);
  fs::path path = dir / ModelFileName(id);
  const char* hint = FixHint(id);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    return Fail(ErrorCode::kModel,
                "model file " + path.string() + " is missing: " + hint);
  FS_ASSIGN(std::string actual, Sha256File(path));
  if (pinned == nullptr || actual != pinned)
    return Fail(ErrorCode::kModel, "model file " + path.string() + " has SHA-256 " + actual +
                                       ", expected " + (pinned ? pinned : "(no pin)") +
                                       ": " + hint);
  return path;
}

Result<std::string> ReadVerifiedModel(const fs::path& dir, ModelId id) {
  const char* pinned = ModelSha256(id);
  const fs::path path = dir / ModelFileName(id);
  const char* hint = FixHint(id);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    return Fail(ErrorCode::kModel, "model file " + path.string() + " is missing: " + hint);
  // The largest pinned model (the 68-point predictor) is under 100 MB.
  auto bytes = ReadFile(path, size_t{512} << 20);
  if (!bytes) return Fail(ErrorCode::kModel, "cannot read model file " + path.string() + ": " +
                                                 bytes.error().message + ": " + hint);
  const std::string actual = Sha256Hex(*bytes);
  if (pinned == nullptr || actual != pinned)
    return Fail(ErrorCode::kModel, "model file " + path.string() + " has SHA-256 " + actual +
                                       ", expected " + (pinned ? pinned : "(no pin)") + ": " + hint);
  return std::move(*bytes);
}

std::string ModelIdentity(EmbeddingModel model) {
  auto short_pin = [](ModelId id) {
    const char* s = ModelSha256(id);
    return std::string(s ? s : "unpinned").substr(0, 16);
  };
  if (model == EmbeddingModel::kSface)
    return "sface_2021dec@" + short_pin(ModelId::kSface) + "+yunet_2023mar@" + short_pin(ModelId::kYunet);
  return "dlib_resnet_v1@" + short_pin(ModelId::kResnet) + "+sp5@" + short_pin(ModelId::kShape5);
}

}  // namespace facesearch
