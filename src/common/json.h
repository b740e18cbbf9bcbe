// JSON output: every JSON document facesearch writes is built as a Json (fields
// in the order docs/output.md lists them) and turned into text here, so that one place decides the
// escaping and the number forms.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace facesearch {

using Json = nlohmann::ordered_json;

// One line, no spaces. Bytes that are not valid UTF-8 (possible in Linux file names) become
// U+FFFD so that the text stays valid JSON; keep a content hash beside such names to identify
// files. Numbers that are not finite become null (JSON has no nan or infinity).
std::string JsonText(const Json& value);

// Numbers shown rounded, as the double nearest to what printf's %.Nf / %.Ng writes, so that the
// text is the short decimal (0.3000 is written 0.3, 1.0000 is 1.0).
double RoundDecimals(double v, int decimals);
double RoundSignificant(double v, int digits);
// A float as the double of its shortest decimal form (0.6f: 0.6, not 0.6000000238418579): the
// JSON text is the float's shortest round-trip form.
double ShortestDouble(float v);

// null when the value is absent (or, for text, empty).
template <typename T>
Json OrNull(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}
inline Json TextOrNull(const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); }

}  // namespace facesearch
