// Times as the corpus stores and prints them: ISO 8601 in UTC, to the second.
#pragma once

#include <ctime>
#include <string>

namespace facesearch {

// "2025-02-03T04:05:06Z".
std::string IsoUtc(std::time_t t);
// IsoUtc of now.
std::string IsoUtcNow();

}  // namespace facesearch
