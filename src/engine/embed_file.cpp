// The embed file format (facesearch/embed.h): writing it, and reading it back from a file that
// may be hostile. Every value is checked before it becomes a Face: a record that does not make
// sense refuses the whole file, so that nothing half-valid reaches a corpus.
#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <variant>

#include "common/base64.h"
#include "common/json.h"
#include "engine/corpus.h"
#include "face/models.h"
#include "facesearch/embed.h"

namespace facesearch {
namespace {

static_assert(std::endian::native == std::endian::little, "embeddings are written as little-endian float32");

constexpr const char* kHeaderKey = "facesearch_embed";
constexpr const char* kEndKey = "facesearch_embed_end";
constexpr size_t kEmbeddingBytes = sizeof(float) * kEmbeddingDim;
// Boxes and landmarks are pixel coordinates; the decoder caps images far below this.
constexpr int64_t kMaxCoordinate = int64_t{1} << 31;

Json ProvenanceJson(const Provenance& p) {
  return {{"page_url", p.page_url}, {"source", p.source}, {"captured_at", p.captured_at}, {"licence", p.licence},
          {"notes", p.notes}};
}

Json FaceJson(const Face& f, const FaceQuality& q) {
  Json landmarks = Json::array();
  for (const Point& p : f.landmarks) landmarks.push_back({p.x, p.y});
  std::string raw(kEmbeddingBytes, '\0');
  std::memcpy(raw.data(), f.embedding.data(), kEmbeddingBytes);
  return {{"box", {f.box.x, f.box.y, f.box.w, f.box.h}},
          {"landmarks", std::move(landmarks)},
          {"det_score", f.det_score},
          {"quality", {{"size", q.size}, {"sharpness", q.sharpness}, {"issues", q.issues}}},
          {"embedding", Base64Encode(raw)}};
}

// Reading: each helper returns nullopt (or false) for a value of the wrong type or range; the
// reader turns that into one message naming the line and the field.
class Fields {
 public:
  explicit Fields(const Json& j) : j_(j) {}
  bool Has(const char* key) const { return j_.is_object() && j_.contains(key); }
  std::optional<std::string> String(const char* key, bool required = true) const {
    if (!Has(key)) return required ? std::nullopt : std::optional<std::string>("");
    const Json& v = j_.at(key);
    if (!v.is_string()) return std::nullopt;
    return v.get<std::string>();
  }
  std::optional<int64_t> Int(const char* key, int64_t lo, int64_t hi) const {
    if (!Has(key)) return std::nullopt;
    return IntValue(j_.at(key), lo, hi);
  }
  std::optional<double> Number(const char* key) const {
    if (!Has(key) || !j_.at(key).is_number()) return std::nullopt;
    const double d = j_.at(key).get<double>();
    return std::isfinite(d) ? std::optional(d) : std::nullopt;
  }
  static std::optional<int64_t> IntValue(const Json& v, int64_t lo, int64_t hi) {
    if (!v.is_number_integer()) return std::nullopt;
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) return std::nullopt;
    const int64_t i = v.get<int64_t>();
    return i < lo || i > hi ? std::nullopt : std::optional(i);
  }

