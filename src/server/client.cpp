// The CLI's side of `--server URL`.
#include "server/client.h"

#include <httplib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace facesearch::server {

namespace {

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Target(const ClientRequest& request) {
  std::string target = request.path;
  for (size_t i = 0; i < request.params.size(); ++i)
    target += (i ? "&" : "?") + PercentEncode(request.params[i].first) + "=" + PercentEncode(request.params[i].second);
  return target;
}

// "level: text" → a log line at that level.
frontend::LogLine ParseLogHeader(const std::string& value) {
  const size_t colon = value.find(": ");
  if (colon == std::string::npos) return {spdlog::level::info, value};
  return {spdlog::level::from_str(value.substr(0, colon)), value.substr(colon + 2)};
}

// The message of the server's {"error":{...}} body, or the body itself.
std::string RefusalMessage(const httplib::Response& res) {
  const nlohmann::json body = nlohmann::json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() && body["error"].contains("message") &&
      body["error"]["message"].is_string())
    return body["error"]["message"].get<std::string>();
  return res.body.empty() ? "no message" : res.body.substr(0, 300);
}

ErrorCode CodeFor(int status) {
  switch (status) {
    case 400: return ErrorCode::kInvalidArgument;
    case 404: return ErrorCode::kNotFound;
    case 409: return ErrorCode::kMismatch;
    case 429:
    case 503: return ErrorCode::kBusy;
    default: return status == 401 || status == 403 ? ErrorCode::kInvalidArgument : ErrorCode::kIo;
  }
}

}  // namespace

Result<std::string> ClientToken(const std::string& token_file) {
  if (const char* token = std::getenv("FACESEARCH_TOKEN"); token && *token) return std::string(token);
  std::string file = token_file;
  if (file.empty())
    if (const char* env = std::getenv("FACESEARCH_TOKEN_FILE")) file = env;
  if (file.empty()) return std::string();
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return Fail(ErrorCode::kNotFound, "cannot read the token file " + file);
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 || st.st_uid != ::geteuid())
    return Fail(ErrorCode::kInvalidArgument, "the token file " + file +
                                                 " must be a regular file of yours that only you can read: chmod 600 " + file);
  std::ifstream in(file);
  std::string token;
  std::getline(in, token);
  if (!in && token.empty()) return Fail(ErrorCode::kIo, "cannot read the token file " + file);
  return token;
}

Result<ServerAnswer> CallServer(const std::string& url, const std::string& token, const ClientRequest& request,
                                const std::string& ca_file) {
  httplib::Client client(url);
  if (!client.is_valid()) return Fail(ErrorCode::kInvalidArgument, "not a server URL: " + url + " (e.g. http://127.0.0.1:8420)");
  if (!ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(ca_file, ec))
      return Fail(ErrorCode::kInvalidArgument, "cannot read the CA file " + ca_file + " (--server-ca, FACESEARCH_SERVER_CA)");
    client.set_ca_cert_path(ca_file);
  }
  client.set_connection_timeout(10);
  client.set_read_timeout(600);  // a query at scale, or a long forget
  client.set_write_timeout(60);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  const std::string target = Target(request);
  httplib::Result res = [&] {
    if (request.method == "GET") return client.Get(target, headers);
    if (request.method == "DELETE") return client.Delete(target, headers);
    if (request.parts.empty()) return client.Post(target, headers, request.body, request.content_type);
    httplib::MultipartFormDataItems items;
    for (const UploadPart& p : request.parts) items.push_back({p.name, p.content, p.filename, p.content_type});
    return client.Post(target, headers, items);
  }();
  if (res.error() == httplib::Error::SSLServerVerification)
    return Fail(ErrorCode::kIo, "the certificate of " + url + " is not trusted here (" +
                                    (ca_file.empty() ? "not signed by a CA of the system's store"
                                                     : "not signed by the CA in " + ca_file) +
                                    ", or it does not name this host): give the CA that signed it with --server-ca FILE "
                                    "or FACESEARCH_SERVER_CA, or connect by the name in the certificate");
  if (!res)
    return Fail(ErrorCode::kIo, "cannot reach the server at " + url + ": " + httplib::to_string(res.error()) +
                                    " (is `facesearch serve` running there?)");
  if (!res->has_header(kExitHeader))
    return Fail(CodeFor(res->status), "the server refused (HTTP " + std::to_string(res->status) + "): " + RefusalMessage(*res));
  ServerAnswer answer;
  answer.status = res->status;
  answer.body = res->body;
  answer.exit_code = std::atoi(res->get_header_value(kExitHeader).c_str());
  for (size_t i = 0, n = res->get_header_value_count(kLogHeader); i < n; ++i)
    answer.log.push_back(ParseLogHeader(res->get_header_value(kLogHeader, i)));
  return answer;
}

}  // namespace facesearch::server
