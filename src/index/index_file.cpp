// The index file format (index_file.h): writing, appending, mapping and checking segments.
#include "index/index_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "facesearch/types.h"

namespace facesearch {
namespace {

static_assert(std::endian::native == std::endian::little, "index files map little-endian arrays");

constexpr char kMagic[8] = {'F', 'S', 'V', 'I', 'N', 'D', 'E', 'X'};
constexpr char kChunkMagic[8] = {'F', 'S', 'V', 'D', 'E', 'L', 'T', 'A'};
constexpr size_t kFixedHeader = 128;
constexpr size_t kHeaderSumAt = 120;
constexpr size_t kChunkHeader = 64;
constexpr size_t kChunkSumAt = 56;
constexpr size_t kMaxModelIdentity = 1024;
constexpr size_t kRowBytes = kEmbeddingDim * sizeof(float);
constexpr size_t kCodeParamBytes = (kEmbeddingDim + 1) * sizeof(float);
constexpr const char* kChecksumPrefix = "xxh3:";

size_t Align64(size_t x) { return (x + 63) & ~size_t{63}; }
size_t Blocks(size_t n) { return (n + kBlockRows - 1) / kBlockRows; }

void Put(char* at, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) at[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint64_t Get(const char* at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(at[i])) << (8 * i);
  return v;
}

uint64_t Hash(const void* data, size_t size, uint64_t seed = 0) { return XXH3_64bits_withSeed(data, size, seed); }

// The main header's checksum: its bytes except the checksum itself.
uint64_t MainHeaderSum(const char* header, size_t size) {
  return Hash(header + kFixedHeader, size - kFixedHeader, Hash(header, kHeaderSumAt));
}

std::string ChecksumText(uint64_t sum) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum));
  return std::string(kChecksumPrefix) + hex;
}

std::string MainHeader(const IndexFileHeader& h, uint64_t structure_size, uint64_t structure_sum,
                       uint64_t sums_sum) {
  std::string out(kFixedHeader, '\0');
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  Put(&out[8], kIndexFormatVersion, 4);
  Put(&out[12], kEmbeddingDim, 4);
  Put(&out[16], static_cast<uint64_t>(h.stamp.generation), 8);
  Put(&out[24], static_cast<uint64_t>(h.ntotal), 8);
  Put(&out[32], static_cast<uint64_t>(h.max_face_id), 8);
  Put(&out[40], static_cast<uint32_t>(h.kind), 4);
  Put(&out[44], h.stamp.model_identity.size(), 4);
  Put(&out[56], structure_size, 8);
  Put(&out[64], sums_sum, 8);
  Put(&out[72], structure_sum, 8);
  Put(&out[80], h.has_codes ? 1 : 0, 4);
  Put(&out[84], kBlockRows, 4);
  out += h.stamp.model_identity;
  if (h.has_codes) {
    out.append(reinterpret_cast<const char*>(h.code_offset.data()), kEmbeddingDim * sizeof(float));
    out.append(reinterpret_cast<const char*>(&h.code_step), sizeof(float));
  }
  out.resize(Align64(out.size()), '\0');
  Put(&out[48], out.size(), 8);
  Put(&out[kHeaderSumAt], MainHeaderSum(out.data(), out.size()), 8);
  return out;
}

std::vector<uint64_t> SumsOf(const SegmentArrays& seg) {
  std::vector<uint64_t> sums(Blocks(seg.n));
  for (size_t b = 0; b < sums.size(); ++b)
    sums[b] = BlockSum(seg, b * kBlockRows, std::min(kBlockRows, seg.n - b * kBlockRows));
  return sums;
}

SegmentArrays ArraysOf(std::span<const int64_t> ids, std::span<const float> rows, std::span<const uint8_t> codes) {
  // Only read (hashed) through these pointers.
  return SegmentArrays{const_cast<int64_t*>(ids.data()), const_cast<float*>(rows.data()),
                       codes.empty() ? nullptr : const_cast<uint8_t*>(codes.data()), nullptr, ids.size()};
}

uint64_t BlockSumAt(const SegmentArrays& seg, size_t block) {
  uint64_t sum = 0;
  std::memcpy(&sum, seg.sums + 8 * block, 8);
  return sum;
}

