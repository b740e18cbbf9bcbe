// URL fetching with libcurl (see fetcher.h).
#include "fetch/fetcher.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <thread>

#include "facesearch/version.h"

#ifndef FACESEARCH_PROJECT_URL
#define FACESEARCH_PROJECT_URL ""
#endif

namespace facesearch {

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kProduct = "facesearch";
constexpr int64_t kMaxRobotsBytes = 500 * 1024;  // RFC 9309: parse at least 500 KiB

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// '*' matches any run, a final '$' anchors the end; otherwise the pattern is a prefix.
bool PatternMatches(std::string_view pattern, std::string_view path) {
  bool anchored = !pattern.empty() && pattern.back() == '$';
  if (anchored) pattern.remove_suffix(1);
  // Greedy-with-backtracking glob match over a prefix of `path`.
  size_t p = 0, s = 0, star = std::string_view::npos, mark = 0;
  while (true) {
    if (p == pattern.size()) {
      if (!anchored || s == path.size()) return true;
      if (star == std::string_view::npos) return false;
      p = star + 1;  // let the last '*' swallow one more character
      s = ++mark;
      if (s > path.size()) return false;
      continue;
    }
    if (pattern[p] == '*') {
      star = p++;
      mark = s;
      continue;
    }
    if (s < path.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
      continue;
    }
    if (star == std::string_view::npos) return false;
    p = star + 1;
    s = ++mark;
    if (s > path.size()) return false;
  }
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

int HexValue(char c) { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10; }

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 3986 §6.2.2 for comparing robots.txt paths and rules (RFC 9309 §2.2.2): an escaped
// unreserved character is decoded ("%70" is "p"), other escapes get upper-case hex ("%2f" is
// "%2F", never "/"), and bytes a URI cannot hold raw (non-ASCII, controls, space, a stray '%') are
// escaped. Reserved characters, '*' and '$' among them, are left as they are.
std::string NormalizeEscapes(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size() && IsHex(s[i + 1]) && IsHex(s[i + 2])) {
      const auto decoded = static_cast<unsigned char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      if (IsUnreserved(decoded)) {
        out += static_cast<char>(decoded);
      } else {
        out += '%';
        out += kHex[decoded >> 4];
        out += kHex[decoded & 15];
      }
      i += 2;
    } else if (c == '%' || c <= 0x20 || c >= 0x7f) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// RFC 3986 §5.2.4 on a path that starts with '/': "/a/./b/../c" is "/a/c". Run after decoding,
// so that "/%2e%2e/" is seen as the "/../" a server will resolve it to.
std::string RemoveDotSegments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    const bool last = end == std::string_view::npos;
    if (last) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!out.empty()) out.pop_back();
    }
    if (segment == "." || segment == "..") {
      if (last) out.emplace_back();  // "/a/.." is "/", a directory
    } else {
      out.push_back(segment);
    }
    start = end + 1;
  }
  std::string joined;
  for (const std::string_view segment : out) {
    joined += '/';
    joined += segment;
  }
  return joined.empty() ? "/" : joined;
}

// A request's path and query as robots.txt rules see it: escapes normalised, dot segments gone.
std::string NormalizeTarget(std::string_view path_and_query) {
  const size_t q = path_and_query.find('?');
  std::string path = RemoveDotSegments(NormalizeEscapes(path_and_query.substr(0, q)));
  if (q != std::string_view::npos) path += NormalizeEscapes(path_and_query.substr(q));
  return path;
}

// libcurl's URL parser (CURLU), freed on every path.
class CurlUrl {
 public:
  CurlUrl() : h_(curl_url()) {}
  ~CurlUrl() { curl_url_cleanup(h_); }
  CurlUrl(const CurlUrl&) = delete;
  CurlUrl& operator=(const CurlUrl&) = delete;

  bool Parse(const std::string& url, unsigned flags) {
    return h_ && curl_url_set(h_, CURLUPART_URL, url.c_str(), flags) == CURLUE_OK;
  }
  std::optional<std::string> Get(CURLUPart which, unsigned flags = 0) const {
    char* v = nullptr;
    if (curl_url_get(h_, which, &v, flags) != CURLUE_OK || !v) return std::nullopt;
    std::string s(v);
    curl_free(v);
    return s;
  }
  void Clear(CURLUPart which) { curl_url_set(h_, which, nullptr, 0); }

