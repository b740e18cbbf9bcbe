// The HTTP API of `facesearch serve`: who may do what, request parsing, and the answers, which
// are the command line's own output formats (src/frontend/format.h).
#include "server/api.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "common/fs.h"
#include "common/json.h"
#include "common/sha256.h"
#include "facesearch/eval.h"
#include "facesearch/privacy.h"

namespace facesearch::server {

namespace {

using frontend::OutputFormat;

constexpr size_t kMaxProbesPerRequest = 64;

std::unexpected<ParseError> Bad(std::string message) {
  return std::unexpected(ParseError{400, "bad-request", std::move(message)});
}

const std::string* Param(const ApiRequest& r, const std::string& name) {
  auto it = r.params.find(name);
  return it == r.params.end() ? nullptr : &it->second;
}

// A number parameter within [lo, hi], whole text only; nan and inf never pass.
template <class T>
std::expected<std::optional<T>, ParseError> Number(const ApiRequest& r, const std::string& name, T lo, T hi) {
  const std::string* text = Param(r, name);
  if (!text) return std::optional<T>{};
  T value{};
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || !(value >= lo && value <= hi))
    return Bad(fmt::format("parameter {} must be a number from {} to {}, not '{}'", name, static_cast<double>(lo),
                           static_cast<double>(hi), *text));
  return std::optional<T>{value};
}

std::expected<bool, ParseError> Flag(const ApiRequest& r, const std::string& name) {
  const std::string* text = Param(r, name);
  if (!text || *text == "false" || *text == "0") return false;
  if (*text == "true" || *text == "1" || text->empty()) return true;
  return Bad("parameter " + name + " is true or false, not '" + *text + "'");
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  return std::equal(prefix.begin(), prefix.end(), s.begin(),
                    [](char p, char c) { return std::tolower(static_cast<unsigned char>(c)) == p; });
}

bool IsMultipart(const ApiRequest& r) { return StartsWith(r.content_type, "multipart/form-data"); }
bool IsImageBody(const ApiRequest& r) {
  return StartsWith(r.content_type, "image/") || StartsWith(r.content_type, "application/octet-stream");
}

// The parts of a multipart body, refusing names other than `known`.
std::expected<std::vector<const UploadPart*>, ParseError> Parts(const ApiRequest& r, const std::string& name,
                                                                std::initializer_list<std::string_view> known) {
  std::vector<const UploadPart*> found;
  for (const UploadPart& p : r.parts) {
    if (std::find(known.begin(), known.end(), p.name) == known.end())
      return Bad("unknown multipart part '" + p.name + "'; this endpoint takes " + std::string(*known.begin()) +
                 (known.size() > 1 ? " and " + std::string(*(known.begin() + 1)) : ""));
    if (p.name == name) found.push_back(&p);
  }
  return found;
}

ProbeImage PartProbe(const UploadPart& p) { return ProbeImage::Bytes(p.filename.empty() ? p.name : p.filename, p.content); }

std::unexpected<ParseError> Unsupported(const ApiRequest& r, const std::string& expected) {
  return std::unexpected(ParseError{415, "unsupported-media-type",
                                    "Content-Type '" + r.content_type + "' is not accepted here: send " + expected});
}

// The parameter format of an answer that is either `machine` (json or jsonl; the default) or table:
// true for the machine one.
std::expected<bool, ParseError> MachineFormat(const ApiRequest& r, const std::string& machine) {
  const std::string* text = Param(r, "format");
  if (!text || *text == machine) return true;
  if (*text == "table") return false;
  return Bad("parameter format is " + machine + " or table, not '" + *text + "'");
}

// Uploaded photos: the multipart parts named `part` (no other part accepted), or the whole body when
// it is image bytes (the parameter "name" names it).
std::expected<std::vector<ProbeImage>, ParseError> UploadedPhotos(const ApiRequest& r, const std::string& part) {
  std::vector<ProbeImage> photos;
  if (IsMultipart(r)) {
    auto parts = Parts(r, part, {part});
    if (!parts) return std::unexpected(parts.error());
    for (const UploadPart* p : *parts) photos.push_back(PartProbe(*p));
  } else if (IsImageBody(r)) {
    const std::string* name = Param(r, "name");
    photos.push_back(ProbeImage::Bytes(name ? *name : "upload", r.body));
  } else {
    return Unsupported(r, "the photo as image/* or application/octet-stream, or multipart/form-data with parts named " + part);
  }
  if (photos.empty()) return Bad("no photo: add a multipart part named " + part);
  if (photos.size() > kMaxProbesPerRequest)
    return Bad("at most " + std::to_string(kMaxProbesPerRequest) + " photos per request");
  return photos;
}

std::expected<OutputFormat, ParseError> Format(const ApiRequest& r) {
  const std::string* text = Param(r, "format");
  if (!text) return OutputFormat::kJson;
  static const std::pair<const char*, OutputFormat> kFormats[] = {
      {"json", OutputFormat::kJson}, {"jsonl", OutputFormat::kJsonl}, {"csv", OutputFormat::kCsv},
      {"tsv", OutputFormat::kTsv}, {"table", OutputFormat::kTable}};
  for (const auto& [name, format] : kFormats)
    if (*text == name) return format;
  return Bad("parameter format is json, jsonl, csv, tsv or table, not '" + *text + "'");
}

const char* ContentType(OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson: return "application/json";
    case OutputFormat::kJsonl: return "application/x-ndjson";
    case OutputFormat::kCsv: return "text/csv; charset=utf-8";
    case OutputFormat::kTsv: return "text/tab-separated-values; charset=utf-8";
    case OutputFormat::kTable: break;
  }
  return "text/plain; charset=utf-8";
}

