// SHA-256 (FIPS 180-4), used for content hashes of images, model files, index snapshots and the
// audit chain. Computed by OpenSSL's libcrypto (EVP), which picks the CPU's SHA extensions (SHA-NI)
// or AVX2 code at run time: a hand-written portable version hashed ~225 MB/s and was half of a 1M
// query's CPU (issue #16); libcrypto is a well-kept, audited library already on every Debian system.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "facesearch/error.h"

namespace facesearch {

// Incremental hasher. Not thread-safe; one per thread. Move-only.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Returns the lowercase hex digest (64 chars). The object must not be updated afterwards.
  std::string FinishHex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string Sha256Hex(std::string_view data);
// Hashes a whole regular file (OpenRegularFile: never a FIFO or device) by streaming it.
// Errors: kNotFound, kIo.
Result<std::string> Sha256File(const std::filesystem::path& path);

}  // namespace facesearch
