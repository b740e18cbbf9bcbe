#include "json.h"

#include <cstdlib>
#include <stdexcept>

namespace facesearch::test {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Json ParseDocument() {
    Json v = Value();
    Ws();
    if (i_ != s_.size()) Throw("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void Throw(const std::string& what) const {
    throw std::runtime_error("invalid JSON at offset " + std::to_string(i_) + ": " + what);
  }
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  bool Eat(char c) {
    Ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void Expect(char c) {
    if (!Eat(c)) Throw(std::string("expected '") + c + "'");
  }
  bool Literal(const char* word) {
    std::string w(word);
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }

  Json Value() {
    Ws();
    if (i_ >= s_.size()) Throw("unexpected end");
    char c = s_[i_];
    if (c == '{') return Object();
    if (c == '[') return Array();
    if (c == '"') return Json{String()};
    if (Literal("true")) return Json{true};
    if (Literal("false")) return Json{false};
    if (Literal("null")) return Json{nullptr};
    return Number();
  }

  Json Object() {
    Expect('{');
    Json::Object obj;
    if (Eat('}')) return Json{obj};
    do {
      Ws();
      std::string key = String();
      Expect(':');
      obj[key] = Value();
    } while (Eat(','));
    Expect('}');
    return Json{obj};
  }

  Json Array() {
    Expect('[');
    Json::Array arr;
    if (Eat(']')) return Json{arr};
    do arr.push_back(Value());
    while (Eat(','));
    Expect(']');
    return Json{arr};
  }

  std::string String() {
    if (i_ >= s_.size() || s_[i_] != '"') Throw("expected a string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) Throw("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) Throw("bad escape");
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) Throw("bad \\u escape");
          unsigned code = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
          i_ += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else out += '?';  // tests never need non-ASCII escapes decoded
          break;
        }
        default: Throw("bad escape");
      }
    }
    if (i_ >= s_.size()) Throw("unterminated string");
    ++i_;
    return out;
  }

  Json Number() {
    const char* begin = s_.c_str() + i_;
    char* end = nullptr;
    double v = std::strtod(begin, &end);
    if (end == begin) Throw("expected a value");
    i_ += static_cast<size_t>(end - begin);
    return Json{v};
  }

  const std::string& s_;
  size_t i_ = 0;
};

template <class T>
const T& As(const Json& j, const char* what) {
  if (const T* v = std::get_if<T>(&j.value)) return *v;
  throw std::runtime_error(std::string("JSON value is not ") + what);
}

}  // namespace

bool Json::has(const std::string& key) const { return As<Object>(*this, "an object").count(key) > 0; }

const Json& Json::operator[](const std::string& key) const {
  const auto& obj = As<Object>(*this, "an object");
  auto it = obj.find(key);
  if (it == obj.end()) throw std::runtime_error("JSON object has no key " + key);
  return it->second;
}

const Json& Json::operator[](size_t i) const { return As<Array>(*this, "an array").at(i); }

size_t Json::size() const {
  if (auto* a = std::get_if<Array>(&value)) return a->size();
  return As<Object>(*this, "an array or object").size();
}

double Json::num() const { return As<double>(*this, "a number"); }
const std::string& Json::str() const { return As<std::string>(*this, "a string"); }
bool Json::boolean() const { return As<bool>(*this, "a boolean"); }

Json ParseJson(const std::string& text) { return Parser(text).ParseDocument(); }

std::vector<Json> ParseJsonLines(const std::string& text) {
  std::vector<Json> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty()) out.push_back(ParseJson(line));
    start = end + 1;
  }
  return out;
}

}  // namespace facesearch::test
