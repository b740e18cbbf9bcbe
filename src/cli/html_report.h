// `query --html FILE`: one self-contained HTML page showing each probe face beside its matches.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/engine.h"
#include "facesearch/eval.h"

namespace facesearch::cli {

struct HtmlReportContext {
  std::string case_id, purpose;  // from --case / --purpose, shown in the header
  const std::string* stdin_bytes = nullptr;  // the probe read from "-", when there was one
  const Calibration* calibration = nullptr;  // the corpus's embedding mode's (null: plain's)
};

// Text for HTML element content and quoted attribute values: & < > " ' escaped, bytes that are
// not valid UTF-8 and C0 controls other than tab and newline replaced by U+FFFD. Corpus strings
// (file names above all) are hostile input and go through this.
std::string HtmlEscape(std::string_view s);

// Renders the page: face crops inlined as data: URIs, nothing fetched from anywhere (a
// Content-Security-Policy says so to the browser too). Matched images are re-read from their
// paths; one that is gone or whose SHA-256 changed since indexing is shown as such, without a
// crop. Errors: none (problems with single images are shown on the page).
std::string RenderHtmlReport(const std::vector<ProbeOutcome>& outcomes, const QueryOptions& options,
                             const HtmlReportContext& context);

// RenderHtmlReport in a file created exclusively with mode 0600 (WritePrivateOutputFile): the
// page holds biometric imagery. Errors: kInvalidArgument (a directory others can list or write,
// a link), kIo.
Status WriteHtmlReport(const std::filesystem::path& path, const std::vector<ProbeOutcome>& outcomes,
                       const QueryOptions& options, const HtmlReportContext& context);

}  // namespace facesearch::cli