void SetBlockSum(const SegmentArrays& seg, size_t block, uint64_t sum) { std::memcpy(seg.sums + 8 * block, &sum, 8); }

bool ZeroFill(const char* at, size_t n) {
  return std::all_of(at, at + n, [](char c) { return c == 0; });
}

std::string_view Bytes(const void* data, size_t size) { return {static_cast<const char*>(data), size}; }

// A whole delta chunk: header, ids, rows, sums, padding.
std::string ChunkBytes(std::span<const int64_t> ids, std::span<const float> rows, int64_t generation,
                       int64_t max_face_id) {
  const std::vector<uint64_t> sums = SumsOf(ArraysOf(ids, rows, {}));
  std::string out(kChunkHeader, '\0');
  std::memcpy(out.data(), kChunkMagic, sizeof kChunkMagic);
  Put(&out[8], ids.size(), 8);
  Put(&out[16], static_cast<uint64_t>(generation), 8);
  Put(&out[24], static_cast<uint64_t>(max_face_id), 8);
  Put(&out[32], Hash(sums.data(), sums.size() * 8), 8);
  Put(&out[kChunkSumAt], Hash(out.data(), kChunkSumAt), 8);
  out += Bytes(ids.data(), ids.size_bytes());
  out += Bytes(rows.data(), rows.size_bytes());
  out += Bytes(sums.data(), sums.size() * 8);
  out.resize(Align64(out.size()), '\0');
  return out;
}

// Parses and checks a main header from the first bytes of a file of `file_size` bytes; `avail` is
// how many of them `bytes` holds. Returns why it is unusable ("" when it is fine).
std::string ParseMainHeader(const char* bytes, size_t avail, IndexFileHeader& h, size_t& header_size,
                            uint64_t& sum) {
  if (avail < sizeof kMagic || std::memcmp(bytes, kMagic, sizeof kMagic) != 0)
    return "is not a facesearch index file (no FSVINDEX header: a foreign file)";
  if (avail < kFixedHeader) return "is truncated inside its header";
  const uint64_t version = Get(bytes + 8, 4);
  if (version != kIndexFormatVersion)
    return "has index format version " + std::to_string(version) + ", this build reads " +
           std::to_string(kIndexFormatVersion) + " (older files are rebuilt from the database)";
  if (Get(bytes + 12, 4) != kEmbeddingDim) return "has dimension " + std::to_string(Get(bytes + 12, 4));
  const uint64_t model_len = Get(bytes + 44, 4);
  header_size = Get(bytes + 48, 8);
  h.has_codes = Get(bytes + 80, 4) == 1;
  const size_t need = Align64(kFixedHeader + model_len + (h.has_codes ? kCodeParamBytes : 0));
  if (model_len > kMaxModelIdentity || header_size != need || Get(bytes + 84, 4) != kBlockRows)
    return "has an inconsistent header";
  if (avail < header_size) return "is truncated inside its header";
  sum = Get(bytes + kHeaderSumAt, 8);
  if (MainHeaderSum(bytes, header_size) != sum) return "fails its header checksum (header damaged)";
  const uint64_t kind = Get(bytes + 40, 4);
  if (kind > kMaxIndexKind) return "has an unknown index kind " + std::to_string(kind);
  h.kind = static_cast<IndexKind>(kind);
  h.stamp.generation = static_cast<int64_t>(Get(bytes + 16, 8));
  h.ntotal = static_cast<int64_t>(Get(bytes + 24, 8));
  h.max_face_id = static_cast<int64_t>(Get(bytes + 32, 8));
  if (h.stamp.generation < 0 || h.ntotal < 0 || h.max_face_id < 0) return "has a negative count in its header";
  h.stamp.model_identity.assign(bytes + kFixedHeader, model_len);
  if (h.has_codes) {
    h.code_offset.resize(kEmbeddingDim);
    std::memcpy(h.code_offset.data(), bytes + kFixedHeader + model_len, kEmbeddingDim * sizeof(float));
    std::memcpy(&h.code_step, bytes + kFixedHeader + model_len + kEmbeddingDim * sizeof(float), sizeof(float));
  }
  return "";
}

}  // namespace