 private:
  const Json& j_;
};

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::optional<Embedding> DecodeEmbedding(const Json& v) {
  if (!v.is_string()) return std::nullopt;
  auto raw = Base64Decode(v.get_ref<const std::string&>());
  if (!raw || raw->size() != kEmbeddingBytes) return std::nullopt;
  Embedding e;
  std::memcpy(e.data(), raw->data(), kEmbeddingBytes);
  for (float x : e)
    if (!std::isfinite(x)) return std::nullopt;
  return e;
}

// One face object, or the name of the field that is wrong.
std::variant<std::pair<Face, FaceQuality>, std::string> ParseFace(const Json& j, DetectorKind detector) {
  if (!j.is_object()) return std::string("faces[] (not an object)");
  Face f;
  const Json* box = j.contains("box") ? &j.at("box") : nullptr;
  if (!box || !box->is_array() || box->size() != 4) return std::string("box (four integers)");
  std::array<int64_t, 4> b{};
  for (size_t i = 0; i < 4; ++i) {
    auto v = Fields::IntValue((*box)[i], i < 2 ? -kMaxCoordinate : 1, kMaxCoordinate);
    if (!v) return std::string("box (four integers, width and height positive)");
    b[i] = *v;
  }
  f.box = {b[0], b[1], b[2], b[3]};
  const Json* lm = j.contains("landmarks") ? &j.at("landmarks") : nullptr;
  if (!lm || !lm->is_array() || lm->size() != f.landmarks.size()) return std::string("landmarks (five [x,y] pairs)");
  for (size_t i = 0; i < f.landmarks.size(); ++i) {
    const Json& p = (*lm)[i];
    auto x = p.is_array() && p.size() == 2 ? Fields::IntValue(p[0], -kMaxCoordinate, kMaxCoordinate) : std::nullopt;
    auto y = p.is_array() && p.size() == 2 ? Fields::IntValue(p[1], -kMaxCoordinate, kMaxCoordinate) : std::nullopt;
    if (!x || !y) return std::string("landmarks (five [x,y] pairs)");
    f.landmarks[i] = {*x, *y};
  }
  Fields fields(j);
  auto score = fields.Number("det_score");
  if (!score) return std::string("det_score (a finite number)");
  f.det_score = *score;
  auto embedding = j.contains("embedding") ? DecodeEmbedding(j.at("embedding")) : std::nullopt;
  if (!embedding) return std::string("embedding (base64 of 128 finite little-endian float32)");
  f.embedding = *embedding;
  const Json* q = j.contains("quality") ? &j.at("quality") : nullptr;
  auto sharpness = q ? Fields(*q).Number("sharpness") : std::nullopt;
  if (!sharpness || *sharpness < 0) return std::string("quality.sharpness (a number >= 0)");
  // The quality is recomputed from its inputs, never taken from the file: the same rules as a
  // photo probe's (AssessFace).
  return std::pair{f, AssessFace(f, *sharpness, detector)};
}

DetectorKind DetectorFromName(const std::string& name) {
  if (name == "cnn") return DetectorKind::kCnn;
  if (name == "yunet") return DetectorKind::kYunet;
  return DetectorKind::kHog;
}

}  // namespace

const char* EmbeddedStatusName(EmbeddedImage::Status s) {
  switch (s) {
    case EmbeddedImage::Status::kOk: return "ok";
    case EmbeddedImage::Status::kNoFace: return "noface";
    case EmbeddedImage::Status::kError: return "error";
    case EmbeddedImage::Status::kIssue: return "issue";
    case EmbeddedImage::Status::kErased: return "erased";
  }
  return "?";
}

PhotoFaces EmbeddedImage::AsPhotoFaces() const {
  PhotoFaces p;
  p.path = path;
  p.sha256 = sha256;
  p.width = width;
  p.height = height;
  p.faces = faces;
  p.quality = quality;
  return p;
}

std::string FormatEmbedHeader(const EmbedHeader& h) {
  return JsonText({{kHeaderKey, h.version},
                   {"model_identity", h.model_identity},
                   {"embedding_mode", EmbeddingModeName(h.mode)},
                   {"detector", h.detector}});
}

std::string FormatEmbedEnd(int64_t records) {
  return JsonText({{kEndKey, records}});
}

std::string FormatEmbedRecord(const EmbeddedImage& r) {
  if (r.status == EmbeddedImage::Status::kErased)
    return JsonText({{"status", "erased"}, {"sha256", r.sha256}, {"reason", r.reason}, {"erased_at", r.erased_at}});
  Json record = {{"status", EmbeddedStatusName(r.status)}, {"path", r.path}};
  switch (r.status) {
    case EmbeddedImage::Status::kOk:
    case EmbeddedImage::Status::kNoFace: {
      Json faces = Json::array();
      for (size_t i = 0; i < r.faces.size(); ++i) faces.push_back(FaceJson(r.faces[i], r.quality[i]));
      record["sha256"] = r.sha256;
      record["size"] = r.size;
      record["width"] = r.width;
      record["height"] = r.height;
      record["faces"] = std::move(faces);
      break;
    }
    case EmbeddedImage::Status::kIssue:
      record["outcome"] = r.outcome;
      [[fallthrough]];
    case EmbeddedImage::Status::kError:
      record["reason"] = r.reason;
      record["error"] = r.error;
      break;
    case EmbeddedImage::Status::kErased: break;  // written above
  }
  record["provenance"] = ProvenanceJson(r.provenance);
  return JsonText(record);
}

struct EmbedReader::Impl {
  std::istream* in = nullptr;
  std::string name;
  EmbedHeader header;
  DetectorKind detector = DetectorKind::kHog;
  int64_t line = 0, records = 0;
  bool ended = false;

  Error Bad(const std::string& what) const {
    return Error{ErrorCode::kInvalidArgument,
                 name + " line " + std::to_string(line) + ": " + what +
                     ": not a facesearch embed file, or damaged; make it again with `facesearch embed`"};
  }

