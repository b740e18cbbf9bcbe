// SHA-256 (FIPS 180-4), used for content hashes of images, model files and index snapshots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "facesearch/error.h"

namespace facesearch {

// Incremental hasher. Not thread-safe; one per thread.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Returns the lowercase hex digest (64 chars). The object must not be updated afterwards.
  std::string FinishHex();

 private:
  void Compress(const uint8_t* block);
  uint32_t state_[8];
  uint64_t length_ = 0;  // bytes hashed so far
  uint8_t buffer_[64];
  size_t buffered_ = 0;
};

std::string Sha256Hex(std::string_view data);
// Hashes a whole regular file (OpenRegularFile: never a FIFO or device) by streaming it.
// Errors: kNotFound, kIo.
Result<std::string> Sha256File(const std::filesystem::path& path);

}  // namespace facesearch