uint64_t BlockSum(const SegmentArrays& seg, size_t first, size_t count) {
  uint64_t sum = Hash(seg.ids + first, count * sizeof(int64_t));
  sum = Hash(seg.rows + first * kEmbeddingDim, count * kRowBytes, sum);
  if (seg.codes) sum = Hash(seg.codes + first * kEmbeddingDim, count * kEmbeddingDim, sum);
  return sum;
}

Result<SavedFile> WriteIndexFile(const std::filesystem::path& path, const IndexFileContents& c) {
  const std::vector<uint64_t> sums = SumsOf(ArraysOf(c.ids, c.rows, c.codes));
  IndexFileHeader h = c.header;
  h.ntotal = static_cast<int64_t>(c.ids.size());
  h.has_codes = !c.codes.empty();
  const std::string header = MainHeader(h, c.structure.size(), Hash(c.structure.data(), c.structure.size()),
                                        Hash(sums.data(), sums.size() * 8));
  const size_t body = header.size() + c.ids.size_bytes() + c.rows.size_bytes() + c.codes.size_bytes() +
                      c.structure.size() + sums.size() * 8;
  const std::string pad(Align64(body) - body, '\0');
  std::string chunk;
  if (!c.delta_ids.empty())
    chunk = ChunkBytes(c.delta_ids, c.delta_rows, h.stamp.generation, h.max_face_id);
  const std::string_view parts[] = {header,
                                    Bytes(c.ids.data(), c.ids.size_bytes()),
                                    Bytes(c.rows.data(), c.rows.size_bytes()),
                                    Bytes(c.codes.data(), c.codes.size_bytes()),
                                    c.structure,
                                    Bytes(sums.data(), sums.size() * 8),
                                    pad,
                                    chunk};
  FS_TRY(WriteFileAtomic(path, parts));
  return SavedFile{static_cast<int64_t>(Align64(body) + chunk.size()),
                   ChecksumText(Get(header.data() + kHeaderSumAt, 8))};
}

Result<StreamedIndexFile> StreamedIndexFile::Create(const std::filesystem::path& path,
                                                    const IndexFileHeader& header, int64_t rows) {
  if (rows < 0) return Fail(ErrorCode::kInvalidArgument, "a streamed index file of a negative row count");
  FS_ASSIGN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  IndexFileHeader h = header;
  h.ntotal = rows;
  h.has_codes = false;
  h.code_offset.clear();
  StreamedIndexFile file(std::move(out), std::move(h), static_cast<size_t>(rows));
  file.header_size_ = MainHeader(file.header_, 0, 0, 0).size();  // its size does not depend on the sums
  file.sums_.reserve(Blocks(file.rows_));
  return file;
}

Status StreamedIndexFile::Append(std::span<const int64_t> ids, std::span<const float> rows) {
  if (rows.size() != ids.size() * kEmbeddingDim || written_ + ids.size() > rows_ || written_ % kBlockRows != 0)
    return Fail(ErrorCode::kInvalidArgument,
                "streamed index file: a batch of " + std::to_string(ids.size()) + " rows after " +
                    std::to_string(written_) + " of " + std::to_string(rows_) + " (or mismatched sizes)");
  const SegmentArrays batch = ArraysOf(ids, rows, {});
  for (size_t first = 0; first < batch.n; first += kBlockRows)
    sums_.push_back(BlockSum(batch, first, std::min(kBlockRows, batch.n - first)));
  FS_TRY(out_.WriteAt(header_size_ + written_ * sizeof(int64_t), Bytes(ids.data(), ids.size_bytes())));
  FS_TRY(out_.WriteAt(header_size_ + rows_ * sizeof(int64_t) + written_ * kRowBytes,
                      Bytes(rows.data(), rows.size_bytes())));
  written_ += ids.size();
  return Ok();
}

