// facesearch's library API: what a corpus holds (info, duplicates, input issues, export) and
// keeping its index (reindex, compact).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/config.h"

namespace facesearch {

struct CorpusInfo {
  std::filesystem::path corpus_dir;
  std::filesystem::path database;
  CorpusCounts counts;
  std::string model_identity;
  std::string embedding_mode;  // "plain", "flip", "jitter:N", "sface" (facesearch index --embedding)
  std::string model;           // the embedding model: "dlib" or "sface" (facesearch index --model)
  int schema_version = 0;
  int64_t generation = 0;
  std::string index_state;  // "fresh", "lagging", "missing", "corrupt"
  int64_t index_vectors = 0;
  int64_t index_bytes = 0;         // the index file's size
  std::string index_kind;          // of the index file: "exact", "int8", "ivf", "ivfpq", "hnsw"
  std::string index_setting;       // the corpus's setting (`reindex`), e.g. "kind=ivfpq nlist=0 ..."
  // What a process that opens the index file holds, as of the last save: resident (read onto the
  // heap: FAISS centroids and codebooks, an HNSW graph and its copy of the vectors) and mapped
  // (the file's pages, read on demand: float vectors and ids, int8 codes, IVF lists); memory is
  // their sum.
  int64_t index_memory_bytes = 0;
  int64_t index_resident_bytes = 0;
  int64_t index_mapped_bytes = 0;
  // The last `reindex`: its parameters as built, recall@10 against exact search, and when.
  std::string index_params;
  std::optional<double> index_recall_at_10;
  int index_recall_queries = 0;
  double index_build_seconds = 0;
  int64_t index_built_generation = 0;
  std::string index_built_at;
};

// Reads the corpus without changing it and without needing model files. Errors: kNotFound when
// there is no corpus at config.corpus_dir.
Result<CorpusInfo> GetCorpusInfo(const CorpusConfig& config);

// The number of faces in the corpus, read cheaply (no image scan, no models, no index): what
// `query` sizes its default threshold by. 0 when there is no corpus. Errors: kDatabase, kCorrupt.
Result<int64_t> CorpusFaceCount(const CorpusConfig& config);

// ---- reindex -----------------------------------------------------------------------------------

// Which vector index a corpus searches with (`facesearch reindex`). Parameters left at 0 take the
// default for the corpus size at each build (src/index/index_spec.h; docs/usage.md "Large corpora: reindex").
struct ReindexOptions {
  std::string kind = "auto";  // auto, exact, int8, ivf, ivfpq, hnsw
  int nlist = 0, nprobe = 0;  // ivf, ivfpq
  int pq_m = 0, pq_bits = 0;  // ivfpq
  int hnsw_m = 0, ef_construction = 0, ef_search = 0;  // hnsw
  int rerank = 0;             // every kind but exact: candidates re-ranked with exact distances
  int recall_queries = 200;   // corpus vectors used as probes for the recall@10 measurement
};

struct ReindexSummary {
  std::string kind;     // as built (auto resolved)
  std::string setting;  // what the corpus now records (FormatIndexSpec)
  std::string params;   // the parameters as built
  int64_t faces = 0;
  double recall_at_10 = 1.0;  // against exact search, own face excluded (VectorIndex::MeasureRecall)
  int recall_queries = 0;
  double build_seconds = 0;
  int64_t resident_bytes = 0, mapped_bytes = 0;  // as CorpusInfo's index_resident_bytes, index_mapped_bytes
  int64_t generation = 0;
};

// Records the index setting in the corpus (every later rebuild, catch-up and repair keeps it),
// rebuilds and saves the index, measures its recall@10 and records that too. Takes the corpus
// write lock; needs no model files. Errors: kInvalidArgument (kind or parameters), kNotFound,
// kIndex, kDatabase, kIo.
Result<ReindexSummary> ReindexCorpus(const CorpusConfig& config, const ReindexOptions& options);

// What `facesearch compact` did: the index file's rows before (main segment, delta chunks and rows
// erased in place) and after (the live faces, all in the main segment).
struct CompactSummary {
  std::string kind;
  int64_t rows_before = 0;
  int64_t delta_rows_before = 0;
  int64_t faces = 0;
  int64_t bytes_before = 0, bytes_after = 0;
  bool retrained = false;  // the structure was trained anew (a small corpus), not kept
  double seconds = 0;
};

// Folds the index file's delta chunks (rows appended by `index` since the last compaction) into a
// new main segment, dropping rows erased in place, and rebuilds its structure (int8 codes, FAISS
// lists; coarse centroids and codebooks kept from kKeepTrainingFrom faces, trained anew below),
// with progress on stderr. `index` does the same by itself once the delta passes 10% of the main
// segment. Takes the corpus write lock; needs no model files. Errors: kNotFound, kIndex,
// kDatabase, kIo.
Result<CompactSummary> CompactCorpus(const CorpusConfig& config);
// Near-duplicate images: copies of one picture (resized, recompressed, lightly cropped), found by
// their perceptual hashes (`info --duplicates`). Exact copies never get here: identical bytes are
// one image (SHA-256).
struct DuplicateGroup {
  std::vector<int64_t> image_ids;  // ascending
  std::vector<std::string> images;  // their paths (or URLs), in the same order
};
struct DuplicateReport {
  int64_t images_hashed = 0;    // images whose hash is known
  int64_t images_unhashed = 0;  // indexed before schema v7 and not read again by `index` since
  std::vector<DuplicateGroup> groups;  // two or more images each, in order of their first image
};
// Reads the corpus without changing it and without needing model files. Every image's hash is
// read (O(images)), then grouped by multi-index hashing. Errors: kNotFound without a corpus.
Result<DuplicateReport> FindDuplicateImages(const CorpusConfig& config);

// Calls fn for every input that failed (image rows with status error) or was skipped before its
// content was read (robots.txt, noimageindex, malformed manifest rows), oldest first. Read-only.
Status ListInputIssues(const CorpusConfig& config, const std::function<void(const InputIssue&)>& fn);

// Calls fn for every face in the corpus, in face id order (no model files needed). Appends the
// export's audit record first (`xmp`: the faces go to XMP sidecars, said in its params), so it
// needs write access to the corpus.
Status ExportFaces(const CorpusConfig& config, const std::function<void(const FaceRecord&)>& fn,
                   bool xmp = false);

}  // namespace facesearch
