// The output formats live in src/frontend/format.h, shared with `facesearch serve`; the CLI keeps
// calling them by their short names.
#pragma once

#include "frontend/format.h"

namespace facesearch::cli {
using namespace facesearch::frontend;
}  // namespace facesearch::cli
