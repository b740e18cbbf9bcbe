// Output formatting for the command line: JSON/CSV quoting and the query result formats.
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "facesearch/engine.h"
#include "facesearch/eval.h"

namespace spdlog {
class formatter;
}

namespace facesearch::cli {

enum class OutputFormat { kTable, kJson, kJsonl, kCsv, kTsv };

std::string JsonBox(const Box& b);           // {"x":..,"y":..,"w":..,"h":..}
// File names, provenance and audit fields are hostile input and reach every output; each format
// has one rule (docs/output.md, "Untrusted text in the output"):
// Human-readable output (tables, messages): C0 controls (tab and newline too), DEL, C1 controls
// and bytes that are not UTF-8 become \xNN, Unicode bidi controls \uNNNN, so that a name can
// neither drive the terminal nor fake a line or reorder what is shown. JSON escapes everything
// itself (JsonString).
std::string TerminalText(std::string_view s);
// CSV: quoted when it holds a comma, quote or line break. TSV cannot quote: tabs and line breaks
// become spaces. In both, a text cell starting with = + - @ tab or CR (which a spreadsheet runs
// as a formula) gets a leading ' (and, in CSV, quotes), as OWASP advises; text is false for the
// numbers facesearch computes (a box's x can be -5).
std::string CsvField(std::string_view s, bool text = true);
std::string TsvField(std::string_view s, bool text = true);
// A spdlog formatter for `pattern`, in which the flag %* is the message through TerminalText:
// messages on stderr name files too.
std::unique_ptr<spdlog::formatter> TerminalLogFormatter(const std::string& pattern);
// "page_url":..,"source":..,"captured_at":..,"licence":..,"notes":.. (null when not set)
std::string ProvenanceJsonFields(const Provenance& p);

// Results of a (multi-probe) query. json: one object for one probe, an array for several (a probe
// that failed is {"probe","error"}); jsonl/csv/tsv: one row per match, naming its probe; table: one
// block per probe. Failed probes are skipped by the other formats (the CLI reports them on stderr).
// fields: the csv/tsv columns, in order (empty: the default set; see docs/output.md).
// calibration: the table for the corpus's embedding mode (Calibration::For), which gives each
// distance its false-match rate and confidence band.
void WriteQueryResults(std::ostream& out, const std::vector<ProbeOutcome>& outcomes,
                       const QueryOptions& options, const Calibration& calibration, OutputFormat format,
                       const std::vector<std::string>& fields = {});
// kInvalidArgument naming the first unknown csv/tsv column, and listing the known ones.
Status CheckFields(const std::vector<std::string>& fields);

// A time in a video as HH:MM:SS.mmm.
std::string Timecode(double seconds);
// {"frame","at","first","last","timecode":"FIRST-LAST"} for a face in a video, null for a still
// image (seconds from the start; docs/output.md).
std::string VideoJson(const std::optional<VideoSpan>& video);

// One export line: face id, image, box, landmarks, detector score, provenance and the 128 floats.
std::string FaceRecordJson(const FaceRecord& record);

}  // namespace facesearch::cli
