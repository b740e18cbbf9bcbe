// The HTTP API of `facesearch serve` (docs/usage.md "Serving a corpus"), apart from the transport:
// a request comes in as an ApiRequest (what cpp-httplib parsed: method, path, query parameters,
// body or multipart parts, the Authorization header) and leaves as an ApiResponse. server.cpp
// owns the sockets, TLS, timeouts, the worker pool and the access log; this file owns who may do
// what and the answers, so that the libFuzzer target (fuzz/fuzz_api.cpp) and the tests reach the
// same code without a socket.
#pragma once

#include <chrono>
#include <iterator>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/corpus.h"
#include "facesearch/embed.h"
#include "facesearch/privacy.h"
#include "facesearch/users.h"
#include "frontend/format.h"

namespace facesearch::server {

struct UploadPart {
  std::string name, filename, content_type, content;
};

struct ApiRequest {
  std::string method;  // GET, POST
  std::string path;    // /v1/query
  std::multimap<std::string, std::string> params;  // URL query parameters, decoded
  std::string content_type;
  std::string body;                // the raw body (not multipart)
  std::vector<UploadPart> parts;   // multipart/form-data parts, in order
  std::string authorization;       // the Authorization header
  bool loopback = false;           // the peer is 127.0.0.0/8 or ::1
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string user = "-";  // who it was answered for, for the access log and the metrics
};

// Headers of a formatted command answer: the exit status the command line would have, and its
// stderr lines ("LEVEL: text", one header each), which the CLI client logs.
inline constexpr const char* kExitHeader = "X-Facesearch-Exit";
inline constexpr const char* kLogHeader = "X-Facesearch-Log";

// {"error":{"status":N,"code":"...","message":"..."}}: every refusal's body.
ApiResponse ErrorResponse(int status, const std::string& code, const std::string& message);
// The HTTP status for an engine error: kInvalidArgument and kDecode 400, kNotFound 404,
// kMismatch 409, kBusy 503, the rest 500.
int HttpStatus(ErrorCode code);

// ---- request parsing (no corpus involved; what the fuzz target exercises) ----------------------

// Options of /v1/query, from URL parameters: top_k, threshold, max_fmr, total_faces, all_faces, no_collapse, face,
// format, fields, case, purpose, request_id, name (the probe's name when the body is the raw image).
struct QueryParams {
  QueryOptions options;
  std::optional<float> threshold;
  double max_fmr = 0;
  int64_t total_faces = 0;  // size the default threshold for this many faces (one shard of many)
  frontend::OutputFormat format = frontend::OutputFormat::kJson;
  std::vector<std::string> fields;
  std::vector<ProbeImage> probes;
  std::optional<EmbedFile> embedded;  // instead of photos: probes embedded elsewhere
  std::string embedded_name;          // names that embed file in messages
};
// The probes: each multipart part named "image" (its file name names the probe), or the whole
// body when it is image bytes (Content-Type image/* or application/octet-stream; the "name"
// parameter names it); or an embed file (`facesearch embed`'s output: one multipart part named
// "embedded", or the body as application/x-ndjson), read and checked whole here. Errors (kInvalidArgument) say which parameter or part is wrong; a content
// type that is neither is `unsupported` (415), see ParseError.
struct ParseError {
  int status = 400;
  std::string code = "bad_request";
  std::string message;
};
std::expected<QueryParams, ParseError> ParseQuery(const ApiRequest& request);
// /v1/compare: parts "a" and "b"; threshold, max_fmr, face_a, face_b, format (json|table).
struct CompareParams {
  CompareOptions options;
  bool threshold_given = false;  // else: the model's same-person distance, as `compare`
  double max_fmr = 0;
  bool json = true;
  ProbeImage a, b;
};
std::expected<CompareParams, ParseError> ParseCompare(const ApiRequest& request);
// /v1/forget: a JSON body {"face_ids":[1,2], "images":["SHA-256 or path"], "older_than":"30d"};
// the answer's format is the parameter format (json|table).
std::expected<ForgetRequest, ParseError> ParseForget(const ApiRequest& request);
// POST /v1/optout: the photo as one multipart part named photo, or as the body (image/*; "name"
// names it); threshold, reason, format (json|table).
struct OptOutParams {
  OptOutRequest request;
  bool json = true;
};
std::expected<OptOutParams, ParseError> ParseOptOut(const ApiRequest& request);
// /v1/faces: the photos as multipart parts named image, or one as the body; format (jsonl|table).
struct FacesParams {
  std::vector<ProbeImage> photos;
  bool jsonl = true;
};
std::expected<FacesParams, ParseError> ParseFaces(const ApiRequest& request);
// /v1/index: multipart parts named image (the photos, each file name kept as a hint for its
// extension) and an optional part named provenance (JSON {"page_url","source","captured_at",
// "licence","notes"}, for every photo of the request); or a JSON body {"paths":["/srv/a.jpg"],
// "provenance":{...}} naming files on the server, each checked against the allowed roots later.
struct IndexParams {
  std::vector<UploadPart> uploads;
  std::vector<std::string> paths;
  Provenance provenance;
};
std::expected<IndexParams, ParseError> ParseIndex(const ApiRequest& request);
// "Bearer TOKEN" → TOKEN; empty when the header is absent. Malformed: 401.
std::expected<std::string, ParseError> BearerToken(std::string_view authorization);
// Case and purpose from the request (parameters "case", "purpose").
AuditContext RequestAudit(const ApiRequest& request, const std::string& user);

// ---- the service -------------------------------------------------------------------------------

struct ApiOptions {
  PipelineOptions pipeline;        // how probes are analysed (the server's, not the client's)
  bool allow_anonymous = false;    // a loopback request without a token acts as "anonymous", a searcher
  double rate_per_minute = 600;    // per user (token bucket, bursts up to this); 0: no limit
  // Folders whose files /v1/index may read by path (--allow-root); none: uploads only.
  std::vector<std::filesystem::path> allow_roots;
};

// Per-user token buckets. Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(double per_minute) : per_minute_(per_minute) {}
  // 0 when `user` may go on, else the seconds until it may.
  double Take(const std::string& user);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };
  double per_minute_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

