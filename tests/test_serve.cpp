// `facesearch serve` (issue #18): the real binary serving on 127.0.0.1 (a free port), asked with
// cpp-httplib's client and raw sockets; users made with `facesearch user add`.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <sqlite3.h>

#include "common/sha256.h"
#include "store/store.h"
#include "server/api.h"
#include "support.h"

extern char** environ;

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// `facesearch serve --port 0` on a corpus, stopped with SIGTERM when it goes out of scope.
class Server {
 public:
  Server(const CorpusDir& c, std::vector<std::string> extra) : log_(c.dir / "serve.log") {
    std::vector<std::string> args = c.Args({"serve", "--port", "0"});
    args.insert(args.begin(), FacesearchBinary());
    args.insert(args.end(), extra.begin(), extra.end());
    int out[2];
    REQUIRE(pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    // The first line on stdout says where it listens.
    std::string line;
    char ch = 0;
    pollfd pfd{out[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && poll(&pfd, 1, 120000) > 0 && read(out[0], &ch, 1) == 1) line += ch;
    close(out[0]);
    INFO(Log());
    REQUIRE(line.rfind("listening on ", 0) == 0);
    url_ = Trim(line.substr(13));
  }
  ~Server() {
    if (pid_ > 0) Stop();
  }
  // SIGTERM, then the exit status.
  int Stop() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void Kill9() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  const std::string& url() const { return url_; }
  int port() const { return std::stoi(url_.substr(url_.rfind(':') + 1)); }
  std::string Log() const { return Slurp(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  std::string url_;
};

httplib::Headers Auth(const std::string& token) {
  if (token.empty()) return {};
  return {{"Authorization", "Bearer " + token}};
}

httplib::Result Get(const Server& s, const std::string& path, const std::string& token) {
  httplib::Client client(s.url());
  client.set_read_timeout(120);
  return client.Get(path, Auth(token));
}

httplib::Result PostPhotos(const Server& s, const std::string& path, const std::string& token,
                           const std::vector<std::pair<std::string, fs::path>>& photos) {
  httplib::Client client(s.url());
  client.set_read_timeout(120);
  httplib::MultipartFormDataItems items;
  for (const auto& [name, photo] : photos)
    items.push_back({name, Slurp(photo), photo.filename().string(), "image/jpeg"});
  return client.Post(path, Auth(token), items);
}

httplib::Result PostBody(const Server& s, const std::string& path, const std::string& token, const std::string& body,
                         const std::string& content_type) {
  httplib::Client client(s.url());
  client.set_read_timeout(120);
  return client.Post(path, Auth(token), body, content_type);
}

// The error code of a refusal's JSON body.
std::string ErrorCodeOf(const httplib::Result& r) {
  REQUIRE(r);
  const json body = json::parse(r->body, nullptr, false);
  INFO(r->body);
  REQUIRE(body.contains("error"));
  return body["error"]["code"].get<std::string>();
}

std::string AddUser(const CorpusDir& c, const std::string& name, const std::string& role) {
  RunResult r = c.Run({"user", "add", name, "--role", role});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return Trim(r.out);
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

size_t AuditRecords(const CorpusDir& c) {
  RunResult r = c.Run({"audit", "--format", "jsonl"});
  REQUIRE(r.exit_code == 0);
  return static_cast<size_t>(std::count(r.out.begin(), r.out.end(), '\n'));
}

// A raw TCP connection to the server, for what an HTTP client library will not send.
int Connect(const Server& s) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(s.port()));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Reads until the peer closes or `timeout_s` passes; returns what came, and whether it closed.
std::pair<std::string, bool> ReadUntilClosed(int fd, int timeout_s) {
  std::string got;
  char buf[4096];
  pollfd pfd{fd, POLLIN, 0};
  while (poll(&pfd, 1, timeout_s * 1000) > 0) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return {got, true};
    got.append(buf, static_cast<size_t>(n));
  }
  return {got, false};
}

}  // namespace

TEST_CASE("serve answers each endpoint for the roles that hold its right, refuses the others, and audits the user",
          "[serve][e2e]") {
  CorpusDir c;
  c.Index({"obama.jpg", "biden.jpg"});
  const std::map<std::string, std::string> tokens = {{"searcher", AddUser(c, "sam", "searcher")},
                                                     {"curator", AddUser(c, "cora", "curator")},
                                                     {"admin", AddUser(c, "adam", "admin")},
                                                     {"auditor", AddUser(c, "audrey", "auditor")}};
  Server server(c, {"--detect-max-side", "600", "-v"});  // -v: the log says when models are loaded
  const fs::path probe = TestImage("obama2.jpg");

  CHECK(Get(server, "/v1/health", "")->status == 200);
  CHECK(ErrorCodeOf(Get(server, "/v1/info", "")) == "unauthorized");
  CHECK(ErrorCodeOf(Get(server, "/v1/info", "fs_" + std::string(64, '0'))) == "unauthorized");
  CHECK(ErrorCodeOf(Get(server, "/v1/nothing", tokens.at("admin"))) == "not-found");
  for (const auto& [role, token] : tokens) {
    INFO(role);
    CHECK(Get(server, "/v1/info", token)->status == 200);
    CHECK(Get(server, "/metrics", token)->status == 200);
    const bool audits = role == "admin" || role == "auditor";
    CHECK(Get(server, "/v1/audit", token)->status == (audits ? 200 : 403));
    if (role == "auditor") {
      CHECK(ErrorCodeOf(PostPhotos(server, "/v1/query", token, {{"image", probe}})) == "forbidden");
      CHECK(ErrorCodeOf(PostPhotos(server, "/v1/compare", token, {{"a", probe}, {"b", probe}})) == "forbidden");
      CHECK(ErrorCodeOf(PostPhotos(server, "/v1/faces", token, {{"image", probe}})) == "forbidden");
    }
    if (role == "searcher" || role == "auditor") {
      CHECK(ErrorCodeOf(PostBody(server, "/v1/forget", token, R"({"face_ids":[1]})", "application/json")) ==
            "forbidden");
      CHECK(ErrorCodeOf(Get(server, "/v1/optout", token)) == "forbidden");
      CHECK(ErrorCodeOf(PostPhotos(server, "/v1/optout", token, {{"photo", probe}})) == "forbidden");
    }
  }
  auto compared = PostPhotos(server, "/v1/compare?case=K-1", tokens.at("searcher"), {{"a", probe}, {"b", TestImage("obama.jpg")}});
  REQUIRE(compared);
  CHECK(compared->status == 200);
  CHECK(json::parse(compared->body)["same"] == true);

  // Searchers, curators and admins search; each search is audited with its user and case.
  int64_t obama_face = 0;
  for (const char* role : {"searcher", "curator", "admin"}) {
    auto r = PostPhotos(server, std::string("/v1/query?case=K-7&purpose=test%20") + role, tokens.at(role), {{"image", probe}});
    REQUIRE(r);
    INFO(r->body);
    REQUIRE(r->status == 200);
    CHECK(r->get_header_value("X-Facesearch-Exit") == "0");
    const json answer = json::parse(r->body);
    REQUIRE(answer["results"][0]["matches"].size() == 1);
    obama_face = answer["results"][0]["matches"][0]["face_id"].get<int64_t>();
  }
  auto audit = Get(server, "/v1/audit?case=K-7", tokens.at("auditor"));
  REQUIRE(audit);
  std::vector<std::string> users;
  std::istringstream lines(audit->body);
  for (std::string line; std::getline(lines, line);) {
    const json record = json::parse(line);
    CHECK(record["action"] == "query");
    CHECK(record["purpose"].get<std::string>().rfind("test ", 0) == 0);
    users.push_back(record["user"].get<std::string>());
  }
  CHECK(users == std::vector<std::string>{"api:sam", "api:cora", "api:adam"});
  // A searcher may ask for the faces of a photo: what `faces --jsonl` prints.
  auto faces = PostPhotos(server, "/v1/faces", tokens.at("searcher"), {{"image", probe}});
  REQUIRE(faces);
  INFO(faces->body);
  CHECK(faces->status == 200);
  CHECK(faces->get_header_value("X-Facesearch-Exit") == "0");
  CHECK(json::parse(faces->body)["image"] == "obama2.jpg");

  // A curator's forget leaves the server's memory before the answer comes back.
  auto forgot = PostBody(server, "/v1/forget?case=K-7", tokens.at("curator"),
                         "{\"face_ids\":[" + std::to_string(obama_face) + "]}", "application/json");
  REQUIRE(forgot);
  INFO(forgot->body);
  CHECK(forgot->status == 200);
  CHECK(json::parse(forgot->body)["faces_erased"] == 1);
  auto metrics = Get(server, "/metrics", tokens.at("admin"));
  CHECK(metrics->body.find("\nfacesearch_faces 1\n") != std::string::npos);
  CHECK(metrics->body.find("facesearch_requests_total{path=\"/v1/query\",status=\"200\"} 3") != std::string::npos);
  // A curator's opt-out erases the matching face from the server's memory before it answers: the
  // next query finds nothing. It is audited with the curator and the case. Its photo is analysed
  // by the analyzer the queries used, not by models loaded for it.
  auto model_loads = [&] { return CountOf(server.Log(), "loading models from"); };
  const size_t loads_before_optout = model_loads();
  CHECK(loads_before_optout > 0);
  auto opted = PostPhotos(server, "/v1/optout?case=K-8&reason=ticket%20881", tokens.at("curator"),
                          {{"photo", TestImage("biden.jpg")}});
  REQUIRE(opted);
  INFO(opted->body);
  CHECK(opted->status == 200);
  CHECK(json::parse(opted->body) == json{{"id", 1}, {"faces_erased", 1}, {"images_erased", 1}});
  CHECK(model_loads() == loads_before_optout);
  auto after = PostPhotos(server, "/v1/query", tokens.at("searcher"), {{"image", TestImage("biden.jpg")}});
  REQUIRE(after);
  CHECK(after->get_header_value("X-Facesearch-Exit") == "1");
  CHECK(json::parse(Get(server, "/v1/optout", tokens.at("admin"))->body)["reason"] == "ticket 881");
  std::istringstream optout_audit(Get(server, "/v1/audit?case=K-8", tokens.at("auditor"))->body);
  int optout_records = 0;
  for (std::string line; std::getline(optout_audit, line); ++optout_records) {
    const json record = json::parse(line);
    CHECK(record["action"] == "optout");
    CHECK(record["user"] == "api:cora");
  }
  CHECK(optout_records == 2);  // the opt-out, and the erasure it made
  httplib::Client client(server.url());
  auto removed = client.Delete("/v1/optout?id=1", Auth(tokens.at("curator")));
  REQUIRE(removed);
  CHECK(removed->body == "{\"id\":1,\"removed\":true}\n");
  CHECK(Get(server, "/v1/optout", tokens.at("curator"))->get_header_value("X-Facesearch-Exit") == "1");
  CHECK(server.Stop() == 0);
  CHECK(server.Log().find("\"user\":\"cora\",\"method\":\"POST\",\"path\":\"/v1/forget\",\"status\":200") !=
        std::string::npos);
}

TEST_CASE("query (photos or an embed file), compare and faces --server print byte for byte what they print locally, with the same exit status",
          "[serve][compare][e2e]") {
  CorpusDir c;
  c.Index({"obama.jpg", "biden.jpg"});
  Server server(c, {"--allow-anonymous"});
  const std::string probe = TestImage("obama2.jpg").string();
  // A probe embedded elsewhere (`embed`) is uploaded as its embed file and searched by the server.
  const std::string embedded = (c.dir / "probe.jsonl").string();
  REQUIRE(c.Run({"embed", "-o", embedded, probe}).exit_code == 0);
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"query", "-f", "json", probe}, {"query", "-f", "csv", "--threshold", "0.1", probe},
        {"query", "-f", "json", "--embedded", embedded},
        {"query", "-f", "json", "--embedded", embedded, "--total-faces", "3000000000"},  // one shard of many
        {"query", "-f", "json", "--no-collapse", probe},
        {"compare", "--json", probe, TestImage("biden.jpg").string()},
        {"faces", "--jsonl", probe, TestImage("biden.jpg").string()}, {"faces", probe}}) {
    const RunResult local = c.Run(args);
    std::vector<std::string> remote_args = args;
    remote_args.insert(remote_args.begin() + 1, {"--server", server.url()});
    const RunResult remote = c.Run(remote_args);
    INFO(remote.err);
    CHECK(remote.exit_code == local.exit_code);
    CHECK(remote.out == local.out);
    CHECK(!remote.out.empty());
  }
  // SIGTERM while a query runs: the query is answered, then the server exits 0.
  auto pending = std::async(std::launch::async, [&] {
    return PostPhotos(server, "/v1/query", "", {{"image", TestImage("obama2.jpg")}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(server.Stop() == 0);
  auto answered = pending.get();
  REQUIRE(answered);
  CHECK(answered->status == 200);
}

TEST_CASE("serve refuses bad requests with a clear JSON error, writes nothing and keeps serving", "[serve][e2e]") {
  CorpusDir c;
  c.Index({"obama2.jpg"});
  const std::string curator = AddUser(c, "cora", "curator");
  const std::string revoked = AddUser(c, "rex", "searcher");
  REQUIRE(c.Run({"user", "revoke", "rex"}).exit_code == 0);
  Server server(c, {"--max-body", "0.5", "--read-timeout", "1", "--max-pixels", "200000"});
  const size_t records = AuditRecords(c);

  CHECK(ErrorCodeOf(Get(server, "/v1/info", revoked)) == "unauthorized");
  CHECK(ErrorCodeOf(Get(server, "/v1/info", "not a bearer token")) == "unauthorized");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/forget", curator, "{\"face_ids\":[1,", "application/json")) == "bad-request");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/forget", curator, "{\"face_ids\":\"1\"}", "application/json")) ==
        "bad-request");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/forget", curator, "face_ids=1", "text/plain")) == "unsupported-media-type");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/query", curator, "hello", "text/plain")) == "unsupported-media-type");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/query", curator, "{\"not\":\"an embed file\"}\n", "application/x-ndjson")) ==
        "bad-request");
  CHECK(ErrorCodeOf(PostBody(server, "/v1/query?top_k=nan", curator, "x", "image/jpeg")) == "bad-request");
  CHECK(ErrorCodeOf(PostPhotos(server, "/v1/query", curator, {{"photo", TestImage("obama2.jpg")}})) == "bad-request");
  CHECK(ErrorCodeOf(PostPhotos(server, "/v1/query", curator, {{"image", TestImage("obama3.jpg")}})) == "too-large");
  // Image bytes the decoder refuses: not an image, a truncated JPEG, one over the pixel cap.
  const std::string jpeg = Slurp(TestImage("obama2.jpg"));
  for (const std::string& hostile : {std::string("GIF89a") + std::string(100, '\xff'), jpeg.substr(0, 2000), jpeg}) {
    auto r = PostBody(server, "/v1/query?name=hostile.jpg", curator, hostile, "image/jpeg");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 400);
    CHECK(r->get_header_value("X-Facesearch-Exit") == "2");
    const json answer = json::parse(r->body);
    CHECK(answer["probe"] == "hostile.jpg");
    CHECK(!answer["error"].get<std::string>().empty());
  }
  // A truncated upload (the client goes away mid-body) and a slow client (silent mid-headers
  // longer than --read-timeout) are dropped without an answer.
  const int truncated = Connect(server);
  const std::string head = "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + curator +
                           "\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n";
  REQUIRE(write(truncated, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
  REQUIRE(write(truncated, jpeg.data(), 5000) == 5000);
  close(truncated);
  const int slow = Connect(server);
  REQUIRE(write(slow, "GET /v1/info HTTP/1.1\r\nHo", 25) == 25);
  const auto [said, closed] = ReadUntilClosed(slow, 10);
  close(slow);
  CHECK(closed);
  CHECK(said.find("200 OK") == std::string::npos);

  auto health = Get(server, "/v1/health", "");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(Get(server, "/v1/info", curator)->status == 200);

  // One worker and a queue of one: a slow client holds the worker, a second waits in the queue,
  // and a third is answered 503 at once (not after the slow ones), with Retry-After.
  Server small(c, {"--threads", "1", "--queue", "1", "--read-timeout", "3"});
  std::vector<int> slow_clients;
  for (int i = 0; i < 2; ++i) {
    slow_clients.push_back(Connect(small));
    REQUIRE(write(slow_clients.back(), "GET /v1/info HTTP/1.1\r\nHo", 25) == 25);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const auto asked = std::chrono::steady_clock::now();
  auto busy = Get(small, "/v1/info", curator);
  REQUIRE(busy);
  CHECK(std::chrono::steady_clock::now() - asked < std::chrono::milliseconds(2500));
  CHECK(busy->status == 503);
  CHECK(busy->get_header_value("Retry-After") == "5");
  CHECK(ErrorCodeOf(busy) == "busy");
  // A refused client that asks to keep its connection is told, and shown, that it is closed: an
  // overloaded server sheds connections rather than holding them open for more refusals.
  const int kept = Connect(small);
  const std::string keep_alive = "GET /v1/info HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
  REQUIRE(write(kept, keep_alive.data(), keep_alive.size()) == static_cast<ssize_t>(keep_alive.size()));
  const auto [refusal, shed] = ReadUntilClosed(kept, 2);
  close(kept);
  CHECK(refusal.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(refusal.find("Connection: close\r\n") != std::string::npos);
  CHECK(shed);
  for (int fd : slow_clients) close(fd);
  // The worker frees once it reads the closed connections; until then a client is told to retry.
  int status = 503;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (status == 503 && std::chrono::steady_clock::now() < until) {
    auto again = Get(small, "/v1/info", curator);
    REQUIRE(again);
    status = again->status;
    if (status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(status == 200);
  CHECK(small.Stop() == 0);

  CHECK(server.Stop() == 0);
  CHECK(AuditRecords(c) == records);
  CHECK(c.Run({"verify"}).exit_code == 0);
}

int64_t Faces(const CorpusDir& c) {
  RunResult r = c.Run({"info", "--json"});
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out)["faces"].get<int64_t>();
}

TEST_CASE("/v1/index makes uploads searchable at once, refuses paths outside --allow-root, and survives kill -9",
          "[serve][e2e]") {
  CorpusDir c;
  c.Index({"obama.jpg"});
  const fs::path allowed = c.dir / "allowed";
  fs::create_directories(allowed);
  CopyTestImage("biden.jpg", allowed);
  fs::create_symlink(c.photos / "obama.jpg", allowed / "link.jpg");
  const std::string curator = AddUser(c, "cora", "curator");
  const std::string searcher = AddUser(c, "sam", "searcher");
  const size_t records = AuditRecords(c);
  {
    Server server(c, {"--allow-root", allowed.string()});
    CHECK(ErrorCodeOf(PostPhotos(server, "/v1/index", searcher, {{"image", TestImage("obama2.jpg")}})) == "forbidden");
    for (const fs::path& outside : {c.photos / "obama.jpg", allowed / ".." / "photos" / "obama.jpg", allowed / "link.jpg"}) {
      INFO(outside);
      const json body = {{"paths", {outside.string()}}};
      CHECK(ErrorCodeOf(PostBody(server, "/v1/index", curator, body.dump(), "application/json")) == "forbidden");
    }
    CHECK(AuditRecords(c) == records);
    CHECK(Faces(c) == 1);
    const json inside = {{"paths", {(allowed / "biden.jpg").string()}}, {"provenance", {{"source", "allowed-root"}}}};
    auto by_path = PostBody(server, "/v1/index?case=K-9", curator, inside.dump(), "application/json");
    REQUIRE(by_path);
    INFO(by_path->body);
    CHECK(json::parse(by_path->body)["added"] == 1);
    httplib::Client client(server.url());
    client.set_read_timeout(120);
    httplib::MultipartFormDataItems items = {{"image", Slurp(TestImage("obama2.jpg")), "o2.jpg", "image/jpeg"},
                                             {"provenance", R"({"source":"upload","licence":"CC-BY"})", "", ""}};
    auto uploaded = client.Post("/v1/index?case=K-9", Auth(curator), items);
    REQUIRE(uploaded);
    INFO(uploaded->body);
    CHECK(uploaded->status == 200);
    CHECK(json::parse(uploaded->body)["faces"] == 1);
    // In the server's memory before the answer came back.
    CHECK(Get(server, "/metrics", curator)->body.find("\nfacesearch_faces 3\n") != std::string::npos);
    const RunResult exported = c.Run({"export"});
    CHECK(exported.out.find("\"source\":\"upload\",\"captured_at\":null,\"licence\":\"CC-BY\"") != std::string::npos);
    CHECK(exported.out.find("\"source\":\"allowed-root\"") != std::string::npos);

    // kill -9 while an upload is being indexed: the corpus verifies, and the same upload again completes.
    auto pending = std::async(std::launch::async, [&] {
      return PostPhotos(server, "/v1/index", curator, {{"image", TestImage("obama3.jpg")}, {"image", TestImage("obama_partial_face.jpg")}});
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    server.Kill9();
    pending.get();
  }
  const RunResult verified = c.Run({"verify"});
  INFO(verified.out << verified.err);
  CHECK(verified.exit_code == 0);
  Server again(c, {});
  auto rerun = PostPhotos(again, "/v1/index", curator, {{"image", TestImage("obama3.jpg")}, {"image", TestImage("obama_partial_face.jpg")}});
  REQUIRE(rerun);
  INFO(rerun->body);
  CHECK(rerun->status == 200);
  CHECK(again.Stop() == 0);
  CHECK(Faces(c) == 5);
}

// Sets environment variables for the commands this test runs, and restores them.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, old] : saved_) old ? (void)::setenv(name.c_str(), old->c_str(), 1) : (void)::unsetenv(name.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A CA of our own (ca.pem) and a certificate it signs for 127.0.0.1 (server.pem, server.key), made
// with the openssl command line in `dir`.
void MakeCertificates(const fs::path& dir) {
  const std::string d = dir.string() + "/";
  std::ofstream(dir / "san.cnf") << "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n";
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", d + "ca.key", "-out", d + "ca.pem", "-days", "2", "-subj", "/CN=facesearch test CA"},
           {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            d + "server.key", "-out", d + "server.csr", "-subj", "/CN=127.0.0.1"},
           {"openssl", "x509", "-req", "-in", d + "server.csr", "-CA", d + "ca.pem", "-CAkey", d + "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", d + "san.cnf", "-out", d + "server.pem"}}) {
    const RunResult r = RunProgram(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
}

TEST_CASE("query, optout and forget --server reach an HTTPS server whose CA the client is given, and exit 2 saying --server-ca when it is not",
          "[serve][e2e]") {
  CorpusDir c;
  c.Index({"biden.jpg", "obama.jpg"});
  MakeCertificates(c.dir.path());
  const std::string ca = (c.dir / "ca.pem").string();
  ScopedEnv token({{"FACESEARCH_TOKEN", AddUser(c, "cora", "curator")}});
  Server server(c, {"--tls-cert", (c.dir / "server.pem").string(), "--tls-key", (c.dir / "server.key").string()});
  REQUIRE(server.url().rfind("https://127.0.0.1:", 0) == 0);
  const std::string biden = TestImage("biden.jpg").string();

  const RunResult untrusted = c.Run({"query", "--server", server.url(), biden});
  CHECK(untrusted.exit_code == 2);
  CHECK(untrusted.out.empty());
  CHECK(untrusted.err.find("not trusted") != std::string::npos);
  CHECK(untrusted.err.find("--server-ca FILE") != std::string::npos);
  const RunResult trusted = c.Run({"query", "--server", server.url(), "--server-ca", ca, "-f", "json", biden});
  INFO(trusted.err);
  CHECK(trusted.exit_code == 0);
  CHECK(json::parse(trusted.out)["results"][0]["matches"].size() == 1);

  // The CA from the environment; a curator's opt-out and forget through the server print what the
  // commands print locally, and the next query through the server no longer finds the person.
  ScopedEnv trust({{"FACESEARCH_SERVER_CA", ca}});
  const RunResult added =
      c.Run({"--request-id", "rq-9", "optout", "--server", server.url(), "add", biden, "--reason", "ticket 9", "--json"});
  INFO(added.err);
  CHECK(added.exit_code == 0);
  CHECK(added.out == "{\"id\":1,\"faces_erased\":1,\"images_erased\":1}\n");
  CHECK(c.Run({"query", "--server", server.url(), biden}).exit_code == 1);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"optout", "list"}, {"optout", "list", "--json"}}) {
    const RunResult local = c.Run(args);
    std::vector<std::string> remote_args = args;
    remote_args.insert(remote_args.begin() + 1, {"--server", server.url()});
    const RunResult remote = c.Run(remote_args);
    CHECK(remote.exit_code == 0);
    CHECK(remote.out == local.out);
  }
  CHECK(c.Run({"optout", "--server", server.url(), "remove", "--request", "rq-9"}).out ==
        "opt-out 1 (request rq-9) removed; faces erased earlier stay erased\n");
  CHECK(c.Run({"optout", "list"}).exit_code == 1);
  // --image names a local file by its content: the server finds the image by its SHA-256.
  const RunResult forgot = c.Run({"forget", "--server", server.url(), "--image", TestImage("obama.jpg").string()});
  INFO(forgot.err);
  CHECK(forgot.exit_code == 0);
  CHECK(forgot.out == "erased 1 face(s) and 1 image(s); 0 face(s) remain\n");
  CHECK(server.Stop() == 0);
}

TEST_CASE("serve will not listen beyond loopback without TLS unless told --insecure-no-tls", "[serve]") {
  TempDir dir;
  const RunResult r = RunFacesearch({"--corpus", (dir / "corpus").string(), "serve", "--listen", "0.0.0.0"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--tls-cert") != std::string::npos);
  CHECK(r.err.find("--insecure-no-tls") != std::string::npos);
  const RunResult half = RunFacesearch({"--corpus", (dir / "corpus").string(), "serve", "--tls-cert", "c.pem"});
  CHECK(half.exit_code == 2);
  CHECK(half.err.find("both --tls-cert and --tls-key") != std::string::npos);
}

TEST_CASE("The API's request parsing refuses malformed parameters, parts and bodies with a status and a reason",
          "[serve]") {
  using server::ApiRequest;
  ApiRequest raw{"POST", "/v1/query", {{"top_k", "3"}, {"threshold", "0.5"}, {"name", "p.jpg"},
                 {"total_faces", "3000000000"}, {"request_id", "7f3a"}}, "image/jpeg", "bytes", {}, "", true};
  auto q = server::ParseQuery(raw);
  REQUIRE(q);
  CHECK(q->options.top_k == 3);
  CHECK(q->total_faces == 3000000000);
  CHECK(server::RequestAudit(raw, "ana").request_id == "7f3a");
  CHECK(*q->threshold == 0.5f);
  REQUIRE(q->probes.size() == 1);
  CHECK(q->probes[0].name == "p.jpg");
  CHECK(*q->probes[0].bytes == "bytes");
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"top_k", "0"}, {"top_k", "1e3"}, {"threshold", "inf"}, {"threshold", "nan"}, {"max_fmr", "2"},
           {"all_faces", "maybe"}, {"format", "xml"}, {"fields", "image,bogus"}, {"face", "-1"}, {"total_faces", "0"}, {"no_collapse", "maybe"}}) {
    ApiRequest bad = raw;
    bad.params = {{key, value}};
    if (key == "fields") bad.params.emplace("format", "csv");
    INFO(key << "=" << value);
    auto parsed = server::ParseQuery(bad);
    REQUIRE(!parsed);
    CHECK(parsed.error().status == 400);
    CHECK(parsed.error().message.find(key) != std::string::npos);
  }
  ApiRequest json_body = raw;
  json_body.content_type = "application/json";
  CHECK(server::ParseQuery(json_body).error().status == 415);

  ApiRequest forget{"POST", "/v1/forget", {}, "application/json", R"({"face_ids":[3,4],"images":["a.jpg"]})", {}, "", false};
  auto f = server::ParseForget(forget);
  REQUIRE(f);
  CHECK(f->face_ids == std::vector<int64_t>{3, 4});
  for (const char* body : {"", "[]", "{}", R"({"face_ids":[-1]})", R"({"face_ids":[1.5]})", R"({"images":[""]})",
                           R"({"older_than":"soon"})", R"({"drop":"table"})", "{\"face_ids\":[1]"}) {
    forget.body = body;
    INFO(body);
    CHECK(server::ParseForget(forget).error().status == 400);
  }
  ApiRequest optout{"POST", "/v1/optout", {{"threshold", "0.5"}, {"reason", "ticket 9"}}, "image/jpeg", "bytes", {}, "", true};
  auto o = server::ParseOptOut(optout);
  REQUIRE(o);
  CHECK(*o->request.threshold == 0.5f);
  CHECK(o->request.reason == "ticket 9");
  CHECK(*o->request.photo.bytes == "bytes");
  CHECK(o->json);
  for (const std::multimap<std::string, std::string>& params :
       {std::multimap<std::string, std::string>{{"threshold", "3"}}, {{"format", "csv"}}}) {
    ApiRequest bad = optout;
    bad.params = params;
    CHECK(server::ParseOptOut(bad).error().status == 400);
  }
  ApiRequest two_photos = optout;
  two_photos.content_type = "multipart/form-data; boundary=x";
  two_photos.parts = {{"photo", "a.jpg", "image/jpeg", "a"}, {"photo", "b.jpg", "image/jpeg", "b"}};
  CHECK(server::ParseOptOut(two_photos).error().message.find("one photo") != std::string::npos);
  two_photos.parts = {{"image", "a.jpg", "image/jpeg", "a"}};
  CHECK(server::ParseOptOut(two_photos).error().message.find("'image'") != std::string::npos);
  ApiRequest faces{"POST", "/v1/faces", {{"format", "table"}}, "multipart/form-data; boundary=x", "",
                   {{"image", "a.jpg", "image/jpeg", "a"}, {"image", "b.jpg", "image/jpeg", "b"}}, "", true};
  auto f_parsed = server::ParseFaces(faces);
  REQUIRE(f_parsed);
  CHECK_FALSE(f_parsed->jsonl);
  REQUIRE(f_parsed->photos.size() == 2);
  CHECK(f_parsed->photos[1].name == "b.jpg");
  faces.content_type = "text/plain";
  CHECK(server::ParseFaces(faces).error().status == 415);

  CHECK(server::BearerToken("").value().empty());
  CHECK(server::BearerToken("bearer abc").value() == "abc");
  CHECK(server::BearerToken("Basic abc").error().status == 401);
  CHECK(server::BearerToken("Bearer ").error().status == 401);
}

TEST_CASE("Tokens are found by their hash and revoked ones never, roles grant their rights, the rate limit refills",
          "[serve]") {
  std::vector<UserRecord> users = {{1, "ana", Role::kSearcher, Sha256Hex("fs_a"), "t", ""},
                                   {2, "bo", Role::kAdmin, Sha256Hex("fs_b"), "t", "t2"}};
  REQUIRE(FindUserByToken(users, "fs_a") != nullptr);
  CHECK(FindUserByToken(users, "fs_a")->name == "ana");
  CHECK(FindUserByToken(users, "fs_b") == nullptr);  // revoked
  CHECK(FindUserByToken(users, "fs_c") == nullptr);
  CHECK(FindUserByToken(users, "") == nullptr);
  CHECK(RoleAllows(Role::kSearcher, Right::kSearch));
  CHECK_FALSE(RoleAllows(Role::kSearcher, Right::kForget));
  CHECK_FALSE(RoleAllows(Role::kAuditor, Right::kSearch));
  CHECK(RoleAllows(Role::kAuditor, Right::kAudit));
  CHECK(RoleAllows(Role::kCurator, Right::kForget));
  CHECK_FALSE(RoleAllows(Role::kCurator, Right::kAudit));
  for (Right r : {Right::kSearch, Right::kIndex, Right::kForget, Right::kAudit, Right::kInfo})
    CHECK(RoleAllows(Role::kAdmin, r));
  server::RateLimiter limiter(120);  // 2 a second, bursts of 120
  int allowed = 0;
  for (int i = 0; i < 130; ++i) allowed += limiter.Take("ana") == 0;
  CHECK(allowed == 120);
  CHECK(limiter.Take("ana") > 0);
  CHECK(limiter.Take("bo") == 0);  // buckets are per user
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  CHECK(limiter.Take("ana") == 0);
}

TEST_CASE("A version-4 corpus opens at the current version with an empty users table, and a read-only open lists no users",
          "[serve][store]") {
  TempDir dir;
  const fs::path db = dir / "corpus.sqlite";
  REQUIRE(Store::Open(db, "models-x"));
  auto raw = [&](const char* sql) {
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(h);
  };
  raw((std::string(kDropClustersV9Sql) + "DROP TABLE users; DROP TABLE subject_exclusions; DROP TABLE subject_refs; DROP TABLE subjects; "
      "ALTER TABLE images DROP COLUMN phash; ALTER TABLE images DROP COLUMN exif_taken_at; "
      "ALTER TABLE images DROP COLUMN camera_make; ALTER TABLE images DROP COLUMN camera_model; "
      "ALTER TABLE images DROP COLUMN gps_lat; ALTER TABLE images DROP COLUMN gps_lon; "
      "ALTER TABLE images DROP COLUMN exif_problem; ALTER TABLE images DROP COLUMN duration_s; "
      "ALTER TABLE faces DROP COLUMN video_frame; ALTER TABLE faces DROP COLUMN video_at_s; "
      "ALTER TABLE faces DROP COLUMN video_first_s; ALTER TABLE faces DROP COLUMN video_last_s; "
      "PRAGMA user_version = 4; UPDATE meta SET value = '4' WHERE key = 'schema_version';").c_str());
  {
    auto old = Store::OpenReadOnly(db);
    REQUIRE(old);
    CHECK((*old)->Users().value().empty());
  }
  auto store = Store::Open(db, "models-x");
  REQUIRE(store);
  CHECK((*store)->GetMeta("schema_version").value() == std::to_string(kSchemaVersion));
  AuditRecord record;
  record.user = "root";
  record.action = "user-add";
  record.params = "{}";
  record.results = "null";
  REQUIRE((*store)->AddUser(UserRecord{0, "ana", Role::kCurator, Sha256Hex("fs_t"), "", ""}, record));
  CHECK(!(*store)->AddUser(UserRecord{0, "ana", Role::kAdmin, Sha256Hex("fs_u"), "", ""}, record));
  const auto users = (*store)->Users().value();
  REQUIRE(users.size() == 1);
  CHECK(users[0].role == Role::kCurator);
  CHECK((*store)->VerifyAudit().value().records == 1);
}