  // The next line, bounded; nullopt at the end of the input.
  Result<std::optional<std::string>> ReadLine() {
    std::string s;
    char c;
    bool any = false;
    while (in->get(c)) {
      any = true;
      if (c == '\n') break;
      if (s.size() >= kMaxEmbedLineBytes)
        return std::unexpected(Bad("longer than " + std::to_string(kMaxEmbedLineBytes >> 20) + " MiB"));
      s += c;
    }
    if (in->bad()) return Fail(ErrorCode::kIo, "cannot read " + name);
    if (!any) return std::optional<std::string>();
    ++line;
    return std::optional(std::move(s));
  }

  Result<EmbeddedImage> ParseTombstone(const Fields& f) const {
    EmbeddedImage r;
    r.status = EmbeddedImage::Status::kErased;
    auto sha = f.String("sha256"), reason = f.String("reason"), at = f.String("erased_at");
    if (!sha || !IsSha256Hex(*sha)) return std::unexpected(Bad("sha256 (64 lower-case hex digits)"));
    if (!reason || !at) return std::unexpected(Bad("an erased record needs \"reason\" and \"erased_at\" strings"));
    r.sha256 = *sha;
    r.reason = *reason;
    r.erased_at = *at;
    return r;
  }

  Result<EmbeddedImage> Parse(const Json& j) {
    Fields f(j);
    EmbeddedImage r;
    auto status = f.String("status");
    if (!status) return std::unexpected(Bad("no \"status\" string"));
    if (*status == "erased") return ParseTombstone(f);
    auto path = f.String("path");
    if (!path || path->empty()) return std::unexpected(Bad("no \"path\" string"));
    r.path = *path;
    if (f.Has("provenance")) {
      Fields p(j.at("provenance"));
      auto page = p.String("page_url", false), source = p.String("source", false),
           captured = p.String("captured_at", false), licence = p.String("licence", false),
           notes = p.String("notes", false);
      if (!j.at("provenance").is_object() || !page || !source || !captured || !licence || !notes)
        return std::unexpected(Bad("provenance (an object of strings)"));
      r.provenance = {*page, *source, *captured, *licence, *notes};
    }
    if (*status == "error" || *status == "issue") {
      r.status = *status == "error" ? EmbeddedImage::Status::kError : EmbeddedImage::Status::kIssue;
      auto reason = f.String("reason"), error = f.String("error");
      if (!reason || !error) return std::unexpected(Bad("an error record needs \"reason\" and \"error\" strings"));
      r.reason = *reason;
      r.error = *error;
      if (r.status == EmbeddedImage::Status::kIssue) {
        auto outcome = f.String("outcome");
        if (!outcome || (*outcome != "error" && *outcome != "skipped"))
          return std::unexpected(Bad("an issue record needs \"outcome\": \"error\" or \"skipped\""));
        r.outcome = *outcome;
      }
      return r;
    }
    if (*status != "ok" && *status != "noface")
      return std::unexpected(Bad("unknown status \"" + *status + "\" (ok, noface, error, issue, erased)"));
    auto sha = f.String("sha256");
    if (!sha || !IsSha256Hex(*sha)) return std::unexpected(Bad("sha256 (64 lower-case hex digits)"));
    r.sha256 = *sha;
    auto size = f.Int("size", 1, std::numeric_limits<int64_t>::max());
    auto width = f.Int("width", 1, std::numeric_limits<int>::max());
    auto height = f.Int("height", 1, std::numeric_limits<int>::max());
    if (!size || !width || !height) return std::unexpected(Bad("size, width and height (positive integers)"));
    r.size = *size;
    r.width = static_cast<int>(*width);
    r.height = static_cast<int>(*height);
    const Json* faces = f.Has("faces") ? &j.at("faces") : nullptr;
    if (!faces || !faces->is_array() || faces->size() > kMaxEmbedFacesPerImage)
      return std::unexpected(Bad("faces (an array of at most " + std::to_string(kMaxEmbedFacesPerImage) + ")"));
    for (const Json& face : *faces) {
      auto parsed = ParseFace(face, detector);
      if (auto* why = std::get_if<std::string>(&parsed)) return std::unexpected(Bad("faces[]: " + *why));
      auto& [pf, q] = std::get<0>(parsed);
      r.faces.push_back(pf);
      r.quality.push_back(std::move(q));
    }
    r.status = r.faces.empty() ? EmbeddedImage::Status::kNoFace : EmbeddedImage::Status::kOk;
    if (EmbeddedStatusName(r.status) != *status)
      return std::unexpected(Bad("status \"" + *status + "\" with " + std::to_string(r.faces.size()) + " faces"));
    return r;
  }
};

