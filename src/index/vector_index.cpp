// The segments of exact float vectors (main, delta chunks, rows added in memory), delegating every
// kind-specific step to the candidate structure (candidates.h) and the file format to
// index_file.h. FAISS calls are wrapped in candidates*.cpp; nothing thrown leaves src/index/.
#include "index/vector_index.h"

#include <faiss/impl/io.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <unordered_set>

#include "index/candidates.h"

namespace facesearch {
namespace {

std::vector<std::vector<Hit>> ToHits(const Neighbors& found) {
  std::vector<std::vector<Hit>> result(found.size());
  for (size_t q = 0; q < found.size(); ++q) {
    result[q].reserve(found[q].size());
    // Squared L2 from the kernels; never negative, unlike FAISS's expanded form. Erased rows
    // (id -1, far from every probe) are only found when fewer live rows than k exist.
    for (const auto& f : found[q])
      if (f.id >= 0) result[q].push_back({f.id, std::sqrt(f.dist2)});
  }
  return result;
}

// The k nearest of several segments' answers per query, nearest first (ties by id).
Neighbors Merge(std::vector<Neighbors> parts, size_t nq, int k) {
  if (parts.size() == 1) return std::move(parts.front());
  Neighbors merged(nq);
  for (size_t q = 0; q < nq; ++q) {
    for (auto& part : parts) merged[q].insert(merged[q].end(), part[q].begin(), part[q].end());
    std::sort(merged[q].begin(), merged[q].end(), [](const search::Neighbor& a, const search::Neighbor& b) {
      return a.dist2 != b.dist2 ? a.dist2 < b.dist2 : a.id < b.id;
    });
    if (merged[q].size() > static_cast<size_t>(k)) merged[q].resize(static_cast<size_t>(k));
  }
  return merged;
}

void ScrubRow(const SegmentArrays& seg, size_t row) {
  seg.ids[row] = -1;
  std::fill_n(seg.rows + row * kEmbeddingDim, kEmbeddingDim, kErasedValue);
}

// Fixed seed: the same corpus and parameters give the same structure and the same recall figure.
constexpr uint64_t kRecallSeed = 20261126;

}  // namespace

VectorIndex::VectorIndex(std::unique_ptr<CandidateStructure> candidates) : candidates_(std::move(candidates)) {}

VectorIndex::~VectorIndex() = default;

std::unique_ptr<VectorIndex> VectorIndex::CreateEmpty(const IndexSpec& spec) {
  return std::unique_ptr<VectorIndex>(new VectorIndex(CandidateStructure::Create(spec)));
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::Load(const std::filesystem::path& path, int64_t expected_size,
                                                       const std::string& expected_checksum,
                                                       const IndexStamp& expected, const IndexSpec& params,
                                                       bool writable) {
  FS_ASSIGN(std::shared_ptr<IndexFile> file,
            IndexFile::Open(path, expected_size, expected_checksum, expected, writable));
  const IndexFileHeader& header = file->header();
  // The kind is the file's; the corpus setting's parameters apply when they name the same kind.
  const IndexSpec spec = params.kind == header.kind ? params : IndexSpec{.kind = header.kind};
  auto loaded = std::unique_ptr<VectorIndex>(new VectorIndex(CandidateStructure::Create(spec)));
  loaded->main_ = file->main();
  loaded->chunks_ = file->chunks();
  loaded->max_id_ = file->max_face_id();
  loaded->checksum_ = expected_checksum;
  loaded->rewrite_ = false;
  std::string problem;
  FS_TRY(Guard(ErrorCode::kCorrupt, "cannot read index file " + path.string(), [&] {
    problem = loaded->candidates_->Load(loaded->MainView(), header, file->structure(), file->main().codes);
  }));
  if (!problem.empty()) return Fail(ErrorCode::kCorrupt, "index file " + path.string() + " " + problem);
  loaded->file_ = std::move(file);
  FS_TRY(loaded->Prepare(/*train=*/false));  // training is the caller's decision
  return loaded;
}

search::FlatView VectorIndex::MainView() const { return {main_.rows, main_.ids, main_.n}; }

std::vector<search::FlatView> VectorIndex::Segments() const {
  std::vector<search::FlatView> segments;
  if (main_.n > 0) segments.push_back(MainView());
  for (const SegmentArrays& c : chunks_) segments.push_back({c.rows, c.ids, c.n});
  if (!new_ids_.empty()) segments.push_back({new_rows_.data(), new_ids_.data(), new_ids_.size()});
  return segments;
}

Status VectorIndex::Add(std::span<const int64_t> ids, std::span<const float> vectors) {
  if (vectors.size() != ids.size() * kEmbeddingDim)
    return Fail(ErrorCode::kInvalidArgument,
                "index add: " + std::to_string(ids.size()) + " ids but " +
                    std::to_string(vectors.size()) + " floats");
  int64_t last = max_id_;
  for (int64_t id : ids) {
    if (id <= last)
      return Fail(ErrorCode::kInvalidArgument,
                  "face id " + std::to_string(id) + " is not above the ids already in the vector index (" +
                      std::to_string(last) + "): faces are added in id order, once");
    last = id;
  }
  new_ids_.insert(new_ids_.end(), ids.begin(), ids.end());
  new_rows_.insert(new_rows_.end(), vectors.begin(), vectors.end());
  max_id_ = last;
  return Ok();
}

void VectorIndex::Reserve(int64_t rows) {
  const size_t total = new_ids_.size() + static_cast<size_t>(std::max<int64_t>(rows, 0));
  new_ids_.reserve(total);
  new_rows_.reserve(total * kEmbeddingDim);
}

Result<int64_t> VectorIndex::Erase(std::span<const int64_t> face_ids) {
  const std::unordered_set<int64_t> wanted(face_ids.begin(), face_ids.end());
  int64_t erased = 0;
  std::vector<int64_t> main_rows;
  // A linear pass over the ids (8 bytes a row: milliseconds at 1M), no lookup table kept.
  auto sweep = [&](const SegmentArrays& seg, int segment) {
    for (size_t row = 0; row < seg.n; ++row) {
      if (seg.ids[row] < 0 || !wanted.count(seg.ids[row])) continue;
      ScrubRow(seg, row);
      ++erased;
      if (segment == -1) main_rows.push_back(static_cast<int64_t>(row));
      if (segment >= -1 && file_) dirty_.emplace_back(segment, row / kBlockRows);
      if (segment == -2 && row < new_saved_) rewrite_ = true;  // appended already: a whole file drops it
    }
  };
  sweep(main_, -1);
  for (size_t i = 0; i < chunks_.size(); ++i) sweep(chunks_[i], static_cast<int>(i));
  sweep(SegmentArrays{new_ids_.data(), new_rows_.data(), nullptr, nullptr, new_ids_.size()}, -2);
  // The structure's file section is scrubbed in place too, when this index maps it writable and
  // will not write a whole file anyway.
  const std::span<char> section =
      file_ && !rewrite_ && !main_rows.empty() ? file_->mutable_structure() : std::span<char>{};
  FS_ASSIGN(const StructureErasure outcome, candidates_->EraseRows(main_rows, section));
  if (outcome == StructureErasure::kWholeFile) rewrite_ = true;
  if (outcome == StructureErasure::kInPlace) structure_dirty_ = true;
  std::sort(dirty_.begin(), dirty_.end());
  dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
  return erased;
}

int64_t VectorIndex::delta_rows() const {
  int64_t n = static_cast<int64_t>(new_ids_.size());
  for (const SegmentArrays& c : chunks_) n += static_cast<int64_t>(c.n);
  return n;
}

bool VectorIndex::compaction_due(int64_t more_rows) const {
  const int64_t delta = delta_rows() + more_rows;
  if (delta == 0) return false;
  return main_.n == 0 || delta > std::max(kCompactMinRows, main_rows() * kCompactRatioPercent / 100);
}

Status VectorIndex::Compact(bool keep_training, ProgressSink* progress) {
  if (main_.n == 0 && chunks_.empty()) {  // everything is in memory already: no copy
    std::vector<int64_t> ids = std::move(new_ids_);
    std::vector<float> vectors = std::move(new_rows_);
    size_t kept = 0;
    for (size_t r = 0; r < ids.size(); ++r) {
      if (ids[r] < 0) continue;
      ids[kept] = ids[r];
      std::copy_n(vectors.begin() + static_cast<std::ptrdiff_t>(r * kEmbeddingDim), kEmbeddingDim,
                  vectors.begin() + static_cast<std::ptrdiff_t>(kept * kEmbeddingDim));
      ++kept;
    }
    ids.resize(kept);
    vectors.resize(kept * kEmbeddingDim);
    return Install(std::move(ids), std::move(vectors), keep_training);
  }
  const std::vector<search::FlatView> segments = Segments();
  size_t rows = 0;
  for (const search::FlatView& s : segments) rows += s.n;
  if (progress) progress->Start("compacting the vector index", static_cast<int64_t>(rows));
  std::vector<int64_t> ids;
  std::vector<float> vectors;
  ids.reserve(rows);
  vectors.reserve(rows * kEmbeddingDim);
  size_t done = 0;
  for (const search::FlatView& s : segments) {
    for (size_t r = 0; r < s.n; ++r) {
      if (s.ids[r] < 0) continue;  // erased: dropped for good
      ids.push_back(s.ids[r]);
      vectors.insert(vectors.end(), s.rows + r * kEmbeddingDim, s.rows + (r + 1) * kEmbeddingDim);
      if (progress && ++done % 65536 == 0) progress->Advance(static_cast<int64_t>(done));
    }
  }
  FS_TRY(Install(std::move(ids), std::move(vectors), keep_training));
  if (progress) progress->Finish();
  return Ok();
}

bool VectorIndex::CanCompactStreaming() const { return candidates_->CanRefillInBatches(); }

Result<SavedFile> VectorIndex::CompactToFile(const std::filesystem::path& path, const IndexStamp& stamp,
                                             const RowFeed& more, int64_t more_rows, ProgressSink* progress) {
  if (!CanCompactStreaming() || more_rows < 0 || (more_rows > 0 && !more))
    return Fail(ErrorCode::kIndex, "this index cannot be compacted by streaming its rows");
  const std::vector<search::FlatView> segments = Segments();
  int64_t live = 0;
  for (const search::FlatView& s : segments)
    live += std::count_if(s.ids, s.ids + s.n, [](int64_t id) { return id >= 0; });
  const int64_t total = live + more_rows;
  IndexFileHeader header;
  header.stamp = stamp;
  header.kind = spec().kind;
  FS_ASSIGN(StreamedIndexFile out, StreamedIndexFile::Create(path, header, total));
  if (progress) progress->Start("compacting the vector index", total);
  // Batches of whole checksum blocks (32 MiB of floats): the file's blocks are summed as written.
  constexpr size_t kBatchRows = 16 * kBlockRows;
  std::vector<int64_t> ids;
  std::vector<float> rows;
  ids.reserve(kBatchRows);
  rows.reserve(kBatchRows * kEmbeddingDim);
  int64_t done = 0, last_id = 0;
  auto flush = [&]() -> Status {
    if (ids.empty()) return Ok();
    FS_TRY(out.Append(ids, rows));
    FS_TRY(candidates_->RefillBatch(rows.data(), static_cast<int64_t>(ids.size()), done));
    done += static_cast<int64_t>(ids.size());
    ids.clear();
    rows.clear();
    if (progress) progress->Advance(done);
    return Ok();
  };
  auto push = [&](int64_t id, const float* row) -> Status {
    if (id <= last_id)
      return Fail(ErrorCode::kInvalidArgument, "compaction: face id " + std::to_string(id) +
                                                   " is not above the ids before it (" + std::to_string(last_id) + ")");
    last_id = id;
    ids.push_back(id);
    rows.insert(rows.end(), row, row + kEmbeddingDim);
    return ids.size() == kBatchRows ? flush() : Ok();
  };
  // The old file's pages go back once read (IndexFile::ReleasePages): 16.8 GB of them at 30M.
  auto release = [&](const search::FlatView& s, size_t from, size_t to) {
    if (!file_ || to <= from) return;
    file_->ReleasePages(s.ids + from, (to - from) * sizeof(int64_t));
    file_->ReleasePages(s.rows + from * kEmbeddingDim, (to - from) * kEmbeddingDim * sizeof(float));
  };
  auto stream = [&]() -> Status {
    for (const search::FlatView& s : segments) {
      size_t released = 0;
      for (size_t r = 0; r < s.n; ++r) {
        if (s.ids[r] >= 0) FS_TRY(push(s.ids[r], s.rows + r * kEmbeddingDim));
        if (r + 1 - released == kBatchRows) {
          release(s, released, r + 1);
          released = r + 1;
        }
      }
      release(s, released, s.n);
    }
    last_id = std::max(last_id, max_id_);  // rows from `more` come after every id ever added
    const RowSink sink = [&](std::span<const int64_t> more_ids, std::span<const float> more_vectors) -> Status {
      if (more_vectors.size() != more_ids.size() * kEmbeddingDim)
        return Fail(ErrorCode::kInvalidArgument, "compaction: a batch of rows of the wrong size");
      for (size_t i = 0; i < more_ids.size(); ++i) FS_TRY(push(more_ids[i], more_vectors.data() + i * kEmbeddingDim));
      return Ok();
    };
    if (more_rows > 0) FS_TRY(more(sink));
    return flush();
  };
  candidates_->Reset(/*keep_training=*/true);
  faiss::VectorIOWriter structure;
  Status written = stream();
  if (written) {
    candidates_->EndRefill();
    written = Guard(ErrorCode::kIndex, "cannot serialise the vector index", [&] { candidates_->Write(structure); });
  }
  // Load reads the structure from the new file: never two copies of it at once (1.2 GB at 30M).
  candidates_->Reset(/*keep_training=*/false);
  FS_TRY(written);
  FS_ASSIGN(const SavedFile saved,
            out.Finish(std::string_view(reinterpret_cast<const char*>(structure.data.data()), structure.data.size()),
                       std::max(last_id, max_id_)));
  std::vector<uint8_t>().swap(structure.data);
  if (progress) progress->Finish();
  FS_ASSIGN(std::unique_ptr<VectorIndex> mapped,
            Load(path, saved.size, saved.checksum, stamp, spec(), /*writable=*/true));
  Adopt(*mapped);
  return saved;
}

void VectorIndex::Adopt(VectorIndex& other) {
  candidates_ = std::move(other.candidates_);
  file_ = std::move(other.file_);
  checksum_ = std::move(other.checksum_);
  own_ids_ = std::move(other.own_ids_);
  own_rows_ = std::move(other.own_rows_);
  main_ = other.main_;
  chunks_ = std::move(other.chunks_);
  new_ids_ = std::move(other.new_ids_);
  new_rows_ = std::move(other.new_rows_);
  new_saved_ = other.new_saved_;
  dirty_ = std::move(other.dirty_);
  structure_dirty_ = other.structure_dirty_;
  rewrite_ = other.rewrite_;
  max_id_ = other.max_id_;
}

Status VectorIndex::Install(std::vector<int64_t> ids, std::vector<float> vectors, bool keep_training) {
  candidates_->Reset(keep_training);
  own_ids_ = std::move(ids);
  own_rows_ = std::move(vectors);
  main_ = SegmentArrays{own_ids_.data(), own_rows_.data(), nullptr, nullptr, own_ids_.size()};
  chunks_.clear();
  new_ids_.clear();
  new_rows_.clear();
  new_saved_ = 0;
  dirty_.clear();
  structure_dirty_ = false;
  file_.reset();
  rewrite_ = true;
  return Ok();
}

Status VectorIndex::Prepare(bool train) {
  if (main_.n == 0 && chunks_.empty() && !new_ids_.empty()) FS_TRY(Compact(/*keep_training=*/false));
  if (main_.n == 0) return Ok();
  return candidates_->Prepare(MainView(), train);
}

bool VectorIndex::needs_training() const { return candidates_->needs_training(main_rows()); }

bool VectorIndex::prepared() const { return candidates_->prepared(); }

const IndexSpec& VectorIndex::spec() const { return candidates_->spec(); }

void VectorIndex::SetProbes(int nprobe) { candidates_->SetProbes(nprobe); }

// Exact search with our SIMD scan (src/search/) over the segments' own storage: FAISS's
// generic-x86-64 build is compute-bound here, ours runs at memory speed (docs/benchmarks.md).
Result<std::vector<Hit>> VectorIndex::Search(const Embedding& query, int k) const {
  FS_ASSIGN(auto hits, SearchBatch(std::span<const Embedding>(&query, 1), k));
  return std::move(hits.front());
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchExactBatch(std::span<const Embedding> queries,
                                                                    int k) const {
  std::vector<Neighbors> parts;
  for (const search::FlatView& s : Segments()) {
    FS_ASSIGN(Neighbors found, ExactNeighbors(s, queries, k));
    parts.push_back(std::move(found));
  }
  if (parts.empty() || k <= 0) return std::vector<std::vector<Hit>>(queries.size());
  return ToHits(Merge(std::move(parts), queries.size(), k));
}

Result<std::vector<std::vector<Hit>>> VectorIndex::SearchBatch(std::span<const Embedding> queries,
                                                               int k) const {
  // Until the structure is built (or with nothing to find) every search is exact.
  if (main_.n == 0 || k <= 0 || !candidates_->prepared()) return SearchExactBatch(queries, k);
  std::vector<Neighbors> parts;
  FS_ASSIGN(Neighbors main, candidates_->Search(MainView(), queries, k));
  parts.push_back(std::move(main));
  const std::vector<search::FlatView> segments = Segments();
  for (size_t i = 1; i < segments.size(); ++i) {  // the delta: scanned exactly
    FS_ASSIGN(Neighbors found, ExactNeighbors(segments[i], queries, k));
    parts.push_back(std::move(found));
  }
  return ToHits(Merge(std::move(parts), queries.size(), k));
}

Result<RecallMeasure> VectorIndex::MeasureRecall(int queries) const {
  const int64_t n = main_rows();
  RecallMeasure m;
  if (n < 2 || queries <= 0) return m;
  const size_t nq = static_cast<size_t>(std::min<int64_t>(queries, n));
  // nq distinct main rows at random (fixed seed).
  std::mt19937_64 rng(kRecallSeed);
  std::vector<int64_t> picked;
  if (static_cast<int64_t>(nq) == n) {
    picked.resize(nq);
    std::iota(picked.begin(), picked.end(), int64_t{0});
  } else {
    std::unordered_set<int64_t> seen;
    std::uniform_int_distribution<int64_t> pick(0, n - 1);
    while (picked.size() < nq)
      if (int64_t r = pick(rng); seen.insert(r).second) picked.push_back(r);
  }
  std::vector<Embedding> probes(nq);
  for (size_t i = 0; i < nq; ++i)
    std::copy_n(main_.rows + static_cast<size_t>(picked[i]) * kEmbeddingDim, kEmbeddingDim, probes[i].begin());
  constexpr int kAt = 10;
  FS_ASSIGN(auto exact, SearchExactBatch(probes, kAt + 1));
  FS_ASSIGN(auto approx, SearchBatch(probes, kAt + 1));
  int64_t truth = 0, found = 0;
  for (size_t i = 0; i < nq; ++i) {
    const int64_t self = main_.ids[picked[i]];
    auto others = [&](std::vector<Hit>& hits) {
      std::erase_if(hits, [&](const Hit& h) { return h.face_id == self; });
      if (hits.size() > static_cast<size_t>(kAt)) hits.resize(kAt);
    };
    others(exact[i]);
    others(approx[i]);
    if (self < 0 || exact[i].empty()) continue;
    truth += static_cast<int64_t>(exact[i].size());
    // A face at the same distance as the exact 10th is as good an answer (ties among duplicates).
    std::unordered_set<int64_t> want;
    for (const Hit& h : exact[i]) want.insert(h.face_id);
    const float last = exact[i].back().distance;
    for (const Hit& h : approx[i]) found += (want.count(h.face_id) || h.distance <= last) ? 1 : 0;
  }
  m.queries = static_cast<int>(nq);
  m.recall_at_10 = truth == 0 ? 1.0 : static_cast<double>(found) / static_cast<double>(truth);
  return m;
}

Result<SavedFile> VectorIndex::Save(const std::filesystem::path& path, const IndexStamp& stamp) {
  if (!rewrite_ && file_ && file_->writable() && file_->path() == path) {
    const bool append = new_ids_.size() > new_saved_;
    if (!dirty_.empty() || structure_dirty_ || (!append && stamp.generation != file_->generation())) {
      FS_ASSIGN(checksum_, file_->Reseal(dirty_, stamp.generation, structure_dirty_));
      dirty_.clear();
      structure_dirty_ = false;
    }
    if (append) {
      const size_t from = new_saved_;
      FS_TRY(file_->AppendChunk(std::span<const int64_t>(new_ids_).subspan(from),
                                std::span<const float>(new_rows_).subspan(from * kEmbeddingDim),
                                stamp.generation, max_id_));
      new_saved_ = new_ids_.size();
    }
    return SavedFile{file_->size(), checksum_};
  }
  if (main_.n == 0 && delta_rows() > 0) FS_TRY(Compact(/*keep_training=*/false));  // a whole file: rows in main
  faiss::VectorIOWriter structure;
  FS_TRY(Guard(ErrorCode::kIndex, "cannot serialise the vector index", [&] { candidates_->Write(structure); }));
  IndexFileContents contents;
  contents.header.stamp = stamp;
  contents.header.max_face_id = max_id_;
  contents.header.kind = spec().kind;
  contents.ids = {main_.ids, main_.n};
  contents.rows = {main_.rows, main_.n * kEmbeddingDim};
  contents.codes = candidates_->Codes(contents.header);
  contents.structure = std::string_view(reinterpret_cast<const char*>(structure.data.data()), structure.data.size());
  // The delta goes along as one chunk: this write is whole, not a compaction.
  std::vector<int64_t> delta_ids;
  std::vector<float> delta_rows;
  const std::vector<search::FlatView> segments = Segments();
  for (size_t i = main_.n > 0 ? 1 : 0; i < segments.size(); ++i) {
    const search::FlatView& s = segments[i];
    delta_ids.insert(delta_ids.end(), s.ids, s.ids + s.n);
    delta_rows.insert(delta_rows.end(), s.rows, s.rows + s.n * kEmbeddingDim);
  }
  contents.delta_ids = delta_ids;
  contents.delta_rows = delta_rows;
  return WriteIndexFile(path, contents);
}

int64_t VectorIndex::ntotal() const { return main_rows() + delta_rows(); }

std::vector<int64_t> VectorIndex::ids() const {
  std::vector<int64_t> ids;
  for (const search::FlatView& s : Segments())
    std::copy_if(s.ids, s.ids + s.n, std::back_inserter(ids), [](int64_t id) { return id >= 0; });
  return ids;
}

std::vector<std::pair<int64_t, const float*>> VectorIndex::RowsOf(std::span<const int64_t> sorted_ids) const {
  std::vector<std::pair<int64_t, const float*>> found;
  for (const search::FlatView& s : Segments())
    for (size_t r = 0; r < s.n; ++r)
      if (s.ids[r] >= 0 && std::binary_search(sorted_ids.begin(), sorted_ids.end(), s.ids[r]))
        found.emplace_back(s.ids[r], s.rows + r * kEmbeddingDim);
  // Rows are in id order unless a file is damaged; then an id held twice gives its last row.
  auto by_id = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(found.begin(), found.end(), by_id);
  auto last = std::unique(found.rbegin(), found.rend(), [](const auto& a, const auto& b) { return a.first == b.first; });
  found.erase(found.begin(), last.base());
  return found;
}

IndexSpec VectorIndex::built_spec() const { return candidates_->built_spec(main_rows()); }

IndexFootprint VectorIndex::footprint() const {
  IndexFootprint f = candidates_->footprint(main_rows());
  f.mapped_bytes += ntotal() * static_cast<int64_t>(kEmbeddingDim * sizeof(float) + sizeof(int64_t));
  return f;
}

}  // namespace facesearch
