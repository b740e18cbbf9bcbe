#include "index/index_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <string>

#include "facesearch/types.h"

namespace facesearch {

const char* IndexKindName(IndexKind kind) {
  switch (kind) {
    case IndexKind::kExact: return "exact";
    case IndexKind::kInt8: return "int8";
    case IndexKind::kIvf: return "ivf";
    case IndexKind::kIvfPq: return "ivfpq";
    case IndexKind::kHnsw: return "hnsw";
  }
  return "exact";
}

Result<IndexKind> ParseIndexKind(const std::string& text) {
  for (uint32_t k = 0; k <= kMaxIndexKind; ++k)
    if (text == IndexKindName(static_cast<IndexKind>(k))) return static_cast<IndexKind>(k);
  return Fail(ErrorCode::kInvalidArgument,
              "index kind '" + text + "' is not one of auto, exact, int8, ivf, ivfpq, hnsw");
}

bool IsFaissApproximate(IndexKind kind) {
  return kind == IndexKind::kIvf || kind == IndexKind::kIvfPq || kind == IndexKind::kHnsw;
}

namespace {

struct Field {
  const char* name;
  int IndexSpec::*member;
  bool (*used)(IndexKind);
};

bool IsIvf(IndexKind k) { return k == IndexKind::kIvf || k == IndexKind::kIvfPq; }
bool IsPq(IndexKind k) { return k == IndexKind::kIvfPq; }
bool IsHnsw(IndexKind k) { return k == IndexKind::kHnsw; }
bool Reranks(IndexKind k) { return k != IndexKind::kExact; }

constexpr Field kFields[] = {
    {"nlist", &IndexSpec::nlist, IsIvf},
    {"nprobe", &IndexSpec::nprobe, IsIvf},
    {"pq_m", &IndexSpec::pq_m, IsPq},
    {"pq_bits", &IndexSpec::pq_bits, IsPq},
    {"hnsw_m", &IndexSpec::hnsw_m, IsHnsw},
    {"ef_construction", &IndexSpec::ef_construction, IsHnsw},
    {"ef_search", &IndexSpec::ef_search, IsHnsw},
    {"rerank", &IndexSpec::rerank, Reranks},
};

}  // namespace

std::string FormatIndexParams(const IndexSpec& spec) {
  std::string out;
  for (const Field& f : kFields) {
    if (!f.used(spec.kind)) continue;
    if (!out.empty()) out += ' ';
    out += std::string(f.name) + "=" + std::to_string(spec.*f.member);
  }
  return out;
}

std::string FormatIndexSpec(const IndexSpec& spec) {
  std::string params = FormatIndexParams(spec);
  return std::string("kind=") + IndexKindName(spec.kind) + (params.empty() ? "" : " " + params);
}

Result<IndexSpec> ParseIndexSpec(const std::string& text) {
  IndexSpec spec;
  std::istringstream in(text);
  std::string token;
  bool have_kind = false;
  auto bad = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument, "index setting '" + text + "': " + why);
  };
  while (in >> token) {
    const size_t eq = token.find('=');
    if (eq == std::string::npos) return bad("'" + token + "' is not key=value");
    const std::string key = token.substr(0, eq), value = token.substr(eq + 1);
    if (key == "kind") {
      FS_ASSIGN(spec.kind, ParseIndexKind(value));
      have_kind = true;
      continue;
    }
    const Field* field = nullptr;
    for (const Field& f : kFields)
      if (key == f.name) field = &f;
    if (!field) return bad("unknown key '" + key + "'");
    int v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size()) return bad("'" + token + "' is not a number");
    spec.*field->member = v;
  }
  if (!have_kind) return bad("no kind");
  FS_TRY(ValidateIndexSpec(spec));
  return spec;
}

Status ValidateIndexSpec(const IndexSpec& spec) {
  for (const Field& f : kFields)
    if (spec.*f.member < 0 || spec.*f.member > 1'000'000)
      return Fail(ErrorCode::kInvalidArgument,
                  std::string("--") + f.name + " must be between 0 (default) and 1000000");
  if (spec.pq_m != 0 && (kEmbeddingDim % spec.pq_m != 0))
    return Fail(ErrorCode::kInvalidArgument, "--pq-m must divide the embedding dimension, " +
                                                 std::to_string(kEmbeddingDim) + " (1, 2, 4, 8, 16, 32, 64 or 128)");
  if (spec.pq_bits > 8)
    return Fail(ErrorCode::kInvalidArgument, "--pq-bits must be between 1 and 8");
  return Ok();
}

IndexKind AutoIndexKind(int64_t faces) {
  if (faces < kAutoInt8From) return IndexKind::kExact;
  if (faces < kAutoIvfPqFrom) return IndexKind::kInt8;
  return IndexKind::kIvfPq;
}

IndexSpec EffectiveIndexSpec(const IndexSpec& requested, int64_t n) {
  IndexSpec s = requested;
  auto or_default = [](int& v, int d) {
    if (v == 0) v = d;
  };
  // FAISS's k-means warns below 39 training points per centroid (and cannot train below 1).
  const int64_t trainable = std::max<int64_t>(1, n / 39);
  switch (s.kind) {
    case IndexKind::kExact: return IndexSpec{};
    case IndexKind::kInt8: or_default(s.rerank, 100); break;
    case IndexKind::kIvf:
    case IndexKind::kIvfPq: {
      // docs/benchmarks.md: IVF1024 at 1M, IVF2048 at 10M; nprobe 64 gave recall@10 0.987-0.995.
      or_default(s.nlist, n >= 4'000'000 ? 2048 : 1024);
      s.nlist = static_cast<int>(std::min<int64_t>(s.nlist, trainable));
      or_default(s.nprobe, 64);
      s.nprobe = std::min(s.nprobe, s.nlist);
      or_default(s.rerank, 100);
      if (s.kind == IndexKind::kIvfPq) {
        or_default(s.pq_m, 32);
        or_default(s.pq_bits, 8);
        int bits = 1;  // the largest code size whose 2^bits centroids have enough points
        while (bits < 8 && (int64_t{1} << (bits + 1)) <= trainable) ++bits;
        s.pq_bits = std::min(s.pq_bits, bits);
      }
      break;
    }
    case IndexKind::kHnsw:
      or_default(s.hnsw_m, 32);
      or_default(s.ef_construction, 40);
      or_default(s.ef_search, 128);
      or_default(s.rerank, 100);
      break;
  }
  return s;
}

}  // namespace facesearch