 private:
  CURLU* h_;
};

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

// Parts of a URL, through libcurl's parser.
std::optional<UrlParts> ParseUrl(const std::string& url) {
  CurlUrl u;
  if (!u.Parse(url, CURLU_NON_SUPPORT_SCHEME)) return std::nullopt;
  auto scheme = u.Get(CURLUPART_SCHEME);
  auto host = u.Get(CURLUPART_HOST);
  if (!scheme) return std::nullopt;
  if (!host) return UrlParts{Lower(*scheme), "", "", ""};
  std::string target = u.Get(CURLUPART_PATH).value_or("");
  if (target.empty()) target.push_back('/');
  if (auto query = u.Get(CURLUPART_QUERY)) {
    target.push_back('?');
    target.append(*query);
  }
  return UrlParts{Lower(*scheme), Lower(*host), u.Get(CURLUPART_PORT, CURLU_DEFAULT_PORT).value_or(""),
                  std::move(target)};
}

// X-Robots-Tag values that forbid indexing the image for us: noimageindex, noindex or none,
// either for every agent or for "facesearch: ...".
bool RobotsTagForbids(const std::vector<std::string>& values) {
  for (const std::string& value : values) {
    std::string v = Lower(value);
    // "agent: directives" applies to that agent only (a directive name never holds ':').
    if (auto colon = v.find(':'); colon != std::string::npos) {
      std::string agent(Trim(std::string_view(v).substr(0, colon)));
      bool is_directive = agent.find_first_of(" ,") != std::string::npos ||
                          agent == "unavailable_after" || agent == "max-image-preview" ||
                          agent == "max-snippet" || agent == "max-video-preview";
      if (!is_directive) {
        if (agent != kProduct) continue;
        v = v.substr(colon + 1);
      }
    }
    size_t start = 0;
    while (start <= v.size()) {
      size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      std::string_view d = Trim(std::string_view(v).substr(start, end - start));
      if (d == "noimageindex" || d == "noindex" || d == "none") return true;
      start = end + 1;
    }
  }
  return false;
}


bool LooksLikeUrl(std::string_view s) {
  size_t sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s.substr(0, sep))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
  return true;
}

std::string RedactUrl(std::string_view url) {
  if (!LooksLikeUrl(url)) return std::string(url);
  CurlUrl u;
  if (!u.Parse(std::string(url), CURLU_NON_SUPPORT_SCHEME | CURLU_ALLOW_SPACE)) {
    // No userinfo without an '@'. With one, libcurl could not say where the userinfo ends, so
    // nothing after the scheme is shown (such a URL is never fetched).
    if (url.find('@') == std::string_view::npos) return std::string(url);
    return std::string(url.substr(0, url.find("://") + 3)) + "(malformed URL with userinfo, not shown)";
  }
  if (!u.Get(CURLUPART_USER) && !u.Get(CURLUPART_PASSWORD) && !u.Get(CURLUPART_OPTIONS)) return std::string(url);
  u.Clear(CURLUPART_USER);
  u.Clear(CURLUPART_PASSWORD);
  u.Clear(CURLUPART_OPTIONS);
  return u.Get(CURLUPART_URL).value_or(std::string(url.substr(0, url.find("://") + 3)));
}

std::string FetchUserAgent(const std::string& contact) {
  // Only the contact is the caller's; control characters (a header injection) and parentheses
  // (which would end the comment) are dropped.
  std::string clean;
  for (char c : contact)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != '(' && c != ')') clean += c;
  if (clean.empty()) clean = FACESEARCH_PROJECT_URL;
  std::string ua = std::string(kProduct) + "/" + FACESEARCH_VERSION;
  return clean.empty() ? ua : ua + " (+" + clean + ")";
}

// ---- robots.txt ---------------------------------------------------------------------------------

RobotsRules RobotsRules::DisallowAll() {
  RobotsRules r;
  r.rules_.push_back({false, "/"});
  return r;
}

