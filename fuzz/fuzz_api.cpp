// libFuzzer target: the request parsing of `facesearch serve` (src/server/api.h) — URL
// parameters, multipart parts, JSON bodies (nlohmann-json), the Authorization header — on bytes
// an attacker controls. Build and run: scripts/fuzz.sh 300 api.
//
// Byte 0 picks the endpoint's parser; then line 1 is the Content-Type, line 2 the query
// parameters (k=v&k=v, taken as decoded), line 3 the Authorization header, and the rest the body,
// which in multipart mode is parts separated by NUL, each "name\x01filename\x01content".
// Besides memory errors (ASan/UBSan), it checks what the handlers rely on: a parsed query has
// 1 to 64 probes (or an embed file) and a top_k of at least 1, every refusal has a 4xx status and
// a message, an opt-out has its photo, a faces request 1 to 64 photos, and a forget request names
// something to erase.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/api.h"

namespace {

using facesearch::server::ApiRequest;
using facesearch::server::ParseError;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckRefusal(const ParseError& e) { Check(e.status >= 400 && e.status < 500 && !e.message.empty()); }

std::string_view Line(std::string_view& text) {
  const size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  return line;
}

ApiRequest Request(std::string_view text, bool multipart) {
  ApiRequest r;
  r.method = "POST";
  r.content_type = Line(text);
  for (std::string_view params = Line(text); !params.empty();) {
    const size_t amp = params.find('&');
    const std::string_view pair = params.substr(0, amp);
    const size_t eq = pair.find('=');
    r.params.emplace(std::string(pair.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1)));
    params = amp == std::string_view::npos ? std::string_view() : params.substr(amp + 1);
  }
  r.authorization = Line(text);
  if (!multipart) {
    r.body = text;
    return r;
  }
  while (!text.empty()) {
    const size_t nul = text.find('\0');
    std::string_view part = text.substr(0, nul);
    const size_t a = part.find('\x01'), b = a == std::string_view::npos ? a : part.find('\x01', a + 1);
    r.parts.push_back({std::string(part.substr(0, a)), a == std::string_view::npos ? "" : std::string(part.substr(a + 1, b - a - 1)),
                       "", b == std::string_view::npos ? "" : std::string(part.substr(b + 1))});
    text = nul == std::string_view::npos ? std::string_view() : text.substr(nul + 1);
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
    case 1: {
      auto q = facesearch::server::ParseQuery(Request(text, data[0] % 4 == 1));
      if (!q) return CheckRefusal(q.error()), 0;
      Check((!q->probes.empty() || q->embedded) && q->probes.size() <= 64 && q->options.top_k >= 1);
      break;
    }
    case 2: {
      auto c = facesearch::server::ParseCompare(Request(text, true));
      if (!c) CheckRefusal(c.error());
      auto o = facesearch::server::ParseOptOut(Request(text, (data[0] & 4) != 0));
      if (!o) CheckRefusal(o.error());
      else Check(o->request.photo.bytes.has_value());
      auto faces = facesearch::server::ParseFaces(Request(text, (data[0] & 8) != 0));
      if (!faces) CheckRefusal(faces.error());
      else Check(!faces->photos.empty() && faces->photos.size() <= 64);
      auto f = facesearch::server::ParseForget(Request(text, false));
      if (!f) return CheckRefusal(f.error()), 0;
      Check(!f->face_ids.empty() || !f->images.empty() || f->older_than_s.has_value());
      break;
    }
    default: {
      auto token = facesearch::server::BearerToken(Request(text, false).authorization);
      if (!token) CheckRefusal(token.error());
      (void)facesearch::server::RequestAudit(Request(text, false), "fuzz");
      break;
    }
  }
  return 0;
}