// The content type of a JSON answer, or of its table form.
const char* TextOr(bool json) { return json ? "application/json" : "text/plain; charset=utf-8"; }

ApiResponse FromError(const Error& e) { return ErrorResponse(HttpStatus(e.code), ErrorCodeName(e.code), e.message); }
ApiResponse FromParse(const ParseError& e) { return ErrorResponse(e.status, e.code, e.message); }

// A command's formatted answer with the exit status and stderr lines the command line would have.
ApiResponse Formatted(std::string body, const char* content_type, int exit_code, const std::vector<frontend::LogLine>& log) {
  ApiResponse r;
  r.status = exit_code == 2 ? 400 : 200;
  r.content_type = content_type;
  r.body = std::move(body);
  r.headers.emplace_back(kExitHeader, std::to_string(exit_code));
  for (const frontend::LogLine& line : log) {
    const auto level = spdlog::level::to_string_view(line.level);
    // A header value holds no line break: TerminalText escapes every control character.
    r.headers.emplace_back(kLogHeader, std::string(level.data(), level.size()) + ": " + frontend::TerminalText(line.text));
  }
  return r;
}

}  // namespace

ApiResponse ErrorResponse(int status, const std::string& code, const std::string& message) {
  ApiResponse r;
  r.status = status;
  r.body = JsonText({{"error", {{"status", status}, {"code", code}, {"message", message}}}}) + "\n";
  return r;
}

int HttpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kDecode: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kMismatch: return 409;
    case ErrorCode::kBusy: return 503;
    default: return 500;
  }
}

std::expected<QueryParams, ParseError> ParseQuery(const ApiRequest& request) {
  QueryParams q;
  auto top_k = Number<int>(request, "top_k", 1, 100000);
  if (!top_k) return std::unexpected(top_k.error());
  if (*top_k) q.options.top_k = **top_k;
  auto threshold = Number<float>(request, "threshold", 0.0f, 2.0f);
  if (!threshold) return std::unexpected(threshold.error());
  q.threshold = *threshold;
  auto max_fmr = Number<double>(request, "max_fmr", 1e-9, 1.0);
  if (!max_fmr) return std::unexpected(max_fmr.error());
  q.max_fmr = max_fmr->value_or(0);
  if (q.threshold && q.max_fmr > 0) return Bad("give threshold or max_fmr, not both");
  auto total_faces = Number<int64_t>(request, "total_faces", 1, int64_t{1} << 50);
  if (!total_faces) return std::unexpected(total_faces.error());
  q.total_faces = total_faces->value_or(0);
  auto all_faces = Flag(request, "all_faces");
  if (!all_faces) return std::unexpected(all_faces.error());
  q.options.all_faces = *all_faces;
  auto no_collapse = Flag(request, "no_collapse");
  if (!no_collapse) return std::unexpected(no_collapse.error());
  q.options.collapse_copies = !*no_collapse;
  auto face = Number<int>(request, "face", 0, 100000);
  if (!face) return std::unexpected(face.error());
  q.options.face = *face;
  if (q.options.face && q.options.all_faces) return Bad("give face or all_faces, not both");
  auto format = Format(request);
  if (!format) return std::unexpected(format.error());
  q.format = *format;
  if (const std::string* fields = Param(request, "fields"); fields && !fields->empty()) {
    std::stringstream in(*fields);
    for (std::string f; std::getline(in, f, ',');) q.fields.push_back(f);
    if (Status s = frontend::CheckFields(q.fields); !s) return Bad(s.error().message);
    if (q.format != OutputFormat::kCsv && q.format != OutputFormat::kTsv)
      return Bad("fields chooses csv/tsv columns: add format=csv or format=tsv");
  }
  // An embed file: read and checked whole before anything is searched, at most as many records as
  // a request has probes.
  auto read_embedded = [&](const std::string& name, const std::string& content) -> std::optional<ParseError> {
    std::istringstream in(content);
    auto embed = ReadEmbedFile(name, &in, kMaxProbesPerRequest);
    if (!embed) return ParseError{400, "bad-request", embed.error().message};
    q.embedded = std::move(*embed);
    q.embedded_name = name;
    return std::nullopt;
  };
  const std::string* name = Param(request, "name");
  if (IsMultipart(request)) {
    auto images = Parts(request, "image", {"image", "embedded"});
    if (!images) return std::unexpected(images.error());
    auto embedded = Parts(request, "embedded", {"image", "embedded"});
    if (!embedded) return std::unexpected(embedded.error());
    if (!embedded->empty()) {
      if (embedded->size() > 1 || !images->empty())
        return Bad("send one part named embedded (an embed file) or parts named image (photos), not both");
      const UploadPart& part = *embedded->front();
      if (auto refused = read_embedded(part.filename.empty() ? part.name : part.filename, part.content))
        return std::unexpected(*refused);
    }
    for (const UploadPart* p : *images) q.probes.push_back(PartProbe(*p));
    if (q.probes.empty() && !q.embedded)
      return Bad("no probe: add a multipart part named image holding the photo, or one named embedded");
  } else if (IsImageBody(request)) {
    q.probes.push_back(ProbeImage::Bytes(name ? *name : "upload", request.body));
  } else if (StartsWith(request.content_type, "application/x-ndjson")) {
    if (auto refused = read_embedded(name ? *name : "upload", request.body)) return std::unexpected(*refused);
  } else {
    return Unsupported(request, "the photo as image/* or application/octet-stream, an embed file as "
                                "application/x-ndjson, or multipart/form-data with parts named image or embedded");
  }
  if (q.probes.size() > kMaxProbesPerRequest)
    return Bad("at most " + std::to_string(kMaxProbesPerRequest) + " probes per request");
  return q;
}

