// `facesearch serve`, and `--server URL` for the commands that can run on a server instead.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/fs.h"
#include "server/client.h"
#include "server/server.h"

namespace facesearch::cli {

void AddServerOptions(CLI::App& cmd, Context& ctx) {
  cmd.add_option("--server", ctx.server,
                 "Run on the `facesearch serve` at this URL instead of opening the corpus here, e.g. "
                 "http://127.0.0.1:8420 (same output and exit status; the server's corpus, models and "
                 "detector settings apply). Token: $FACESEARCH_TOKEN or --token-file")
      ->envname("FACESEARCH_SERVER");
  cmd.add_option("--token-file", ctx.token_file,
                 "File holding the server token (mode 0600; default: $FACESEARCH_TOKEN_FILE)");
  cmd.add_option("--server-ca", ctx.server_ca,
                 "PEM file of the CA that signed an https server's certificate, when the system's CA store "
                 "does not hold it (e.g. a CA of your own)")
      ->envname("FACESEARCH_SERVER_CA");
}

void RunOnServer(Context& ctx, server::ClientRequest request) {
  if (!ctx.case_id.empty()) request.params.emplace_back("case", ctx.case_id);
  if (!ctx.request_id.empty()) request.params.emplace_back("request_id", ctx.request_id);
  if (!ctx.purpose.empty()) request.params.emplace_back("purpose", ctx.purpose);
  auto token = server::ClientToken(ctx.token_file);
  if (!token) return ctx.Report(token.error());
  auto answer = server::CallServer(ctx.server, *token, request, ctx.server_ca);
  if (!answer) return ctx.Report(answer.error());
  for (const LogLine& line : answer->log) spdlog::log(line.level, "{}", line.text);
  std::cout << answer->body;
  std::cout.flush();
  ctx.exit_code = answer->exit_code;
}

Result<server::UploadPart> PhotoPart(const std::string& name, const std::string& photo, int64_t max_bytes) {
  server::UploadPart part{name, photo, "application/octet-stream", {}};
  if (photo != "-") {
    FS_ASSIGN(part.content, ReadFile(photo, static_cast<size_t>(max_bytes) + 1));
    return part;
  }
  char buf[1 << 16];
  while (part.content.size() <= static_cast<size_t>(max_bytes) && (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0))
    part.content.append(buf, static_cast<size_t>(std::cin.gcount()));
  return part;
}

namespace {

struct ServeArgs {
  server::ServeOptions options;
  double max_body_mb = 32;
};

void Run(Context& ctx, ServeArgs& args) {
  args.options.max_body_bytes = static_cast<size_t>(args.max_body_mb * 1024 * 1024);
  Status s = server::Serve(ctx.Config(), args.options, [&](int port) {
    std::cout << "listening on " << (args.options.tls_cert.empty() ? "http" : "https") << "://" << args.options.host
              << ":" << port << std::endl;
  });
  if (!s) return ctx.Report(s.error());
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddServeCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Answer searches over HTTP with the corpus held open");
  cmd->footer(
      "Opens the corpus and the models once and answers HTTP/1.1 JSON requests under /v1/\n"
      "(docs/usage.md \"Serving a corpus\"): query, compare, faces, index (uploads, or paths\n"
      "under --allow-root), forget, optout, info, audit, health, and /metrics. Every request but\n"
      "/v1/health needs a token (facesearch user add), and every search and change is audited\n"
      "with its user, case and purpose. The first line on stdout says where it listens; the\n"
      "access log goes to stderr. When every worker is busy and --queue is full, a request is\n"
      "answered 503 with Retry-After. SIGTERM stops accepting, finishes the requests under way\n"
      "and exits 0.\n\n"
      "Examples:\n"
      "  facesearch user add ana --role searcher > ana.token && chmod 600 ana.token\n"
      "  facesearch serve --port 8420\n"
      "  FACESEARCH_TOKEN_FILE=ana.token facesearch query --server http://127.0.0.1:8420 probe.jpg\n"
      "  curl -H \"Authorization: Bearer $(cat ana.token)\" -F image=@probe.jpg \\\n"
      "       'http://127.0.0.1:8420/v1/query?case=2025-017&purpose=robbery'\n"
      "  facesearch serve --listen 0.0.0.0 --tls-cert cert.pem --tls-key key.pem\n"
      "  FACESEARCH_SERVER_CA=ca.pem facesearch query --server https://10.0.0.5:8420 probe.jpg\n"
      "  facesearch serve --port 0 --allow-anonymous   # loopback clients need no token");
  server::ServeOptions& o = args->options;
  cmd->add_option("--listen", o.host, "Address to bind; anything but loopback needs TLS or --insecure-no-tls")
      ->capture_default_str();
  cmd->add_option("-p,--port", o.port, "TCP port; 0 picks a free one (printed on stdout)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve HTTPS");
  cmd->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert (unencrypted, mode 0600)");
  cmd->add_flag("--insecure-no-tls", o.insecure_no_tls,
                "Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)");
  cmd->add_flag("--allow-anonymous", o.api.allow_anonymous,
                "Loopback requests without a token act as user 'anonymous' with the searcher role");
  cmd->add_option("--allow-root", o.api.allow_roots,
                  "A folder whose files /v1/index may read by path (repeatable); without it, uploads only")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--threads", o.threads, "Worker threads (default: 2 per hardware thread, at least 4)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--queue", o.queue, "Connections that may wait for a worker (default: 4 per worker); one more is answered 503")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--max-body", args->max_body_mb, "Largest request body in MiB (larger: 413)")
      ->check(CLI::Range(0.001, 1024.0))
      ->capture_default_str();
  cmd->add_option("--read-timeout", o.read_timeout_s, "Seconds a client may stay silent mid-request")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--write-timeout", o.write_timeout_s, "Seconds a client may take to accept the answer")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--rate-limit", o.api.rate_per_minute, "Requests a minute per user (bursts up to it); 0: none")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  AddPipelineOptions(*cmd, o.api.pipeline);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
