// `facesearch serve`: cpp-httplib around the API, with the limits a public service needs.
#include "server/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <thread>

#include "common/json.h"

namespace facesearch::server {

namespace {

using Clock = std::chrono::steady_clock;

// Set by SIGTERM/SIGINT on whichever thread receives it; a watcher thread stops the server.
volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void OnStopSignal(int) { g_stop_requested = 1; }

// Set on the thread answering a connection that is to be refused with 503: one that found the
// queue full, or waited in it longer than the limit, so that a flood is told to come back rather
// than served minutes late.
thread_local bool tl_overloaded = false;

// A fixed pool of workers behind a bounded queue. A connection that finds the queue full goes to
// one more thread that only refuses: it reads the request's head (bounded by the read timeout) and
// answers 503 with Retry-After, without reading the body or touching the corpus. When even that
// thread falls behind (its own queue as long as the workers'), the accepting thread waits and new
// clients wait in the kernel's listen backlog: memory and threads stay bounded whatever the number
// of clients.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(int threads, int capacity, double timeout_s) : capacity_(static_cast<size_t>(capacity)), timeout_(timeout_s) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(jobs_, work_ready_, false); });
    threads_.emplace_back([this] { Work(refusals_, refusal_ready_, true); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return jobs_.size() < capacity_ || refusals_.size() < capacity_ || shutdown_; });
    const bool full = jobs_.size() >= capacity_;
    (full ? refusals_ : jobs_).push_back({std::move(fn), Clock::now()});
    (full ? refusal_ready_ : work_ready_).notify_one();
  }
  void shutdown() override {  // the jobs already queued still run
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    work_ready_.notify_all();
    refusal_ready_.notify_all();
    not_full_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  struct Job {
    std::function<void()> fn;
    Clock::time_point queued;
  };
  void Work(std::deque<Job>& queue, std::condition_variable& ready, bool refuse) {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        ready.wait(lock, [&] { return !queue.empty() || shutdown_; });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
        not_full_.notify_one();
      }
      tl_overloaded = refuse || std::chrono::duration<double>(Clock::now() - job.queued).count() > timeout_;
      job.fn();
    }
  }

  size_t capacity_;
  double timeout_;
  std::mutex mu_;
  std::condition_variable work_ready_, refusal_ready_, not_full_;
  std::deque<Job> jobs_, refusals_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;  // the workers, then the refuser
};

ApiRequest ToApiRequest(const httplib::Request& req) {
  ApiRequest r;
  r.method = req.method;
  r.path = req.path;
  r.params.insert(req.params.begin(), req.params.end());
  r.content_type = req.get_header_value("Content-Type");
  r.authorization = req.get_header_value("Authorization");
  r.loopback = IsLoopback(req.remote_addr);
  if (req.is_multipart_form_data()) {
    for (const auto& [name, part] : req.files) r.parts.push_back({part.name, part.filename, part.content_type, part.content});
  } else {
    r.body = req.body;
  }
  return r;
}

void Apply(const ApiResponse& answer, httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  res.set_content(answer.body, answer.content_type);
}

// Apply, then close the connection: an overloaded server sheds the clients it refuses instead of
// holding their sockets (and a thread) open for more refusals. cpp-httplib 0.11 decides whether to
// keep a connection before the handlers run and offers no way to change its mind, except that a
// failed body write ends the connection: so the body goes out through a provider that writes it in
// full, then reports failure.
void ApplyAndClose(const ApiResponse& answer, httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  res.set_header("Connection", "close");
  res.set_content_provider(answer.body.size(), answer.content_type,
                           [body = answer.body](size_t offset, size_t length, httplib::DataSink& sink) {
                             sink.write(body.data() + offset, length);
                             return false;
                           });
}

// The refusals cpp-httplib makes itself (a body over the cap, a malformed request line) get the
// API's JSON error body too.
ApiResponse TransportError(int status) {
  switch (status) {
    case 413: return ErrorResponse(413, "too-large", "the request body is larger than this server accepts (--max-body)");
    case 414: return ErrorResponse(414, "too-large", "the request URI is too long");
    case 404: return ErrorResponse(404, "not-found", "no such endpoint");
    default: return ErrorResponse(status, "bad-request", "the request is not well-formed HTTP");
  }
}

// One JSON object per request on stderr (through the logger): time is the logger's.
void AccessLog(const httplib::Request& req, const httplib::Response& res, const std::string& user, double seconds) {
  const Json line = {{"remote", req.remote_addr},
                    {"user", user},
                    {"method", req.method},
                    {"path", req.path},
                    {"status", res.status},
                    {"bytes_in", std::atoll(req.get_header_value("Content-Length").c_str())},
                    {"bytes_out", res.body.empty() ? res.content_length_ : res.body.size()},  // provider or body
                    {"ms", RoundDecimals(seconds * 1000, 1)}};
  spdlog::info("access {}", JsonText(line));
}