std::expected<CompareParams, ParseError> ParseCompare(const ApiRequest& request) {
  CompareParams c;
  if (!IsMultipart(request)) return Unsupported(request, "multipart/form-data with parts named a and b");
  auto threshold = Number<float>(request, "threshold", 0.0f, 2.0f);
  if (!threshold) return std::unexpected(threshold.error());
  if (*threshold) c.options.threshold = **threshold;
  c.threshold_given = threshold->has_value();
  auto max_fmr = Number<double>(request, "max_fmr", 1e-9, 1.0);
  if (!max_fmr) return std::unexpected(max_fmr.error());
  c.max_fmr = max_fmr->value_or(0);
  if (*threshold && c.max_fmr > 0) return Bad("give threshold or max_fmr, not both");
  for (const char* side : {"face_a", "face_b"}) {
    auto face = Number<int>(request, side, 0, 100000);
    if (!face) return std::unexpected(face.error());
    (side[5] == 'a' ? c.options.face_a : c.options.face_b) = *face;
  }
  auto json = MachineFormat(request, "json");
  if (!json) return std::unexpected(json.error());
  c.json = *json;
  auto a = Parts(request, "a", {"a", "b"});
  if (!a) return std::unexpected(a.error());
  auto b = Parts(request, "b", {"a", "b"});
  if (a->size() != 1 || b->size() != 1) return Bad("send exactly one part named a and one named b, each a photo");
  c.a = PartProbe(*a->front());
  c.b = PartProbe(*b->front());
  return c;
}

std::expected<ForgetRequest, ParseError> ParseForget(const ApiRequest& request) {
  if (!StartsWith(request.content_type, "application/json")) return Unsupported(request, "application/json");
  const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return Bad("the body is not valid JSON");
  if (!body.is_object()) return Bad("the body must be a JSON object such as {\"face_ids\":[12,13]}");
  ForgetRequest forget;
  for (const auto& [key, value] : body.items()) {
    if (key == "face_ids" && value.is_array()) {
      for (const auto& id : value) {
        if (!id.is_number_integer() || id.get<int64_t>() < 1) return Bad("face_ids holds positive whole numbers");
        forget.face_ids.push_back(id.get<int64_t>());
      }
    } else if (key == "images" && value.is_array()) {
      for (const auto& image : value) {
        if (!image.is_string() || image.get_ref<const std::string&>().empty())
          return Bad("images holds SHA-256 digests or paths as strings");
        forget.images.push_back(image.get<std::string>());
      }
    } else if (key == "older_than" && value.is_string()) {
      auto seconds = ParseDuration(value.get<std::string>());
      if (!seconds) return Bad(seconds.error().message);
      forget.older_than_s = *seconds;
    } else {
      return Bad("unknown or mistyped field '" + key + "': use face_ids (array of ids), images (array of strings), "
                 "older_than (\"30d\")");
    }
  }
  if (forget.face_ids.empty() && forget.images.empty() && !forget.older_than_s)
    return Bad("nothing to forget: give face_ids, images or older_than");
  return forget;
}

