// JSON for tests: checks that the CLI's output is valid JSON (nlohmann-json's strict parser,
// UTF-8 included) and lets tests read its fields. Throws std::runtime_error on malformed input.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace facesearch::test {

struct Json {
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> value;

  bool has(const std::string& key) const;
  const Json& operator[](const std::string& key) const;  // throws if absent or not an object
  const Json& operator[](size_t i) const;                // throws if out of range or not an array
  size_t size() const;                                   // array or object size
  double num() const;
  const std::string& str() const;
  bool boolean() const;
  bool is_null() const { return std::holds_alternative<std::nullptr_t>(value); }
};

Json ParseJson(const std::string& text);
// One value per non-empty line.
std::vector<Json> ParseJsonLines(const std::string& text);

}  // namespace facesearch::test