// Prometheus text for /metrics: requests by endpoint and status, a latency histogram, the corpus's
// faces and generation. Thread-safe.
class Metrics {
 public:
  void Record(const std::string& path, int status, double seconds);
  std::string Render(const Corpus& corpus) const;

 private:
  static constexpr double kBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t bucket_counts_[std::size(kBuckets)] = {};
  int64_t count_ = 0;
  double sum_ = 0;
};

class Api {
 public:
  // `corpus` is the handle every request searches; `config` names the corpus for the commands
  // that open it themselves (info, forget, audit).
  Api(Corpus& corpus, CorpusConfig config, ApiOptions options);
  ApiResponse Handle(const ApiRequest& request);
  // Counts a finished request (the transport calls it with the time it took).
  void Record(const ApiRequest& request, int status, double seconds);

 private:
  struct Caller {
    std::string name;
    Role role;
  };
  std::expected<Caller, ApiResponse> Authenticate(const ApiRequest& request);
  ApiResponse Query(const ApiRequest& request, const Caller& caller);
  ApiResponse Compare(const ApiRequest& request, const Caller& caller);
  ApiResponse Info(const ApiRequest& request, const Caller& caller);
  ApiResponse Faces(const ApiRequest& request, const Caller& caller);
  ApiResponse Forget(const ApiRequest& request, const Caller& caller);
  ApiResponse OptOutAdd(const ApiRequest& request, const Caller& caller);
  ApiResponse OptOutList(const ApiRequest& request, const Caller& caller);
  ApiResponse OptOutRemove(const ApiRequest& request, const Caller& caller);
  ApiResponse Index(const ApiRequest& request, const Caller& caller);
  // The corpus config of a write for `caller`: audited with its user, case and purpose; a writer
  // that holds the corpus longer than 10 s makes it a 503.
  CorpusConfig WriteConfig(const ApiRequest& request, const Caller& caller) const;
  // Writes uploads under the corpus's uploads/ folder (named by content) and returns their paths.
  Result<std::vector<std::string>> StoreUploads(const std::vector<UploadPart>& uploads);
  ApiResponse Audit(const ApiRequest& request, const Caller& caller);
  ApiResponse MetricsText(const ApiRequest& request, const Caller& caller);

  Corpus& corpus_;
  CorpusConfig config_;
  ApiOptions options_;
  RateLimiter limiter_;
  Metrics metrics_;
  std::mutex index_mu_;  // one /v1/index at a time (the corpus has one writer; uploads share a folder)
};

}  // namespace facesearch::server
