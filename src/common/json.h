// JSON text building blocks shared by the CLI's output and the audit log. Header-light on purpose:
// facesearch writes JSON by hand in a few fixed shapes and never parses it.
#pragma once

#include <string>
#include <string_view>

namespace facesearch {

// Quoted and escaped. Bytes that are not valid UTF-8 (possible in Linux file names) become U+FFFD
// so that the text stays valid JSON; keep a content hash beside such names to identify files.
std::string JsonString(std::string_view s);
// Shortest round-trip form; non-finite values become null.
std::string JsonNumber(double v);
std::string JsonFloat(float v);
// printf's %.Nf and %.Ng, for numbers shown rounded; null when not finite (JSON has no nan or
// infinity, and "nan" would make the whole document unreadable).
std::string JsonFixed(double v, int decimals);
std::string JsonSignificant(double v, int digits);

// Length of the valid UTF-8 sequence starting at s[i] (1 to 4), or 0 when the bytes there are not
// one (invalid, overlong, surrogate). For writers of other text formats (the HTML report).
size_t Utf8SequenceLength(std::string_view s, size_t i);

}  // namespace facesearch
