// JSON text for facesearch's machine-readable output and audit records.
#include "common/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace facesearch {

std::string JsonText(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

double RoundDecimals(double v, int decimals) {
  if (!std::isfinite(v)) return v;
  char buf[352];  // DBL_MAX in %f is 309 digits
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return std::strtod(buf, nullptr);
}

double RoundSignificant(double v, int digits) {
  if (!std::isfinite(v)) return v;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return std::strtod(buf, nullptr);
}

double ShortestDouble(float v) {
  if (!std::isfinite(v)) return v;
  char text[32];
  const auto written = std::to_chars(text, text + sizeof text, v);
  double shortest = v;
  std::from_chars(text, written.ptr, shortest);
  return shortest;
}

}  // namespace facesearch
