// `facesearch serve`: the HTTP transport around the API (api.h). cpp-httplib (Debian's
// libcpp-httplib-dev 0.11.4, built with OpenSSL) parses HTTP/1.1 and multipart bodies and speaks
// TLS; this file bounds what a client can make it do: a fixed pool of workers behind a bounded
// queue, a body size cap, read and write timeouts, and a drain on SIGTERM.
#pragma once

#include <functional>
#include <string>

#include "server/api.h"

namespace facesearch::server {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8420;                      // 0: any free port (on_listening says which)
  int threads = 0;                      // workers; 0: twice the hardware threads, at least 4
  int queue = 0;                        // accepted connections waiting for a worker; 0: 4 x threads;
                                        // one that finds it full is answered 503 at once
  double queue_timeout_s = 10;          // a connection that waited longer is answered 503
  size_t max_body_bytes = size_t{32} << 20;
  int read_timeout_s = 10;              // a client silent this long mid-request is dropped
  int write_timeout_s = 30;
  std::string tls_cert, tls_key;        // PEM files; both or neither
  bool insecure_no_tls = false;         // allow plain HTTP on a non-loopback address
  ApiOptions api;
};

// True for 127.0.0.0/8, ::1, localhost and IPv4-mapped loopback.
bool IsLoopback(const std::string& address);

// Opens the corpus (models loaded before the port opens), binds, calls on_listening(port) and
// answers until SIGTERM or SIGINT, then stops accepting, finishes the requests under way and
// returns. Errors: kInvalidArgument (a non-loopback address without TLS and without
// insecure_no_tls, half a TLS pair, a port that cannot be bound), those of Corpus::Open.
Status Serve(const CorpusConfig& config, const ServeOptions& options, const std::function<void(int)>& on_listening);

}  // namespace facesearch::server