Result<SavedFile> StreamedIndexFile::Finish(std::string_view structure, int64_t max_face_id) {
  if (written_ != rows_)
    return Fail(ErrorCode::kInvalidArgument, "streamed index file: " + std::to_string(written_) + " rows written, " +
                                                 std::to_string(rows_) + " announced");
  header_.max_face_id = max_face_id;
  const std::string header = MainHeader(header_, structure.size(), Hash(structure.data(), structure.size()),
                                        Hash(sums_.data(), sums_.size() * 8));
  const size_t at = header_size_ + rows_ * (sizeof(int64_t) + kRowBytes);
  const size_t body = at + structure.size() + sums_.size() * 8;
  FS_TRY(out_.WriteAt(at, structure));
  FS_TRY(out_.WriteAt(at + structure.size(), Bytes(sums_.data(), sums_.size() * 8)));
  FS_TRY(out_.WriteAt(body, std::string(Align64(body) - body, '\0')));
  FS_TRY(out_.WriteAt(0, header));
  FS_TRY(out_.Commit());
  return SavedFile{static_cast<int64_t>(Align64(body)), ChecksumText(Get(header.data() + kHeaderSumAt, 8))};
}

void IndexFile::ReleasePages(const void* begin, size_t bytes) const {
  const auto at = reinterpret_cast<uintptr_t>(begin), base = reinterpret_cast<uintptr_t>(map_);
  if (!writable_ || at < base || at + bytes > base + mapped_) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t from = at & ~(page - 1), to = (at + bytes) & ~(page - 1);
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
}

Result<IndexFileHeader> IndexFile::ReadHeader(const std::filesystem::path& path, std::string* checksum) {
  FS_ASSIGN(const int fd, OpenRegularFile(path));
  char buf[kFixedHeader + kMaxModelIdentity + kCodeParamBytes + 64];
  const ssize_t got = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  if (got < 0) return Fail(ErrorCode::kIo, "cannot read index file " + path.string() + ": " + std::strerror(errno));
  IndexFileHeader h;
  size_t header_size = 0;
  uint64_t sum = 0;
  if (std::string why = ParseMainHeader(buf, static_cast<size_t>(got), h, header_size, sum); !why.empty())
    return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + why);
  if (checksum) *checksum = ChecksumText(sum);
  return h;
}

IndexFile::~IndexFile() {
  if (map_) ::munmap(map_, mapped_);
  if (fd_ >= 0) ::close(fd_);
}

Result<std::shared_ptr<IndexFile>> IndexFile::Open(const std::filesystem::path& path, int64_t expected_size,
                                                   const std::string& expected_checksum,
                                                   const IndexStamp& expected, bool writable) {
  auto corrupt = [&](const std::string& why) {
    return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + why);
  };
  std::shared_ptr<IndexFile> file(new IndexFile());
  file->path_ = path;
  file->writable_ = writable;
  if (writable) {
    file->fd_ = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (file->fd_ < 0 && errno == ENOENT) return Fail(ErrorCode::kNotFound, "index file " + path.string() + " is missing");
    if (file->fd_ < 0) return Fail(ErrorCode::kIo, "cannot open index file " + path.string() + ": " + std::strerror(errno));
  } else {
    FS_ASSIGN(file->fd_, OpenRegularFile(path));
  }
  struct stat st {};
  if (::fstat(file->fd_, &st) != 0 || !S_ISREG(st.st_mode)) return corrupt("is not a regular file");
  if (expected_size < static_cast<int64_t>(kFixedHeader)) {
    if (auto header = ReadHeader(path); !header) return std::unexpected(header.error());
    return corrupt("has an impossible recorded size");
  }
  if (st.st_size < expected_size)
    return corrupt("has " + std::to_string(st.st_size) + " bytes, its record says " + std::to_string(expected_size));
  file->size_ = file->mapped_ = static_cast<size_t>(expected_size);
  void* map = ::mmap(nullptr, file->mapped_, PROT_READ | PROT_WRITE, writable ? MAP_SHARED : MAP_PRIVATE, file->fd_, 0);
  if (map == MAP_FAILED) return Fail(ErrorCode::kIo, "cannot map index file " + path.string() + ": " + std::strerror(errno));
  file->map_ = static_cast<char*>(map);
  uint64_t sum = 0;
  if (std::string why = ParseMainHeader(file->map_, file->size_, file->header_, file->header_size_, sum); !why.empty())
    return corrupt(why);
  if (ChecksumText(sum) != expected_checksum) return corrupt("has another header than its record (checksum differs)");
  if (std::string why = file->CheckLayout(); !why.empty()) return corrupt(why);
  if (file->header_.stamp.model_identity != expected.model_identity)
    return corrupt("was built with models '" + file->header_.stamp.model_identity + "', the corpus uses '" +
                   expected.model_identity + "'");
  if (file->generation_ != expected.generation)
    return corrupt("is stamped generation " + std::to_string(file->generation_) + ", its record says " +
                   std::to_string(expected.generation));
  size_t array_bytes = file->main_.n * (kRowBytes + 8);
  for (const SegmentArrays& c : file->chunks_) array_bytes += c.n * (kRowBytes + 8);
  if (array_bytes < kCheckAllBlocksBelow)
    if (auto damaged = file->VerifyBlocks(); !damaged.empty()) return corrupt(damaged.front());
  return file;
}

