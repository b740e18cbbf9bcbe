// The model files: where they are looked for, and their pinned SHA-256 (data/models*.sha256,
// compiled in at configure time). A corpus records ModelIdentity() so that embeddings from
// different models are never mixed.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "facesearch/error.h"
#include "facesearch/types.h"

namespace facesearch {

// kYunet and kSface are the optional OpenCV model-zoo files (scripts/fetch-models.sh --with-opencv).
enum class ModelId { kResnet, kShape5, kShape68, kCnnDetector, kYunet, kSface };

const char* ModelFileName(ModelId id);
// Pinned lowercase hex SHA-256 from data/models*.sha256; nullptr if the file has no pin.
const char* ModelSha256(ModelId id);

// Resolution order: `flag` (--models), $FACESEARCH_MODELS, ${XDG_CACHE_HOME:-~/.cache}/facesearch/models.
std::filesystem::path ResolveModelsDir(const std::optional<std::filesystem::path>& flag);

// Returns the model's path once it exists and matches its pin. Errors: kModel, with a message that
// names the file, what is wrong, and the command that fixes it.
Result<std::filesystem::path> VerifiedModelPath(const std::filesystem::path& dir, ModelId id);

// Reads the model file once and returns its bytes once they match the pin, so that the bytes
// deserialised are the bytes checked (no second read, and no window in which the file could be
// swapped between the check and the load). Errors: those of VerifiedModelPath, kIo.
Result<std::string> ReadVerifiedModel(const std::filesystem::path& dir, ModelId id);

// Identifies the embedding space: the embedder and the landmark model that aligns its input
// (dlib: the ResNet and the 5-point predictor; SFace: itself and YuNet, whose landmarks align it).
std::string ModelIdentity(EmbeddingModel model = EmbeddingModel::kDlib);

}  // namespace facesearch
