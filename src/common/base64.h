// Base64 (RFC 4648, standard alphabet, padded): data: URIs in the HTML report, embeddings in the
// embed file format (facesearch/embed.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace facesearch {

std::string Base64Encode(std::string_view data);
// Strict: only the standard alphabet, correct padding, a length that is a multiple of 4, no
// whitespace. nullopt for anything else (the text may come from an untrusted file).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace facesearch