std::expected<OptOutParams, ParseError> ParseOptOut(const ApiRequest& request) {
  OptOutParams o;
  auto json = MachineFormat(request, "json");
  if (!json) return std::unexpected(json.error());
  o.json = *json;
  auto threshold = Number<float>(request, "threshold", 0.0f, 2.0f);
  if (!threshold) return std::unexpected(threshold.error());
  o.request.threshold = *threshold;
  if (const std::string* reason = Param(request, "reason")) o.request.reason = *reason;
  auto photos = UploadedPhotos(request, "photo");
  if (!photos) return std::unexpected(photos.error());
  if (photos->size() != 1) return Bad("send one photo of the person opting out: one multipart part named photo");
  o.request.photo = std::move(photos->front());
  return o;
}

std::expected<FacesParams, ParseError> ParseFaces(const ApiRequest& request) {
  FacesParams f;
  auto jsonl = MachineFormat(request, "jsonl");
  if (!jsonl) return std::unexpected(jsonl.error());
  f.jsonl = *jsonl;
  auto photos = UploadedPhotos(request, "image");
  if (!photos) return std::unexpected(photos.error());
  f.photos = std::move(*photos);
  return f;
}

namespace {

std::expected<Provenance, ParseError> ParseProvenance(const nlohmann::json& j) {
  if (!j.is_object()) return Bad("provenance must be a JSON object such as {\"source\":\"archive\"}");
  Provenance p;
  for (const auto& [key, value] : j.items()) {
    std::string* field = key == "page_url" ? &p.page_url : key == "source" ? &p.source
                       : key == "captured_at" ? &p.captured_at : key == "licence" || key == "license" ? &p.licence
                       : key == "notes" ? &p.notes : nullptr;
    if (!field) return Bad("unknown provenance field '" + key + "': use page_url, source, captured_at, licence, notes");
    if (!value.is_string()) return Bad("provenance field " + key + " must be a string");
    *field = value.get<std::string>();
  }
  return p;
}

}  // namespace

std::expected<IndexParams, ParseError> ParseIndex(const ApiRequest& request) {
  IndexParams params;
  if (IsMultipart(request)) {
    for (const UploadPart& part : request.parts) {
      if (part.name == "image") {
        params.uploads.push_back(part);
      } else if (part.name == "provenance") {
        auto provenance = ParseProvenance(nlohmann::json::parse(part.content, nullptr, false));
        if (!provenance) return std::unexpected(provenance.error());
        params.provenance = *provenance;
      } else {
        return Bad("unknown multipart part '" + part.name + "'; this endpoint takes image and provenance");
      }
    }
    if (params.uploads.empty()) return Bad("nothing to index: add multipart parts named image");
    return params;
  }
  if (!StartsWith(request.content_type, "application/json"))
    return Unsupported(request, "multipart/form-data with parts named image, or application/json {\"paths\":[...]}");
  const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object()) return Bad("the body must be a JSON object such as {\"paths\":[\"/srv/photos/a.jpg\"]}");
  for (const auto& [key, value] : body.items()) {
    if (key == "paths" && value.is_array()) {
      for (const auto& path : value) {
        if (!path.is_string() || path.get_ref<const std::string&>().empty()) return Bad("paths holds file paths as strings");
        params.paths.push_back(path.get<std::string>());
      }
    } else if (key == "provenance") {
      auto provenance = ParseProvenance(value);
      if (!provenance) return std::unexpected(provenance.error());
      params.provenance = *provenance;
    } else {
      return Bad("unknown or mistyped field '" + key + "': use paths (array of strings) and provenance (object)");
    }
  }
  if (params.paths.empty()) return Bad("nothing to index: give paths");
  return params;
}

std::expected<std::string, ParseError> BearerToken(std::string_view authorization) {
  if (authorization.empty()) return std::string();
  if (!StartsWith(authorization, "bearer ") || authorization.size() == 7 || authorization.size() > 512)
    return std::unexpected(ParseError{401, "unauthorized", "the Authorization header must be 'Bearer TOKEN'"});
  return std::string(authorization.substr(7));
}

AuditContext RequestAudit(const ApiRequest& request, const std::string& user) {
  AuditContext audit;
  if (const std::string* c = Param(request, "case")) audit.case_id = *c;
  if (const std::string* p = Param(request, "purpose")) audit.purpose = *p;
  if (const std::string* id = Param(request, "request_id")) audit.request_id = *id;
  audit.actor = user;
  return audit;
}

double RateLimiter::Take(const std::string& user) {
  if (per_minute_ <= 0) return 0;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  auto [it, added] = buckets_.try_emplace(user, Bucket{per_minute_, now});
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.at).count();
  b.tokens = std::min(per_minute_, b.tokens + elapsed * per_minute_ / 60.0);
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return 0;
  }
  return (1 - b.tokens) * 60.0 / per_minute_;
}

Api::Api(Corpus& corpus, CorpusConfig config, ApiOptions options)
    : corpus_(corpus), config_(std::move(config)), options_(std::move(options)), limiter_(options_.rate_per_minute) {}

