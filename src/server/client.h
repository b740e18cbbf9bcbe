// The CLI as a client of `facesearch serve` (`--server URL`): one request, and the answer as the
// command line needs it (the body to print, the exit status, the stderr lines).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "facesearch/error.h"
#include "server/api.h"

namespace facesearch::server {

struct ServerAnswer {
  int status = 0;
  std::string body;
  int exit_code = 2;  // X-Facesearch-Exit; 2 when absent (an error)
  std::vector<frontend::LogLine> log;
};

struct ClientRequest {
  std::string method = "GET";
  std::string path;                                         // "/v1/query"
  std::vector<std::pair<std::string, std::string>> params;  // URL query parameters, encoded here
  std::vector<UploadPart> parts;                            // multipart/form-data when not empty
  std::string body = {}, content_type = {};                 // else this body (POST)
};

// The token for `url`: $FACESEARCH_TOKEN, else the first line of `token_file` (or of
// $FACESEARCH_TOKEN_FILE), which must be a regular file only its owner can read or write (0600),
// else none (a server started with --allow-anonymous answers loopback requests without one).
// Errors: kInvalidArgument (a token file others can read), kNotFound/kIo.
Result<std::string> ClientToken(const std::string& token_file);

// Sends the request to the server at `url` (http:// or https://). An https server's certificate
// is verified against `ca_file` (PEM) when given, else the system's CA store, and must name the
// URL's host. An answer that is not a command's output (no X-Facesearch-Exit: a refusal such as
// 401 or 413) becomes an Error carrying the server's message. Errors: kIo when the server cannot
// be reached or its certificate is not trusted, kInvalidArgument for a malformed URL or a CA
// file that cannot be read, the server's refusals.
Result<ServerAnswer> CallServer(const std::string& url, const std::string& token, const ClientRequest& request,
                                const std::string& ca_file = "");

}  // namespace facesearch::server
