// The index file format (index_file.h): header encoding, checksum, format versions and the reader
// that hands checked bytes to FAISS.
#include "index/index_file.h"

#include <faiss/Index.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cstring>

#include "common/fs.h"
#include "common/sha256.h"
#include "facesearch/types.h"

namespace facesearch {
namespace {

constexpr char kMagic[8] = {'F', 'S', 'V', 'I', 'N', 'D', 'E', 'X'};
constexpr size_t kFixedHeaderV1 = 52;  // bytes before the model identity, format 1
constexpr size_t kFixedHeader = 64;    // format 2
constexpr size_t kMaxModelIdentity = 1024;
constexpr size_t kDigestHex = 64;

void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

// FAISS's reader interface over a byte range.
struct SpanReader : faiss::IOReader {
  std::string_view bytes;
  size_t at = 0;
  explicit SpanReader(std::string_view b) : bytes(b) {}
  size_t operator()(void* ptr, size_t size, size_t nitems) override {
    if (size == 0 || nitems == 0) return 0;
    const size_t n = std::min(nitems, (bytes.size() - at) / size);
    if (n > 0) std::memcpy(ptr, bytes.data() + at, n * size);
    at += n * size;
    return n;
  }
};

}  // namespace

std::string EncodeIndexFile(const IndexFileHeader& header, std::string_view payload) {
  std::string out(kMagic, sizeof kMagic);
  PutLe(out, kIndexFormatVersion, 4);
  PutLe(out, kEmbeddingDim, 4);
  PutLe(out, static_cast<uint64_t>(header.stamp.generation), 8);
  PutLe(out, static_cast<uint64_t>(header.ntotal), 8);
  PutLe(out, static_cast<uint64_t>(header.max_face_id), 8);
  PutLe(out, payload.size(), 8);
  PutLe(out, header.stamp.model_identity.size(), 4);
  PutLe(out, static_cast<uint32_t>(header.kind), 4);
  PutLe(out, header.flat_size == 0 ? payload.size() : header.flat_size, 8);
  out += header.stamp.model_identity;
  Sha256 sha;
  sha.Update(out);
  sha.Update(payload);
  out += sha.FinishHex();
  out += payload;
  return out;
}

Result<IndexFileHeader> DecodeIndexFile(std::string_view file, std::string_view* payload) {
  auto corrupt = [](const std::string& why) { return Fail(ErrorCode::kCorrupt, why); };
  if (file.size() < sizeof kMagic || file.compare(0, sizeof kMagic, kMagic, sizeof kMagic) != 0)
    return corrupt("is not a facesearch index file (no FSVINDEX header: a foreign file, or one "
                   "written by a facesearch older than index format 1)");
  if (file.size() < kFixedHeaderV1) return corrupt("is truncated inside its header");
  IndexFileHeader h;
  h.version = static_cast<uint32_t>(GetLe(file, 8, 4));
  h.dimension = static_cast<uint32_t>(GetLe(file, 12, 4));
  h.stamp.generation = static_cast<int64_t>(GetLe(file, 16, 8));
  h.ntotal = static_cast<int64_t>(GetLe(file, 24, 8));
  h.max_face_id = static_cast<int64_t>(GetLe(file, 32, 8));
  h.payload_size = GetLe(file, 40, 8);
  const uint64_t model_len = GetLe(file, 48, 4);
  if (h.version != 1 && h.version != kIndexFormatVersion)
    return corrupt("has index format version " + std::to_string(h.version) + ", this build reads 1 to " +
                   std::to_string(kIndexFormatVersion));
  size_t fixed = kFixedHeaderV1;
  uint64_t kind = 0;
  if (h.version >= 2) {
    if (file.size() < kFixedHeader) return corrupt("is truncated inside its header");
    kind = GetLe(file, 52, 4);
    h.flat_size = GetLe(file, 56, 8);
    fixed = kFixedHeader;
  }
  if (h.dimension != kEmbeddingDim)
    return corrupt("has dimension " + std::to_string(h.dimension) + ", expected " +
                   std::to_string(kEmbeddingDim));
  if (kind > kMaxIndexKind) return corrupt("has an unknown index kind " + std::to_string(kind));
  h.kind = static_cast<IndexKind>(kind);
  if (model_len > kMaxModelIdentity) return corrupt("has an absurd model identity length");
  const size_t digest_at = fixed + model_len;
  if (file.size() < digest_at + kDigestHex) return corrupt("is truncated inside its header");
  const uint64_t available = file.size() - digest_at - kDigestHex;
  if (h.payload_size != available)
    return corrupt("has " + std::to_string(available) + " payload bytes, its header says " +
                   std::to_string(h.payload_size));
  if (h.version == 1) h.flat_size = h.payload_size;
  if (h.flat_size > h.payload_size) return corrupt("has a flat part longer than its payload");
  if (!IsFaissApproximate(h.kind) && h.flat_size != h.payload_size)
    return corrupt("has a second part, which its kind does not have");
  if (h.stamp.generation < 0 || h.ntotal < 0 || h.max_face_id < 0)
    return corrupt("has a negative count in its header");
  h.stamp.model_identity = std::string(file.substr(fixed, model_len));
  const std::string_view body = file.substr(digest_at + kDigestHex);
  Sha256 sha;
  sha.Update(file.substr(0, digest_at));
  sha.Update(body);
  if (sha.FinishHex() != file.substr(digest_at, kDigestHex))
    return corrupt("fails its own SHA-256 check (header or payload damaged)");
  if (payload) *payload = body;
  return h;
}

Result<CheckedIndexFile> ReadIndexFile(const std::filesystem::path& path, int64_t expected_size,
                                       const std::string& expected_sha256, const IndexStamp& expected) {
  auto corrupt = [&](const std::string& why) {
    return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + why);
  };
  if (expected_size < 0) return corrupt("has a negative recorded size");
  // A file longer than recorded is refused by ReadFile before it is read into memory.
  auto bytes = ReadFile(path, static_cast<size_t>(expected_size));
  if (!bytes) {
    if (bytes.error().reason == ErrorReason::kTooLarge) return corrupt("is larger than recorded");
    return std::unexpected(bytes.error());
  }
  if (static_cast<int64_t>(bytes->size()) != expected_size)
    return corrupt("has " + std::to_string(bytes->size()) + " bytes, expected " +
                   std::to_string(expected_size));
  if (Sha256Hex(*bytes) != expected_sha256) return corrupt("fails its SHA-256 check");
  std::string_view payload;
  auto header = DecodeIndexFile(*bytes, &payload);
  if (!header) return corrupt(header.error().message);
  if (header->stamp.model_identity != expected.model_identity)
    return corrupt("was built with models '" + header->stamp.model_identity + "', the corpus uses '" +
                   expected.model_identity + "'");
  if (header->stamp.generation != expected.generation)
    return corrupt("is stamped generation " + std::to_string(header->stamp.generation) +
                   ", its record says " + std::to_string(expected.generation));
  CheckedIndexFile file;
  file.payload_at = static_cast<size_t>(payload.data() - bytes->data());
  file.header = std::move(*header);
  file.bytes = std::move(*bytes);
  return file;
}

std::unique_ptr<faiss::Index> ReadFaissIndex(std::string_view bytes, size_t* read) {
  SpanReader reader(bytes);
  std::unique_ptr<faiss::Index> index(faiss::read_index(&reader));
  *read = reader.at;
  return index;
}

}  // namespace facesearch