std::expected<Api::Caller, ApiResponse> Api::Authenticate(const ApiRequest& request) {
  auto token = BearerToken(request.authorization);
  if (!token) return std::unexpected(FromParse(token.error()));
  if (token->empty()) {
    if (options_.allow_anonymous && request.loopback) return Caller{"anonymous", Role::kSearcher};
    return std::unexpected(ErrorResponse(401, "unauthorized",
                                         "no token: send 'Authorization: Bearer TOKEN' (facesearch user add NAME "
                                         "--role ROLE prints one)"));
  }
  auto users = corpus_.Users();
  if (!users) return std::unexpected(FromError(users.error()));
  const UserRecord* user = FindUserByToken(*users, *token);
  if (!user) return std::unexpected(ErrorResponse(401, "unauthorized", "unknown or revoked token"));
  return Caller{user->name, user->role};
}

ApiResponse Api::Handle(const ApiRequest& request) {
  struct Route {
    const char* path;
    const char* method;
    Right right;
    ApiResponse (Api::*handle)(const ApiRequest&, const Caller&);
  };
  static const Route kRoutes[] = {
      {"/v1/info", "GET", Right::kInfo, &Api::Info},
      {"/v1/query", "POST", Right::kSearch, &Api::Query},
      {"/v1/compare", "POST", Right::kSearch, &Api::Compare},
      {"/v1/faces", "POST", Right::kSearch, &Api::Faces},
      {"/v1/forget", "POST", Right::kForget, &Api::Forget},
      {"/v1/optout", "GET", Right::kForget, &Api::OptOutList},
      {"/v1/optout", "POST", Right::kForget, &Api::OptOutAdd},
      {"/v1/optout", "DELETE", Right::kForget, &Api::OptOutRemove},
      {"/v1/index", "POST", Right::kIndex, &Api::Index},
      {"/v1/audit", "GET", Right::kAudit, &Api::Audit},
      {"/metrics", "GET", Right::kInfo, &Api::MetricsText},
  };
  if (request.path == "/v1/health") return ApiResponse{200, "application/json", JsonText({{"status", "ok"}}) + "\n", {}, "-"};
  const Route* route = nullptr;
  std::string methods;  // those the path takes
  for (const Route& r : kRoutes) {
    if (request.path != r.path) continue;
    methods += (methods.empty() ? "" : " or ") + std::string(r.method);
    if (request.method == r.method) route = &r;
  }
  if (methods.empty())
    return ErrorResponse(404, "not-found", "no endpoint " + request.path +
                                               "; see docs/usage.md \"Serving a corpus\" for /v1/query, /v1/compare, "
                                               "/v1/faces, /v1/info, /v1/index, /v1/forget, /v1/optout, /v1/audit, "
                                               "/v1/health, /metrics");
  if (!route) return ErrorResponse(405, "method-not-allowed", request.path + " takes " + methods);
  auto caller = Authenticate(request);
  if (!caller) return caller.error();
  ApiResponse refused;
  refused.user = caller->name;
  if (!RoleAllows(caller->role, route->right)) {
    refused = ErrorResponse(403, "forbidden", "user " + caller->name + " (" + RoleName(caller->role) +
                                                  ") may not " + RightName(route->right) +
                                                  "; an admin can add a user with that right: facesearch user add");
  } else if (const double wait = limiter_.Take(caller->name); wait > 0) {
    refused = ErrorResponse(429, "rate-limited", "more than " + fmt::format("{}", options_.rate_per_minute) +
                                                     " requests a minute from " + caller->name + ": retry later");
    refused.headers.emplace_back("Retry-After", std::to_string(static_cast<int>(std::ceil(wait))));
  } else {
    ApiResponse answer = (this->*route->handle)(request, *caller);
    answer.user = caller->name;
    return answer;
  }
  refused.user = caller->name;
  return refused;
}