// Walks the sections and chunks inside the mapped length, checking every sums table and the
// structure against their checksums (FAISS parses the structure: it must not see a damaged byte).
std::string IndexFile::CheckLayout() {
  const uint64_t n = static_cast<uint64_t>(header_.ntotal);
  const size_t per_row = 8 + kRowBytes + (header_.has_codes ? kEmbeddingDim : 0);
  if (n > (size_ - header_size_) / per_row) return "is truncated: its header counts more rows than it holds";
  size_t at = header_size_;
  main_.n = n;
  main_.ids = reinterpret_cast<int64_t*>(map_ + at);
  at += 8 * n;
  main_.rows = reinterpret_cast<float*>(map_ + at);
  at += kRowBytes * n;
  if (header_.has_codes) {
    main_.codes = reinterpret_cast<uint8_t*>(map_ + at);
    at += kEmbeddingDim * n;
  }
  const uint64_t structure_size = Get(map_ + 56, 8);
  const size_t sums_bytes = 8 * Blocks(n);
  if (structure_size > size_ - at || sums_bytes > size_ - at - structure_size) return "is truncated inside its main segment";
  structure_ = std::string_view(map_ + at, structure_size);
  if (Hash(structure_.data(), structure_.size()) != Get(map_ + 72, 8)) return "fails its structure checksum";
  at += structure_size;
  main_.sums = map_ + at;
  if (Hash(main_.sums, sums_bytes) != Get(map_ + 64, 8)) return "fails the checksum of its block checksums";
  at += sums_bytes;
  if (Align64(at) > size_) return "is truncated inside its main segment";
  if (!ZeroFill(map_ + at, Align64(at) - at)) return "has damaged padding after its main segment";
  at = Align64(at);
  generation_ = header_.stamp.generation;
  max_face_id_ = header_.max_face_id;
  while (at < size_) {
    if (size_ - at < kChunkHeader || std::memcmp(map_ + at, kChunkMagic, sizeof kChunkMagic) != 0 ||
        Hash(map_ + at, kChunkSumAt) != Get(map_ + at + kChunkSumAt, 8))
      return "has a damaged delta chunk header at byte " + std::to_string(at);
    SegmentArrays c;
    c.n = Get(map_ + at + 8, 8);
    if (c.n == 0 || c.n > (size_ - at - kChunkHeader) / (8 + kRowBytes)) return "is truncated inside a delta chunk";
    const size_t sums_end = at + kChunkHeader + c.n * (8 + kRowBytes) + 8 * Blocks(c.n);
    const size_t chunk_end = Align64(sums_end);
    if (chunk_end > size_) return "is truncated inside a delta chunk";
    if (!ZeroFill(map_ + sums_end, chunk_end - sums_end)) return "has damaged padding after a delta chunk";
    c.ids = reinterpret_cast<int64_t*>(map_ + at + kChunkHeader);
    c.rows = reinterpret_cast<float*>(map_ + at + kChunkHeader + 8 * c.n);
    c.sums = map_ + at + kChunkHeader + (8 + kRowBytes) * c.n;
    if (Hash(c.sums, 8 * Blocks(c.n)) != Get(map_ + at + 32, 8)) return "fails the checksum of a delta chunk's block checksums";
    generation_ = std::max(generation_, static_cast<int64_t>(Get(map_ + at + 16, 8)));
    max_face_id_ = std::max(max_face_id_, static_cast<int64_t>(Get(map_ + at + 24, 8)));
    chunks_.push_back(c);
    chunk_offsets_.push_back(at);
    at = chunk_end;
  }
  return "";
}

