// Manifests: lists of inputs with their provenance (`index --manifest`), read by ingest.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "facesearch/ingest.h"

namespace facesearch {

// Reads a manifest: JSONL (one object per line) or CSV (a header row, RFC 4180 quoting). Each row
// names "path" or "url" and optionally page_url, source, captured_at, licence (or license), notes;
// other keys are ignored. A malformed row (bad JSON or CSV, no path/url, a non-string value)
// becomes an error outcome in `problems` (path "FILE:LINE", reason "manifest") and the others go
// on. A url row's input has `url` set, and user:password@ is dropped from a page_url. Errors:
// kNotFound/kIo when the file cannot be read, kInvalidArgument for an unknown extension with
// kAuto, a CSV without a path or url column, or a manifest over kMaxListBytes or
// kMaxListEntries rows.
Result<std::vector<IndexInput>> ReadManifest(const std::string& file, ManifestFormat format,
                                             std::vector<FileOutcome>& problems);
// The parser behind ReadManifest, on a manifest's bytes (`file` names it in messages; `format` is
// kJsonl or kCsv). Never reads anything else; any byte string gives rows, problems or an error.
Result<std::vector<IndexInput>> ParseManifest(std::string_view text, ManifestFormat format,
                                              const std::string& file,
                                              std::vector<FileOutcome>& problems);

}  // namespace facesearch