ApiResponse Api::Query(const ApiRequest& request, const Caller& caller) {
  auto parsed = ParseQuery(request);
  if (!parsed) return FromParse(parsed.error());
  QueryParams& q = *parsed;
  q.options.pipeline = options_.pipeline;
  // The false-match rates and the default threshold as `query` chooses them (cmd_query.cpp).
  auto mode = corpus_.EmbeddingModeFor(options_.pipeline.embedding);
  if (!mode) return FromError(mode.error());
  const Calibration calibration = Calibration::For(*mode);
  std::vector<frontend::LogLine> log;
  if (!calibration.exact())
    log.push_back({spdlog::level::warn, "no calibration was measured for '" + EmbeddingModeName(*mode) +
                                            "' embeddings: false-match rates use the " + calibration.mode() +
                                            " table and are approximate"});
  int64_t faces = 0;
  if (!q.threshold && q.max_fmr <= 0 && q.total_faces > 0) {
    faces = q.total_faces;
  } else if (!q.threshold && q.max_fmr <= 0) {
    auto stored = corpus_.StoredFaceCount();
    if (!stored) return FromError(stored.error());
    faces = *stored;
  }
  std::string note;
  auto threshold = frontend::ChooseQueryThreshold(calibration, q.threshold, q.max_fmr, faces, &note);
  if (!threshold) return FromError(threshold.error());
  q.options.threshold = *threshold;
  if (!note.empty()) log.push_back({spdlog::level::info, note});
  const AuditContext audit = RequestAudit(request, caller.name);
  std::vector<ProbeOutcome> outcomes;
  if (q.embedded) {
    auto answered = QueryEmbedRecords(corpus_, *q.embedded, q.embedded_name, q.options, audit);
    if (!answered) return FromError(answered.error());
    outcomes = std::move(*answered);
  }
  for (const ProbeImage& probe : q.probes) {
    auto outcome = corpus_.Query(probe, q.options, audit);
    if (!outcome) return FromError(outcome.error());
    outcomes.push_back(std::move(*outcome));
  }
  std::ostringstream out;
  frontend::WriteQueryResults(out, outcomes, q.options, calibration, q.format, q.fields);
  auto messages = frontend::QueryMessages(outcomes, q.format);
  log.insert(log.end(), messages.begin(), messages.end());
  return Formatted(out.str(), ContentType(q.format), frontend::QueryExitCode(outcomes), log);
}

ApiResponse Api::Compare(const ApiRequest& request, const Caller& caller) {
  auto parsed = ParseCompare(request);
  if (!parsed) return FromParse(parsed.error());
  CompareParams& c = *parsed;
  c.options.pipeline = options_.pipeline;
  // Both photos are embedded with the server's --embedding (plain by default): its calibration.
  const Calibration calibration = Calibration::For(c.options.pipeline.embedding.value_or(EmbeddingMode{}));
  if (c.max_fmr > 0) {
    auto threshold = frontend::ChooseQueryThreshold(calibration, std::nullopt, c.max_fmr, 0, nullptr);
    if (!threshold) return FromError(threshold.error());
    c.options.threshold = *threshold;
  } else if (!c.threshold_given) {
    c.options.threshold = calibration.same_person_distance();
  }
  auto r = corpus_.Compare(c.a, c.b, c.options, RequestAudit(request, caller.name));
  if (!r) return FromError(r.error());
  std::vector<frontend::LogLine> log;
  for (const PhotoFaces* p : {&r->a, &r->b})
    if (p->faces.empty()) log.push_back({spdlog::level::warn, "no face found in " + p->path});
  return Formatted(c.json ? frontend::CompareJson(*r, c.options.threshold, calibration)
                          : frontend::CompareText(*r, c.options.threshold, calibration),
                   TextOr(c.json), r->same ? 0 : 1, log);
}

ApiResponse Api::Info(const ApiRequest& request, const Caller& /*caller*/) {
  auto json = MachineFormat(request, "json");
  if (!json) return FromParse(json.error());
  auto info = GetCorpusInfo(config_);
  if (!info) return FromError(info.error());
  return Formatted(*json ? frontend::InfoJson(*info) : frontend::InfoText(*info), TextOr(*json), 0, {});
}

ApiResponse Api::Faces(const ApiRequest& request, const Caller& /*caller*/) {
  auto parsed = ParseFaces(request);
  if (!parsed) return FromParse(parsed.error());
  std::vector<std::string> names;
  for (const ProbeImage& photo : parsed->photos) names.push_back(photo.name);
  std::ostringstream out;
  std::vector<frontend::LogLine> log;
  const int exit_code = frontend::WriteFaces(
      out, names, parsed->jsonl, [&](size_t i) { return corpus_.Analyze(parsed->photos[i], options_.pipeline); },
      [&](frontend::LogLine line) { log.push_back(std::move(line)); });
  return Formatted(out.str(), parsed->jsonl ? "application/x-ndjson" : "text/plain; charset=utf-8", exit_code, log);
}

CorpusConfig Api::WriteConfig(const ApiRequest& request, const Caller& caller) const {
  CorpusConfig config = config_;
  config.audit = RequestAudit(request, caller.name);
  config.lock_wait_s = 10;  // another writer for longer: 503, retry later
  return config;
}

ApiResponse Api::Forget(const ApiRequest& request, const Caller& caller) {
  auto parsed = ParseForget(request);
  if (!parsed) return FromParse(parsed.error());
  auto json = MachineFormat(request, "json");
  if (!json) return FromParse(json.error());
  parsed->pipeline = options_.pipeline;
  auto summary = facesearch::Forget(WriteConfig(request, caller), *parsed);
  if (!summary) return FromError(summary.error());
  // The erased faces leave this process's index before the answer: no later request can see them.
  if (Status s = corpus_.Refresh(); !s) return FromError(s.error());
  const EraseCounts& e = summary->erased;
  return Formatted(*json ? frontend::ForgetJson(*summary) : frontend::ForgetText(*summary), TextOr(*json),
                   e.faces + e.images > 0 ? 0 : 1, {});
}

