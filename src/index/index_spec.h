// Which vector index a corpus uses (`facesearch reindex --index KIND`) and with what parameters.
//
// Every kind keeps the exact float vectors (the IndexFlatL2 inside VectorIndex): they are the
// source for the exact re-rank, for the recall measurement and for rebuilds after deletions. The
// approximate kinds add a structure that only chooses candidates; the distances returned are
// always exact.
#pragma once

#include <cstdint>
#include <string>

#include "facesearch/error.h"

namespace facesearch {

enum class IndexKind : uint32_t {
  kExact = 0,  // our SIMD scan of the float vectors
  kInt8 = 1,   // search::Int8Index (8-bit codes, built at load) + exact re-rank
  kIvf = 2,    // FAISS IndexIVFFlat + exact re-rank
  kIvfPq = 3,  // FAISS IndexIVFPQ + exact re-rank
  kHnsw = 4,   // FAISS IndexHNSWFlat + exact re-rank
};
inline constexpr uint32_t kMaxIndexKind = 4;
const char* IndexKindName(IndexKind kind);  // "exact", "int8", "ivf", "ivfpq", "hnsw"
// Errors: kInvalidArgument naming the accepted kinds.
Result<IndexKind> ParseIndexKind(const std::string& text);
bool IsFaissApproximate(IndexKind kind);  // ivf, ivfpq, hnsw

// Parameters; 0 means "the default for the corpus size at build time" (DefaultsFor).
struct IndexSpec {
  IndexKind kind = IndexKind::kExact;
  int nlist = 0;            // ivf, ivfpq: inverted lists (k-means centroids)
  int nprobe = 0;           // ivf, ivfpq: lists visited per query
  int pq_m = 0;             // ivfpq: sub-quantizers (bytes per code at 8 bits); divides 128
  int pq_bits = 0;          // ivfpq: bits per sub-quantizer code, 1..8
  int hnsw_m = 0;           // hnsw: graph degree
  int ef_construction = 0;  // hnsw
  int ef_search = 0;        // hnsw
  int rerank = 0;           // int8, ivf, ivfpq, hnsw: candidates re-ranked exactly (>= k used)
  bool operator==(const IndexSpec&) const = default;
};

// "kind=ivfpq nlist=0 nprobe=64 ..." with only the fields the kind uses (the meta value).
std::string FormatIndexSpec(const IndexSpec& spec);
// The parameters alone, e.g. "nlist=1024 nprobe=64 pq_m=32 pq_bits=8 rerank=100" ("" for exact).
std::string FormatIndexParams(const IndexSpec& spec);
// Inverse of FormatIndexSpec. Errors: kInvalidArgument (unknown kind or key, bad number).
Result<IndexSpec> ParseIndexSpec(const std::string& text);
// Checks ranges (pq_m divides 128, pq_bits 1..8, counts positive or 0). Errors: kInvalidArgument.
Status ValidateIndexSpec(const IndexSpec& spec);

// `auto`: exact below kAutoInt8From faces, int8 below kAutoIvfPqFrom, ivfpq from there
// (docs/benchmarks.md "Search": exact 62 ms / int8 27 ms per query at 1M, IVF-PQ + re-rank
// 1.6 ms at 1M and 5.9 ms at 10M with recall@10 >= 0.987).
inline constexpr int64_t kAutoInt8From = 200'000;
inline constexpr int64_t kAutoIvfPqFrom = 2'000'000;
IndexKind AutoIndexKind(int64_t faces);

// `spec` with every 0 parameter replaced by its default for a corpus of `n` vectors, and nlist /
// pq_bits lowered where n is too small to train them (FAISS's k-means wants >= 39 points per
// centroid). The result is what a build uses.
IndexSpec EffectiveIndexSpec(const IndexSpec& spec, int64_t n);

}  // namespace facesearch
