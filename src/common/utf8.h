// UTF-8 validation for the writers of text formats that must not pass invalid bytes through (the
// terminal text, the HTML report).
#pragma once

#include <cstddef>
#include <string_view>

namespace facesearch {

// Length of the valid UTF-8 sequence starting at s[i] (1 to 4), or 0 when the bytes there are not
// one (invalid, overlong, surrogate).
size_t Utf8SequenceLength(std::string_view s, size_t i);

}  // namespace facesearch
