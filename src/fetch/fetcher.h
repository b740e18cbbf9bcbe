// URL fetching for ingest (libcurl stays here): polite by default, bytes kept in memory only.
//
// One Fetcher serves a whole index run and is shared by its worker threads. Per host (scheme,
// host and port) it keeps a rate limit (FetchOptions::host_rate requests per second, robots.txt
// included), a cap on requests in flight and the host's robots.txt, fetched once and cached for
// the run. Redirects are followed by hand, so that every hop is checked for its scheme, its
// host's robots.txt and the limits. Nothing fetched is written to disk.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/engine.h"

namespace facesearch {

// True for "scheme://..." with a scheme of letters, digits, '+', '-' or '.' (any scheme: the
// fetcher refuses the ones it does not speak).
bool LooksLikeUrl(std::string_view s);

// `url` without its userinfo ("user:password@"), to be stored or printed; the fetch itself uses
// the URL as given. Anything else is returned unchanged.
std::string RedactUrl(std::string_view url);

// Parts of a URL, through libcurl's URL parser: scheme and host lower-cased, port (the scheme's
// default when absent), path plus "?query" ("/" when empty). nullopt when libcurl rejects it; a
// URL with a scheme but no host (e.g. "file:///x") gives only the scheme.
struct UrlParts {
  std::string scheme, host, port, path_and_query;
  std::string origin() const { return scheme + "://" + host + ":" + port; }
};
std::optional<UrlParts> ParseUrl(const std::string& url);

// True when X-Robots-Tag header values forbid indexing an image for facesearch: noimageindex,
// noindex or none, for every agent or for "facesearch: ...".
bool RobotsTagForbids(const std::vector<std::string>& values);

// robots.txt rules for one user agent (RFC 9309): the longest matching Allow/Disallow pattern
// wins, Allow on a tie; '*' matches any run of characters and a final '$' anchors the end. Rules
// and paths are compared in one normal form (RFC 3986 §6.2.2): escaped unreserved characters
// decoded, other escapes in upper-case hex, non-ASCII bytes escaped, and dot segments removed
// from the path, so "/%70rivate/" and "/img/../private/" are "/private/".
class RobotsRules {
 public:
  static RobotsRules AllowAll() { return RobotsRules(); }
  static RobotsRules DisallowAll();
  // Parses `text` (a leading UTF-8 byte-order mark is skipped), keeping the groups for `product`
  // (case-insensitive, e.g. "facesearch"), or those for "*" when none names it.
  static RobotsRules Parse(std::string_view text, std::string_view product);
  // `path_and_query` starts with '/'.
  bool Allowed(std::string_view path_and_query) const;

 private:
  struct Rule {
    bool allow = false;
    std::string pattern;
  };
  std::vector<Rule> rules_;
};

struct FetchOutcome {
  enum class Kind { kOk, kSkipped, kFailed };
  Kind kind = Kind::kFailed;
  std::string reason;  // for kSkipped/kFailed: robots, noimageindex, scheme, http_status, timeout,
                       // too_large, content_type, redirect, fetch_error
  std::string detail;  // a sentence naming the URL
  std::string body;    // for kOk
};

class Fetcher {
 public:
  // Initialises libcurl once per process. `max_bytes` must be set (> 0).
  explicit Fetcher(FetchOptions options);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Fetches `url` (thread-safe; blocks for the host's rate limit and concurrency cap). Anything
  // but an http(s) URL, a local path included, is refused (kSkipped, reason "scheme"), at the
  // first hop and after every redirect. Messages name the URL without its userinfo.
  FetchOutcome Fetch(const std::string& url);
  const std::string& user_agent() const { return user_agent_; }

 private:
  struct Host;
  struct Response;
  Host& HostFor(const std::string& key);
  // Waits for a slot at the host, then runs one GET without following redirects. With
  // `want_image` a body over `max_bytes` fails (too_large); otherwise (robots.txt) its first
  // `max_bytes` are kept, whatever the Content-Length says, and the response is marked truncated.
  Response Get(Host& host, const std::string& url, int64_t max_bytes, bool want_image);
  Response GetWithRetries(Host& host, const std::string& url, int64_t max_bytes, bool want_image);
  const RobotsRules& RobotsFor(Host& host, const std::string& origin);

  const FetchOptions options_;
  const std::string user_agent_;
  std::mutex hosts_mu_;
  std::map<std::string, std::unique_ptr<Host>> hosts_;
};

// "facesearch/<version> (+<contact>)"; with an empty contact the build's FACESEARCH_PROJECT_URL
// stands in, and with neither it is just "facesearch/<version>".
std::string FetchUserAgent(const std::string& contact);

}  // namespace facesearch