ApiResponse Api::OptOutAdd(const ApiRequest& request, const Caller& caller) {
  auto parsed = ParseOptOut(request);
  if (!parsed) return FromParse(parsed.error());
  parsed->request.pipeline = options_.pipeline;
  // The person's face is found by the server's resident analyzers, as a query's probe is.
  auto photo = corpus_.AnalyzeAsProbe(parsed->request.photo, options_.pipeline);
  if (!photo) return FromError(photo.error());
  auto result = AddOptOut(WriteConfig(request, caller), parsed->request, *photo);
  if (!result) return FromError(result.error());
  // The faces it erased leave this process's index before the answer, as a forget's.
  if (Status s = corpus_.Refresh(); !s) return FromError(s.error());
  return Formatted(frontend::OptOutAdded(*result, parsed->json), TextOr(parsed->json), 0, {});
}

ApiResponse Api::OptOutList(const ApiRequest& request, const Caller& /*caller*/) {
  auto json = MachineFormat(request, "json");
  if (!json) return FromParse(json.error());
  auto list = ListOptOuts(config_);
  if (!list) return FromError(list.error());
  return Formatted(frontend::OptOutList(*list, *json), *json ? "application/x-ndjson" : TextOr(false),
                   list->empty() ? 1 : 0, {});
}

ApiResponse Api::OptOutRemove(const ApiRequest& request, const Caller& caller) {
  auto json = MachineFormat(request, "json");
  if (!json) return FromParse(json.error());
  auto id = Number<int64_t>(request, "id", 1, std::numeric_limits<int64_t>::max());
  if (!id) return FromParse(id.error());
  if (const std::string* added_under = Param(request, "request")) {  // `optout remove --request RID`
    if (*id) return ErrorResponse(400, "bad-request", "give id or request, not both");
    auto ids = RemoveOptOutsOfRequest(WriteConfig(request, caller), *added_under);
    if (!ids) return FromError(ids.error());
    return Formatted(frontend::OptOutsOfRequestRemoved(*added_under, *ids, *json), TextOr(*json), 0, {});
  }
  if (!*id)
    return ErrorResponse(400, "bad-request",
                         "parameter id (or request) is missing: the opt-out to remove (GET /v1/optout lists them)");
  if (Status s = RemoveOptOut(WriteConfig(request, caller), **id); !s) return FromError(s.error());
  return Formatted(frontend::OptOutRemoved(**id, *json), TextOr(*json), 0, {});
}

namespace {

// A server-side path is read only when it lies under an allowed root once symlinks and ".." are
// resolved: a request cannot name /etc/shadow or climb out through a link.
bool UnderRoot(const std::filesystem::path& path, const std::vector<std::filesystem::path>& roots) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::weakly_canonical(path, ec);
  if (ec || !path.is_absolute()) return false;
  for (const std::filesystem::path& root : roots) {
    const std::filesystem::path real_root = std::filesystem::weakly_canonical(root, ec);
    if (ec) continue;
    auto [r, p] = std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
    if (r == real_root.end()) return true;
  }
  return false;
}

// An extension for an upload from its client file name, when it looks like an image's.
std::string UploadExtension(const std::string& filename) {
  std::string ext = std::filesystem::path(filename).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const char* const kImage[] = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"};
  return std::find(std::begin(kImage), std::end(kImage), ext) != std::end(kImage) ? ext : ".img";
}

std::string ManifestRow(const std::string& path, const Provenance& p) {
  Json row = {{"path", path}};
  for (const auto& [key, value] : {std::pair{"page_url", &p.page_url}, std::pair{"source", &p.source},
                                   std::pair{"captured_at", &p.captured_at}, std::pair{"licence", &p.licence},
                                   std::pair{"notes", &p.notes}})
    if (!value->empty()) row[key] = *value;
  return JsonText(row) + "\n";
}

}  // namespace

Result<std::vector<std::string>> Api::StoreUploads(const std::vector<UploadPart>& uploads) {
  const std::filesystem::path dir = config_.corpus_dir / "uploads";
  FS_TRY(EnsurePrivateDir(dir));
  std::vector<std::string> paths;
  for (const UploadPart& u : uploads) {
    // Named by content: an upload sent again (a retry after a crash) lands on the same file.
    const std::filesystem::path path = dir / (Sha256Hex(u.content) + UploadExtension(u.filename));
    FS_TRY(WriteFileAtomic(path, u.content));
    paths.push_back(path.string());
  }
  return paths;
}