RobotsRules RobotsRules::Parse(std::string_view text, std::string_view product) {
  struct Group {
    std::vector<std::string> agents;
    std::vector<Rule> rules;
  };
  std::vector<Group> groups;
  bool last_was_agent = false;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 byte-order mark
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key = Lower(Trim(line.substr(0, colon)));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!last_was_agent || groups.empty()) groups.emplace_back();
      groups.back().agents.push_back(Lower(value));
      last_was_agent = true;
    } else if (key == "allow" || key == "disallow") {
      last_was_agent = false;
      if (groups.empty() || value.empty()) continue;  // "Disallow:" (empty) allows everything
      groups.back().rules.push_back({key == "allow", NormalizeEscapes(value)});
    } else {
      last_was_agent = false;  // sitemap, crawl-delay...: not ours, but they end an agent list
    }
  }
  const std::string want = Lower(product);
  RobotsRules out;
  for (const char* pass : {"product", "*"}) {
    for (const Group& g : groups)
      for (const std::string& agent : g.agents)
        if (std::string_view(pass) == "*" ? agent == "*" : agent == want) {
          out.rules_.insert(out.rules_.end(), g.rules.begin(), g.rules.end());
          break;
        }
    if (!out.rules_.empty()) break;
    // A group naming us with no rules still means "everything allowed" for us.
    bool named = std::any_of(groups.begin(), groups.end(), [&](const Group& g) {
      return std::find(g.agents.begin(), g.agents.end(), want) != g.agents.end();
    });
    if (named) break;
  }
  return out;
}

bool RobotsRules::Allowed(std::string_view path_and_query) const {
  const std::string path = NormalizeTarget(path_and_query);
  if (path == "/robots.txt") return true;
  const Rule* best = nullptr;
  for (const Rule& r : rules_) {
    if (!PatternMatches(r.pattern, path)) continue;
    if (!best || r.pattern.size() > best->pattern.size() ||
        (r.pattern.size() == best->pattern.size() && r.allow && !best->allow))
      best = &r;
  }
  return !best || best->allow;
}

// ---- fetching -----------------------------------------------------------------------------------

struct Fetcher::Host {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  Clock::time_point next_slot{};
  enum class RobotsState { kUnknown, kFetching, kReady } robots_state = RobotsState::kUnknown;
  RobotsRules robots;
};

struct Fetcher::Response {
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  long status = 0;
  std::string body;
  std::string content_type;
  std::string redirect_url;
  std::vector<std::string> robots_tags;
  bool too_large = false;
  bool truncated = false;
  bool not_image = false;
};

namespace {

struct Transfer {
  CURL* curl = nullptr;
  std::string* body = nullptr;
  std::vector<std::string>* robots_tags = nullptr;
  int64_t max_bytes = 0;
  bool want_image = false;
  bool checked_type = false;
  bool* too_large = nullptr;
  bool* truncated = nullptr;
  bool* not_image = nullptr;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->want_image && !t->checked_type) {
    t->checked_type = true;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    const char* type = nullptr;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &type);
    if (status >= 200 && status < 300 && !(type && Lower(type).starts_with("image/"))) {
      *t->not_image = true;
      return 0;  // aborts the transfer: we never read a non-image body
    }
  }
  if (static_cast<int64_t>(t->body->size() + len) > t->max_bytes) {
    if (t->want_image) {
      *t->too_large = true;
    } else {
      t->body->append(data, static_cast<size_t>(t->max_bytes) - t->body->size());
      *t->truncated = true;
    }
    return 0;  // aborts the transfer
  }
  t->body->append(data, len);
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (auto colon = line.find(':'); colon != std::string_view::npos &&
                                   Lower(Trim(line.substr(0, colon))) == "x-robots-tag")
    t->robots_tags->emplace_back(Trim(line.substr(colon + 1)));
  return size * n;
}

}  // namespace

Fetcher::Fetcher(FetchOptions options)
    : options_(std::move(options)), user_agent_(FetchUserAgent(options_.contact)) {
  InitCurlOnce();
}

Fetcher::~Fetcher() = default;

Fetcher::Host& Fetcher::HostFor(const std::string& key) {
  std::lock_guard lock(hosts_mu_);
  auto& slot = hosts_[key];
  if (!slot) slot = std::make_unique<Host>();
  return *slot;
}

