// SHA-256 through OpenSSL libcrypto (EVP): see sha256.h for why.
#include "common/sha256.h"

#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>

#include "common/fs.h"

namespace facesearch {

// libcrypto's EVP digest context. Its calls fail only on allocation failure or a broken OpenSSL
// install; both are treated as fatal (std::bad_alloc / std::runtime_error), as for any allocation.
struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr) throw std::bad_alloc();
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL: EVP_DigestInit_ex(sha256) failed");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t len) {
  if (len == 0) return;
  if (EVP_DigestUpdate(ctx_->md, data, len) != 1)
    throw std::runtime_error("OpenSSL: EVP_DigestUpdate failed");
}

std::string Sha256::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_->md, digest, &n) != 1 || n != 32)
    throw std::runtime_error("OpenSSL: EVP_DigestFinal_ex failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.FinishHex();
}

Result<std::string> Sha256File(const std::filesystem::path& path) {
  FS_ASSIGN(const int fd, OpenRegularFile(path));
  Sha256 h;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Fail(ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h.Update(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return h.FinishHex();
}

}  // namespace facesearch