ApiResponse Api::Index(const ApiRequest& request, const Caller& caller) {
  auto parsed = ParseIndex(request);
  if (!parsed) return FromParse(parsed.error());
  for (const std::string& path : parsed->paths)
    if (!UnderRoot(path, options_.allow_roots))
      return ErrorResponse(403, "forbidden", options_.allow_roots.empty()
                                                 ? "this server indexes uploaded photos only (serve --allow-root DIR "
                                                   "lets it read files under DIR)"
                                                 : "the path " + path + " is not under an allowed root (--allow-root)");
  std::lock_guard lock(index_mu_);
  auto uploaded = StoreUploads(parsed->uploads);
  if (!uploaded) return FromError(uploaded.error());
  std::vector<std::string> paths = std::move(*uploaded);
  paths.insert(paths.end(), parsed->paths.begin(), parsed->paths.end());
  // The inputs go through a manifest, the way provenance reaches an index run.
  std::string manifest_text;
  for (const std::string& path : paths) manifest_text += ManifestRow(path, parsed->provenance);
  const std::filesystem::path manifest = config_.corpus_dir / "uploads" / (".request-" + Sha256Hex(manifest_text) + ".jsonl");
  if (Status s = EnsurePrivateDir(manifest.parent_path()); !s) return FromError(s.error());
  if (Status s = WriteFileAtomic(manifest, manifest_text); !s) return FromError(s.error());
  IndexOptions options;
  options.pipeline = options_.pipeline;
  options.manifests = {manifest.string()};
  options.manifest_format = ManifestFormat::kJsonl;
  options.jobs = 1;  // searches keep the other cores
  auto summary = IndexPaths(WriteConfig(request, caller), {}, options);
  std::error_code ignored;
  std::filesystem::remove(manifest, ignored);
  if (!summary) return FromError(summary.error());
  // The new faces are searchable from the next request on, by this server's memory too.
  if (Status s = corpus_.Refresh(); !s) return FromError(s.error());
  return Formatted(frontend::IndexSummaryJson(*summary), "application/json", 0, {});
}

ApiResponse Api::Audit(const ApiRequest& request, const Caller& /*caller*/) {
  AuditFilter filter;
  if (const std::string* c = Param(request, "case")) filter.case_id = *c;
  if (const std::string* u = Param(request, "user")) filter.user = *u;
  for (const auto& [name, end_of_day] : {std::pair{"since", false}, std::pair{"until", true}}) {
    const std::string* text = Param(request, name);
    if (!text) continue;
    auto bound = ParseTimeBound(*text, end_of_day);
    if (!bound) return FromError(bound.error());
    (end_of_day ? filter.until : filter.since) = *bound;
  }
  std::string body;
  Status s = ListAudit(config_, filter, [&](const AuditRecord& r) { body += frontend::AuditRecordJson(r) + "\n"; });
  if (!s) return FromError(s.error());
  return Formatted(std::move(body), "application/x-ndjson", 0, {});
}

ApiResponse Api::MetricsText(const ApiRequest& /*request*/, const Caller& /*caller*/) {
  return ApiResponse{200, "text/plain; version=0.0.4", metrics_.Render(corpus_), {}, "-"};
}

void Api::Record(const ApiRequest& request, int status, double seconds) {
  static const char* const kKnown[] = {"/v1/health", "/v1/info",   "/v1/query", "/v1/compare", "/v1/faces",
                                       "/v1/forget", "/v1/optout", "/v1/index", "/v1/audit",   "/metrics"};
  const bool known = std::find(std::begin(kKnown), std::end(kKnown), request.path) != std::end(kKnown);
  metrics_.Record(known ? request.path : "other", status, seconds);  // bounded label values
}

void Metrics::Record(const std::string& path, int status, double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{path, status}];
  for (size_t i = 0; i < std::size(kBuckets); ++i)
    if (seconds <= kBuckets[i]) ++bucket_counts_[i];
  ++count_;
  sum_ += seconds;
}

std::string Metrics::Render(const Corpus& corpus) const {
  std::string out =
      "# HELP facesearch_requests_total HTTP requests answered, by endpoint and status.\n"
      "# TYPE facesearch_requests_total counter\n";
  std::lock_guard lock(mu_);
  for (const auto& [key, n] : requests_)
    out += "facesearch_requests_total{path=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP facesearch_request_seconds Time from a request's arrival to its answer.\n"
         "# TYPE facesearch_request_seconds histogram\n";
  for (size_t i = 0; i < std::size(kBuckets); ++i)
    out += "facesearch_request_seconds_bucket{le=\"" + fmt::format("{}", kBuckets[i]) + "\"} " +
           std::to_string(bucket_counts_[i]) + "\n";
  out += "facesearch_request_seconds_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n" +
         "facesearch_request_seconds_sum " + fmt::format("{}", sum_) + "\nfacesearch_request_seconds_count " +
         std::to_string(count_) + "\n";
  out += "# HELP facesearch_faces Faces the server's index holds.\n# TYPE facesearch_faces gauge\nfacesearch_faces " +
         std::to_string(corpus.face_count()) +
         "\n# HELP facesearch_generation Corpus generation the index reflects.\n# TYPE facesearch_generation gauge\n"
         "facesearch_generation " + std::to_string(corpus.generation()) + "\n";
  return out;
}

}  // namespace facesearch::server