std::vector<std::string> IndexFile::VerifyBlocks() const {
  std::vector<std::string> damaged;
  auto check = [&](const SegmentArrays& seg, const std::string& where) {
    for (size_t b = 0; b < Blocks(seg.n); ++b) {
      const size_t first = b * kBlockRows;
      if (BlockSum(seg, first, std::min(kBlockRows, seg.n - first)) != BlockSumAt(seg, b))
        damaged.push_back("fails the checksum of rows " + std::to_string(first) + " to " +
                          std::to_string(std::min(first + kBlockRows, seg.n) - 1) + " of its " + where);
    }
  };
  check(main_, "main segment");
  for (size_t i = 0; i < chunks_.size(); ++i) check(chunks_[i], "delta chunk " + std::to_string(i + 1));
  return damaged;
}

std::span<char> IndexFile::mutable_structure() const {
  if (!writable_) return {};
  return {map_ + (structure_.data() - map_), structure_.size()};
}

Result<std::string> IndexFile::Reseal(std::span<const std::pair<int, size_t>> dirty, int64_t generation,
                                      bool structure_changed) {
  if (!writable_) return Fail(ErrorCode::kIo, "index file " + path_.string() + " is mapped read-only");
  if (structure_changed) Put(map_ + 72, Hash(structure_.data(), structure_.size()), 8);
  std::vector<bool> touched(chunks_.size() + 1, false);
  for (const auto& [segment, block] : dirty) {
    const SegmentArrays& seg = segment < 0 ? main_ : chunks_.at(static_cast<size_t>(segment));
    const size_t first = block * kBlockRows;
    SetBlockSum(seg, block, BlockSum(seg, first, std::min(kBlockRows, seg.n - first)));
    touched[static_cast<size_t>(segment + 1)] = true;
  }
  for (size_t i = 0; i < chunks_.size(); ++i) {
    if (!touched[i + 1]) continue;
    char* at = map_ + chunk_offsets_[i];
    Put(at + 32, Hash(chunks_[i].sums, 8 * Blocks(chunks_[i].n)), 8);
    Put(at + kChunkSumAt, Hash(at, kChunkSumAt), 8);
  }
  Put(map_ + 64, Hash(main_.sums, 8 * Blocks(main_.n)), 8);
  Put(map_ + 16, static_cast<uint64_t>(generation), 8);
  const uint64_t sum = MainHeaderSum(map_, header_size_);
  Put(map_ + kHeaderSumAt, sum, 8);
  header_.stamp.generation = generation_ = generation;
  if (::msync(map_, mapped_, MS_SYNC) != 0)
    return Fail(ErrorCode::kIo, "cannot flush index file " + path_.string() + ": " + std::strerror(errno));
  return ChecksumText(sum);
}

Result<int64_t> IndexFile::AppendChunk(std::span<const int64_t> ids, std::span<const float> rows,
                                       int64_t generation, int64_t max_face_id) {
  const std::string failed = "cannot append to index file " + path_.string() + ": ";
  if (!writable_) return Fail(ErrorCode::kIo, failed + "it is mapped read-only");
  const std::string chunk = ChunkBytes(ids, rows, generation, max_face_id);
  // A killed append may have left bytes past the committed length: they are cut, never read.
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) return Fail(ErrorCode::kIo, failed + std::strerror(errno));
  size_t done = 0;
  while (done < chunk.size()) {
    const ssize_t w = ::pwrite(fd_, chunk.data() + done, chunk.size() - done, static_cast<off_t>(size_ + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Fail(ErrorCode::kIo, failed + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd_) != 0) return Fail(ErrorCode::kIo, failed + std::strerror(errno));
  size_ += chunk.size();  // the committed length grows; the mapping keeps its old length
  return static_cast<int64_t>(size_);
}

}  // namespace facesearch
