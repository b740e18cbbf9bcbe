#include "json.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace facesearch::test {
namespace {

Json From(const nlohmann::json& j) {
  using Type = nlohmann::json::value_t;
  switch (j.type()) {
    case Type::null: return Json{nullptr};
    case Type::boolean: return Json{j.get<bool>()};
    case Type::number_integer:
    case Type::number_unsigned:
    case Type::number_float: return Json{j.get<double>()};
    case Type::string: return Json{j.get<std::string>()};
    case Type::array: {
      Json::Array array;
      for (const nlohmann::json& e : j) array.push_back(From(e));
      return Json{std::move(array)};
    }
    case Type::object: {
      Json::Object object;
      for (const auto& [key, value] : j.items()) object[key] = From(value);
      return Json{std::move(object)};
    }
    default: break;  // binary, discarded: never the result of parsing text
  }
  throw std::runtime_error("JSON value of an unexpected type");
}

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

Json ParseJson(const std::string& text) {
  try {
    return From(nlohmann::json::parse(text));
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(std::string("invalid JSON: ") + e.what());
  }
}

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