Fetcher::Response Fetcher::Get(Host& host, const std::string& url, int64_t max_bytes, bool want_image) {
  {
    std::unique_lock lock(host.mu);
    host.cv.wait(lock, [&] { return host.in_flight < std::max(1, options_.host_concurrency); });
    ++host.in_flight;
    const auto now = Clock::now();
    const auto start = std::max(now, host.next_slot);
    const double gap = options_.host_rate > 0 ? 1.0 / options_.host_rate : 0.0;
    host.next_slot = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap));
    lock.unlock();
    std::this_thread::sleep_until(start);
  }
  Response r;
  CURL* curl = curl_easy_init();
  if (!curl) {
    r.curl = CURLE_FAILED_INIT;
    r.curl_error = "cannot initialise libcurl";
  } else {
    Transfer t{curl, &r.body, &r.robots_tags, max_bytes, want_image, false, &r.too_large, &r.truncated,
               &r.not_image};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent_.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_s * 1000));
    // An image over the limit fails before its body is read; robots.txt is cut in OnBody.
    if (want_image) curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // what libcurl can decode
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    r.curl = curl_easy_perform(curl);
    if (r.curl == CURLE_FILESIZE_EXCEEDED) r.too_large = true;
    if (r.truncated && r.curl == CURLE_WRITE_ERROR) r.curl = CURLE_OK;  // we stopped it
    r.curl_error = errbuf[0] ? errbuf : curl_easy_strerror(r.curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    const char* type = nullptr;
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type) r.content_type = type;
    const char* location = nullptr;
    if (curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location)
      r.redirect_url = location;
    curl_easy_cleanup(curl);
  }
  {
    std::lock_guard lock(host.mu);
    --host.in_flight;
  }
  host.cv.notify_all();
  return r;
}

// Get, retried after a 5xx, 429, timeout or connection error, with doubling backoff.
Fetcher::Response Fetcher::GetWithRetries(Host& host, const std::string& url, int64_t max_bytes,
                                          bool want_image) {
  double backoff = options_.backoff_s;
  for (int attempt = 0;; ++attempt) {
    Response r = Get(host, url, max_bytes, want_image);
    const bool transient =
        (r.curl == CURLE_OK && (r.status >= 500 || r.status == 429)) ||
        r.curl == CURLE_OPERATION_TIMEDOUT || r.curl == CURLE_COULDNT_CONNECT ||
        r.curl == CURLE_RECV_ERROR || r.curl == CURLE_SEND_ERROR || r.curl == CURLE_GOT_NOTHING ||
        r.curl == CURLE_PARTIAL_FILE;
    if (!transient || attempt >= options_.retries) return r;
    spdlog::debug("{}: attempt {} failed ({}), retrying in {} s", RedactUrl(url), attempt + 1,
                  r.curl == CURLE_OK ? "HTTP " + std::to_string(r.status) : r.curl_error, backoff);
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
    backoff *= 2;
  }
}

// RFC 9309 §2.3.1: 2xx → the rules, of which the first 500 KiB are parsed; 4xx → no rules; 5xx,
// a timeout or no connection → everything disallowed. robots.txt redirects are followed (up to 5
// hops, http(s) only); more hops, or one to another scheme, also disallow everything.
const RobotsRules& Fetcher::RobotsFor(Host& host, const std::string& origin) {
  {
    std::unique_lock lock(host.mu);
    host.cv.wait(lock, [&] { return host.robots_state != Host::RobotsState::kFetching; });
    if (host.robots_state == Host::RobotsState::kReady) return host.robots;
    host.robots_state = Host::RobotsState::kFetching;
  }
  RobotsRules rules = RobotsRules::DisallowAll();
  std::string url = origin + "/robots.txt";
  for (int hop = 0; hop <= 5; ++hop) {
    Response r = GetWithRetries(host, url, kMaxRobotsBytes, /*want_image=*/false);
    if (r.curl == CURLE_OK && r.status >= 200 && r.status < 300) {
      // A cut-off last line could be a shortened rule: it is dropped.
      if (r.truncated) r.body.erase(r.body.find_last_of("\r\n") + 1);
      rules = RobotsRules::Parse(r.body, kProduct);
    } else if (r.curl == CURLE_OK && r.status >= 300 && r.status < 400 && !r.redirect_url.empty()) {
      auto next = ParseUrl(r.redirect_url);
      if (next && (next->scheme == "http" || next->scheme == "https")) {
        url = r.redirect_url;
        continue;
      }
    } else if (r.curl == CURLE_OK && r.status >= 400 && r.status < 500) {
      rules = RobotsRules::AllowAll();
    } else {
      spdlog::warn("{}: robots.txt unreachable ({}): treating every path as disallowed", origin,
                   r.curl == CURLE_OK ? "HTTP " + std::to_string(r.status) : r.curl_error);
    }
    break;
  }
  std::lock_guard lock(host.mu);
  host.robots = std::move(rules);
  host.robots_state = Host::RobotsState::kReady;
  host.cv.notify_all();
  return host.robots;
}