Status CheckOptions(const ServeOptions& o) {
  if (o.tls_cert.empty() != o.tls_key.empty())
    return Fail(ErrorCode::kInvalidArgument, "TLS needs both --tls-cert and --tls-key");
  if (!IsLoopback(o.host) && o.tls_cert.empty() && !o.insecure_no_tls)
    return Fail(ErrorCode::kInvalidArgument,
                "binding " + o.host + " exposes faces and tokens to the network: give --tls-cert and --tls-key, "
                "or say --insecure-no-tls explicitly (e.g. behind a TLS-terminating proxy on the same host)");
  return Ok();
}

}  // namespace

bool IsLoopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address == "::1" || address == "localhost" ||
         address.rfind("::ffff:127.", 0) == 0;
}

Status Serve(const CorpusConfig& config, const ServeOptions& options, const std::function<void(int)>& on_listening) {
  FS_TRY(CheckOptions(options));
  const auto started = Clock::now();
  FS_ASSIGN(auto corpus, Corpus::Open(config, OpenOptions{options.api.pipeline}));
  Api api(*corpus, config, options.api);

  std::unique_ptr<httplib::Server> server;
  if (options.tls_cert.empty()) {
    server = std::make_unique<httplib::Server>();
  } else {
    server = std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!server->is_valid())
      return Fail(ErrorCode::kInvalidArgument, "cannot load the TLS certificate " + options.tls_cert + " or key " +
                                                   options.tls_key + " (PEM files, the key unencrypted)");
  }
  const int threads = options.threads > 0 ? options.threads : std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
  const int queue = options.queue > 0 ? options.queue : 4 * threads;
  server->new_task_queue = [=] { return new BoundedPool(threads, queue, options.queue_timeout_s); };
  server->set_payload_max_length(options.max_body_bytes);
  server->set_read_timeout(options.read_timeout_s);
  server->set_write_timeout(options.write_timeout_s);
  server->set_keep_alive_timeout(std::min(5, options.read_timeout_s));

  std::atomic<bool> draining = false;
  server->set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (!tl_overloaded && !draining) return httplib::Server::HandlerResponse::Unhandled;
    ApiResponse busy = ErrorResponse(503, "busy", draining ? "the server is shutting down: retry on another one"
                                                           : "the server is busy with other requests: retry in a few seconds");
    busy.headers.emplace_back("Retry-After", "5");
    ApplyAndClose(busy, res);
    api.Record(ToApiRequest(req), res.status, 0);
    AccessLog(req, res, "-", 0);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto handle = [&](const httplib::Request& req, httplib::Response& res) {
    const auto begin = Clock::now();
    const ApiRequest request = ToApiRequest(req);
    const ApiResponse answer = api.Handle(request);
    Apply(answer, res);
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    api.Record(request, answer.status, seconds);
    AccessLog(req, res, answer.user, seconds);
  };
  server->Get(".*", handle).Post(".*", handle).Put(".*", handle).Delete(".*", handle).Patch(".*", handle);
  server->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.has_header("Content-Type")) return;  // the API's own refusal
    Apply(TransportError(res.status), res);
    AccessLog(req, res, "-", 0);
  });
  server->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr e) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    spdlog::error("internal error answering a request: {}", what);
    Apply(ErrorResponse(500, "internal", "internal error: " + what), res);
  });

  const int port = options.port == 0 ? server->bind_to_any_port(options.host)
                                     : (server->bind_to_port(options.host, options.port) ? options.port : -1);
  if (port < 0)
    return Fail(ErrorCode::kInvalidArgument, "cannot listen on " + options.host + ":" + std::to_string(options.port) +
                                                 " (in use, or not an address of this host)");
  g_stop_requested = 0;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_term {}, old_int {};
  sigaction(SIGTERM, &action, &old_term);
  sigaction(SIGINT, &action, &old_int);
  std::atomic<bool> done = false;
  std::thread watcher([&] {
    while (!done && !g_stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!g_stop_requested) return;
    spdlog::info("stopping: no new connections; finishing the requests under way");
    draining = true;
    server->stop();
  });
  spdlog::info("serving {} faces of {} on {}://{}:{} ({} workers, started in {:.2f} s)", corpus->face_count(),
               config.corpus_dir.string(), options.tls_cert.empty() ? "http" : "https", options.host, port, threads,
               std::chrono::duration<double>(Clock::now() - started).count());
  if (on_listening) on_listening(port);
  const bool listened = server->listen_after_bind();
  done = true;
  watcher.join();
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  if (!listened && !g_stop_requested) return Fail(ErrorCode::kIo, "the server stopped listening unexpectedly");
  spdlog::info("stopped");
  return Ok();
}

}  // namespace facesearch::server
