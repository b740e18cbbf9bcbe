// The candidate structure interface, the factory, and the two kinds without FAISS: exact (no
// structure) and int8 (search::Int8Index codes rebuilt from the floats).
#include "index/candidates.h"

#include <cstring>

#include "search/int8_index.h"

namespace facesearch {

Status CandidateStructure::Prepare(const search::FlatView& /*flat*/, bool /*train*/) { return Ok(); }

bool CandidateStructure::needs_training(int64_t /*n*/) const { return false; }

void CandidateStructure::Write(faiss::IOWriter& /*out*/) const {}

std::string CandidateStructure::Load(const search::FlatView& /*flat*/, const IndexFileHeader& header,
                                     std::string_view structure, uint8_t* /*codes*/) {
  if (!structure.empty() || header.has_codes) return "has a section its kind does not have";
  return "";
}

Result<Neighbors> ExactNeighbors(const search::FlatView& flat, std::span<const Embedding> queries, int k) {
  static_assert(sizeof(Embedding) == kEmbeddingDim * sizeof(float));  // contiguous rows
  Neighbors found;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot search the vector index", [&] {
    found = search::ExactSearchBatch(flat, queries.empty() ? nullptr : queries.front().data(),
                                     queries.size(), k);
  }));
  return found;
}

namespace {

// exact: no structure; every search scans the float vectors.
class ExactCandidates final : public CandidateStructure {
 public:
  explicit ExactCandidates(const IndexSpec& spec) : CandidateStructure(spec) {}
  bool CanRefillInBatches() const override { return true; }
  Result<Neighbors> Search(const search::FlatView& flat, std::span<const Embedding> queries,
                           int k) const override {
    return ExactNeighbors(flat, queries, k);
  }
};

// int8: 8-bit codes of the flat rows, scanned for candidates and re-ranked exactly by
// search::Int8Index itself. The codes borrow the rows, so an append drops them and Prepare
// encodes every row again (O(n), no training).
class Int8Candidates final : public CandidateStructure {
 public:
  explicit Int8Candidates(const IndexSpec& spec) : CandidateStructure(spec) {}

  void Reset(bool /*keep_training*/) override { codes_.reset(); }

  Status Prepare(const search::FlatView& flat, bool /*train*/) override {
    if (codes_) return Ok();
    return Guard(ErrorCode::kIndex, "cannot build the int8 codes",
                 [&] { codes_ = std::make_unique<search::Int8Index>(search::Int8Index::Build(flat)); });
  }

  bool prepared() const override { return codes_ != nullptr; }

  Result<Neighbors> Search(const search::FlatView& flat, std::span<const Embedding> queries,
                           int k) const override {
    const int rerank = EffectiveIndexSpec(spec_, static_cast<int64_t>(flat.n)).rerank;
    Neighbors found;
    FS_TRY(Guard(ErrorCode::kIndex, "cannot search the int8 index", [&] {
      found = codes_->SearchBatch(queries.empty() ? nullptr : queries.front().data(), queries.size(), k,
                                 rerank);
    }));
    return found;
  }

  IndexFootprint footprint(int64_t /*n*/) const override {  // the codes are the file's; the ranges are read
    if (!codes_) return {};
    return {static_cast<int64_t>(2 * kEmbeddingDim * sizeof(float)), static_cast<int64_t>(codes_->code_bytes())};
  }

  std::span<const uint8_t> Codes(IndexFileHeader& header) const override {
    if (!codes_) return {};
    header.code_offset = codes_->offset();
    header.code_step = codes_->step();
    return {codes_->codes(), codes_->code_bytes()};
  }

  std::string Load(const search::FlatView& flat, const IndexFileHeader& header, std::string_view structure,
                   uint8_t* codes) override {
    if (!structure.empty()) return "has a section its kind does not have";
    if (header.has_codes) codes_ = std::make_unique<search::Int8Index>(
        search::Int8Index::Borrow(flat, codes, header.code_offset.data(), header.code_step));
    return "";
  }

  // The codes of an erased row would still be a coarse copy of the face's embedding.
  Result<StructureErasure> EraseRows(std::span<const int64_t> rows, std::span<char> /*structure*/) override {
    if (codes_)
      for (int64_t row : rows) std::memset(codes_->mutable_codes(static_cast<size_t>(row)), 0, kEmbeddingDim);
    return StructureErasure::kUntouched;
  }

 private:
  std::unique_ptr<search::Int8Index> codes_;  // over the flat rows, when current
};

}  // namespace

std::unique_ptr<CandidateStructure> CandidateStructure::Create(const IndexSpec& spec) {
  switch (spec.kind) {
    case IndexKind::kExact: return std::make_unique<ExactCandidates>(spec);
    case IndexKind::kInt8: return std::make_unique<Int8Candidates>(spec);
    case IndexKind::kIvf:
    case IndexKind::kIvfPq:
    case IndexKind::kHnsw: return CreateFaissCandidates(spec);
  }
  return std::make_unique<ExactCandidates>(spec);
}

}  // namespace facesearch