FetchOutcome Fetcher::Fetch(const std::string& original_url) {
  auto outcome = [&](FetchOutcome::Kind kind, const char* reason, const std::string& detail) {
    FetchOutcome o;
    o.kind = kind;
    o.reason = reason;
    o.detail = detail;
    return o;
  };
  using Kind = FetchOutcome::Kind;
  // A local path named where a URL belongs (a manifest's url column, a --urls list) is refused
  // here, before libcurl could take it for a relative URL or a file.
  if (!LooksLikeUrl(original_url))
    return outcome(Kind::kSkipped, "scheme",
                   "refused " + RedactUrl(original_url) + ": not a URL; only http and https URLs are "
                   "fetched (a local file belongs in a manifest's path column or on the command line)");
  std::string url = original_url;
  for (int hop = 0; hop <= options_.max_redirects; ++hop) {
    const std::string shown = RedactUrl(url);
    const std::string where = hop == 0 ? shown : shown + " (redirected from " + RedactUrl(original_url) + ")";
    auto parts = ParseUrl(url);
    if (!parts) return outcome(Kind::kFailed, "fetch_error", "malformed URL " + shown);
    if (parts->scheme != "http" && parts->scheme != "https")
      return outcome(Kind::kSkipped, "scheme",
                     "refused " + where + ": only http and https URLs are fetched");
    if (parts->host.empty()) return outcome(Kind::kFailed, "fetch_error", "malformed URL " + shown);
    Host& host = HostFor(parts->origin());
    if (!options_.ignore_robots && !RobotsFor(host, parts->scheme + "://" + parts->host + ":" + parts->port)
                                        .Allowed(parts->path_and_query))
      return outcome(Kind::kSkipped, "robots", "skipped " + where + ": disallowed by " +
                                                   parts->scheme + "://" + parts->host + ":" +
                                                   parts->port + "/robots.txt");
    Response r = GetWithRetries(host, url, options_.max_bytes, /*want_image=*/true);
    if (r.too_large)
      return outcome(Kind::kFailed, "too_large", where + ": body larger than the limit of " +
                                                     std::to_string(options_.max_bytes) + " bytes");
    if (r.not_image)
      return outcome(Kind::kFailed, "content_type",
                     where + ": not an image (Content-Type " +
                         (r.content_type.empty() ? std::string("missing") : r.content_type) + ")");
    if (r.curl == CURLE_OPERATION_TIMEDOUT)
      return outcome(Kind::kFailed, "timeout", where + ": timed out (" + r.curl_error + ")");
    if (r.curl != CURLE_OK)
      return outcome(Kind::kFailed, "fetch_error", where + ": " + r.curl_error);
    if (r.status >= 300 && r.status < 400) {
      if (r.redirect_url.empty())
        return outcome(Kind::kFailed, "http_status",
                       where + ": HTTP " + std::to_string(r.status) + " without a Location");
      url = r.redirect_url;
      continue;
    }
    if (r.status < 200 || r.status >= 300)
      return outcome(Kind::kFailed, "http_status", where + ": HTTP " + std::to_string(r.status));
    if (!Lower(r.content_type).starts_with("image/"))
      return outcome(Kind::kFailed, "content_type",
                     where + ": not an image (Content-Type " +
                         (r.content_type.empty() ? std::string("missing") : r.content_type) + ")");
    if (!options_.ignore_robots && RobotsTagForbids(r.robots_tags))
      return outcome(Kind::kSkipped, "noimageindex",
                     "skipped " + where + ": the server forbids indexing it (X-Robots-Tag)");
    FetchOutcome ok;
    ok.kind = Kind::kOk;
    ok.body = std::move(r.body);
    return ok;
  }
  return outcome(Kind::kFailed, "redirect", RedactUrl(original_url) + ": more than " +
                                                std::to_string(options_.max_redirects) + " redirects");
}

}  // namespace facesearch