EmbedReader::EmbedReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbedReader::~EmbedReader() = default;
const EmbedHeader& EmbedReader::header() const { return impl_->header; }

Result<std::unique_ptr<EmbedReader>> EmbedReader::Open(std::istream& in, std::string name) {
  auto impl = std::make_unique<Impl>();
  impl->in = &in;
  impl->name = std::move(name);
  FS_ASSIGN(auto first, impl->ReadLine());
  if (!first) return std::unexpected(impl->Bad("empty file"));
  const Json j = Json::parse(*first, nullptr, /*allow_exceptions=*/false);
  Fields f(j);
  auto version = f.Int(kHeaderKey, 1, std::numeric_limits<int>::max());
  if (!version) return std::unexpected(impl->Bad("no facesearch_embed header"));
  if (*version != kEmbedFormatVersion)
    return Fail(ErrorCode::kInvalidArgument,
                impl->name + " is embed format " + std::to_string(*version) + "; this facesearch reads format " +
                    std::to_string(kEmbedFormatVersion) + ": embed the images again with this version");
  auto identity = f.String("model_identity"), mode = f.String("embedding_mode"), detector = f.String("detector");
  if (!identity || !mode || !detector) return std::unexpected(impl->Bad("the header needs model_identity, embedding_mode and detector"));
  auto parsed_mode = ParseEmbeddingMode(*mode);
  if (!parsed_mode) return std::unexpected(impl->Bad(parsed_mode.error().message));
  impl->header = {static_cast<int>(*version), *identity, *parsed_mode, *detector};
  impl->detector = DetectorFromName(*detector);
  return std::unique_ptr<EmbedReader>(new EmbedReader(std::move(impl)));
}

Result<std::optional<EmbeddedImage>> EmbedReader::Next() {
  Impl& c = *impl_;
  if (c.ended) return std::optional<EmbeddedImage>();
  FS_ASSIGN(auto text, c.ReadLine());
  if (!text) return std::unexpected(c.Bad("the file ends without its end line (truncated?)"));
  const Json j = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected(c.Bad("not a JSON object"));
  if (j.contains(kEndKey)) {
    auto n = Fields(j).Int(kEndKey, 0, std::numeric_limits<int64_t>::max());
    if (!n || *n != c.records)
      return std::unexpected(c.Bad("the end line counts " + (n ? std::to_string(*n) : std::string("?")) +
                                   " records, the file holds " + std::to_string(c.records)));
    FS_ASSIGN(auto after, c.ReadLine());
    if (after) return std::unexpected(c.Bad("data after the end line"));
    c.ended = true;
    return std::optional<EmbeddedImage>();
  }
  FS_ASSIGN(EmbeddedImage r, c.Parse(j));
  ++c.records;
  return std::optional(std::move(r));
}

Result<EmbedFile> ReadEmbedFile(const std::string& path, std::istream* in, size_t max_records) {
  std::ifstream file;
  if (!in) {
    file.open(path, std::ios::binary);
    if (!file) return Fail(ErrorCode::kNotFound, "cannot open the embed file " + path);
  }
  FS_ASSIGN(auto reader, EmbedReader::Open(in ? *in : file, path == "-" ? "the embed file on stdin" : path));
  EmbedFile out;
  out.header = reader->header();
  while (true) {
    FS_ASSIGN(auto record, reader->Next());
    if (!record) break;
    if (out.records.size() >= max_records)
      return Fail(ErrorCode::kInvalidArgument, path + " holds more than " + std::to_string(max_records) +
                                                   " records: split the inputs into several embed files");
    out.records.push_back(std::move(*record));
  }
  return out;
}

Status CheckEmbedHeader(const EmbedHeader& header, const EmbeddingMode& mode, const std::string& file) {
  if (header.model_identity != ModelIdentity(header.mode.model))
    return Fail(ErrorCode::kInvalidArgument,
                file + " was embedded with other models (" + header.model_identity + ") than this facesearch uses (" +
                    ModelIdentity(header.mode.model) + "): its distances mean nothing here; embed the images again with this build");
  if (header.mode != mode)
    return Fail(ErrorCode::kInvalidArgument,
                file + " holds '" + EmbeddingModeName(header.mode) + "' embeddings and the corpus '" +
                    EmbeddingModeName(mode) + "' ones: embed again with --embedding " + EmbeddingModeName(mode));
  return Ok();
}

}  // namespace facesearch
