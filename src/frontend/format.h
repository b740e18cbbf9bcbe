// Output formats shared by the front ends (the CLI and `facesearch serve`): JSON/CSV quoting, the
// query result formats, and the compare and info JSON, so that a server answers byte for byte
// what the command line prints.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "facesearch/analyze.h"
#include "facesearch/engine.h"
#include "facesearch/eval.h"

#include <spdlog/common.h>

#include "facesearch/privacy.h"

namespace spdlog {
class formatter;
}

namespace facesearch::frontend {

enum class OutputFormat { kTable, kJson, kJsonl, kCsv, kTsv };
const char* OutputFormatName(OutputFormat format);  // "table", "json", "jsonl", "csv", "tsv"

Json BoxJson(const Box& b);  // {"x":..,"y":..,"w":..,"h":..}
// File names, provenance and audit fields are hostile input and reach every output; each format
// has one rule (docs/output.md, "Untrusted text in the output"):
// Human-readable output (tables, messages): C0 controls (tab and newline too), DEL, C1 controls
// and bytes that are not UTF-8 become \xNN, Unicode bidi controls \uNNNN, so that a name can
// neither drive the terminal nor fake a line or reorder what is shown. JSON escapes everything
// itself (JsonText).
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
// Adds "page_url","source","captured_at","licence","notes" to `object` (null when not set).
void AddProvenance(Json& object, const Provenance& p);
// Adds "taken_at","camera_make","camera_model","gps_lat","gps_lon" to `object` (null when not set).
void AddPhoto(Json& object, const PhotoMetadata& p);
// Make and model for people: "Canon EOS 5D" rather than "Canon Canon EOS 5D".
std::string CameraName(const PhotoMetadata& p);

// Results of a (multi-probe) query. json: one object for one probe, an array for several (a probe
// that failed is {"probe","error"}); jsonl/csv/tsv: one row per match, naming its probe; table: one
// block per probe. Failed probes are skipped by the other formats (the CLI reports them on stderr).
// fields: the csv/tsv columns, in order (empty: the default set; see docs/output.md).
// calibration: the table for the corpus's embedding mode (Calibration::For), which gives each
// distance its false-match rate and confidence band.
void WriteQueryResults(std::ostream& out, const std::vector<ProbeOutcome>& outcomes,
                       const QueryOptions& options, const Calibration& calibration, OutputFormat format,
                       const std::vector<std::string>& fields = {});
// Co-appearance (`query --together`): images[i].matches[j] is outcomes[j]'s face in the image, and
// cals[j] its calibration. json: {"probes":[..],"together":[{image, sha256, matches}]}; jsonl: one
// image object per line; csv/tsv: one row per image and probe; table: one block per image.
void WriteTogetherResults(std::ostream& out, const std::vector<TogetherImage>& images,
                          const std::vector<ProbeOutcome>& outcomes, const std::vector<Calibration>& cals,
                          OutputFormat format);

// A subject's outcome is ranked by its distance to the template of its references: its own
// threshold, and the calibration measured for that many references. A photo's: the query's.
struct Scale {
  QueryOptions options;
  Calibration cal;
};
Scale ScaleOf(const ProbeOutcome& outcome, const QueryOptions& options, const Calibration& cal);

// A time in a video as HH:MM:SS.mmm.
std::string Timecode(double seconds);
// {"frame","at","first","last","timecode":"FIRST-LAST"} for a face in a video, null for a still
// image (seconds from the start; docs/output.md).
Json VideoJson(const std::optional<VideoSpan>& video);

// kInvalidArgument naming the first unknown csv/tsv column, and listing the known ones.
Status CheckFields(const std::vector<std::string>& fields);

// `compare`'s one line for a person: same or different, the distance, threshold, FMR and band.
std::string CompareText(const CompareResult& r, float threshold, const Calibration& calibration);
// `compare --json`: both sides, the distance, its false-match rate and band, one line.
std::string CompareJson(const CompareResult& r, float threshold, const Calibration& calibration);
// `info --json`: the corpus, its counts and its index, one line.
std::string InfoJson(const CorpusInfo& info);
// `info`'s table for a person.
std::string InfoText(const CorpusInfo& info);

// `audit --format jsonl`: one record; params and results are JSON text facesearch wrote itself.
std::string AuditRecordJson(const AuditRecord& r);
// `index --json`: the run's counts and where the time went, one line.
std::string IndexSummaryJson(const IndexSummary& summary);
// `forget --json`: the counts erased and the faces left, one line.
std::string ForgetJson(const ForgetSummary& summary);

// What `query` says on stderr beside its results: each failed probe (error), a probe without a
// face (warning), a probe with no match (info), and, in the formats that do not carry it, each
// low-quality probe face (warning). A server sends them to its client, which logs them.
struct LogLine {
  spdlog::level::level_enum level;
  std::string text;
};
std::vector<LogLine> QueryMessages(const std::vector<ProbeOutcome>& outcomes, OutputFormat format);
// query's exit status: 2 when a probe failed, else 0 with a match, else 1.
int QueryExitCode(const std::vector<ProbeOutcome>& outcomes);

// The query's distance threshold, as `query` and the server choose it: from --max-fmr (on the
// calibration table), else --threshold as given, else the default sized by the corpus (about one
// stranger expected among the matches; `note` then says why it is below 0.6). Errors:
// kInvalidArgument when max_fmr is below what the table resolves.
Result<float> ChooseQueryThreshold(const Calibration& calibration, std::optional<float> threshold, double max_fmr,
                                   int64_t corpus_faces, std::string* note);

// `forget` without --json: the counts erased and the faces left, one line.
std::string ForgetText(const ForgetSummary& summary);

// `faces`: analyses each of `images` in turn (analyze(i) for the i-th) and writes what the command
// prints as it goes: a table (`images` name the photos in it), or with jsonl one JSON object per
// face; `log` gets the stderr lines (an unreadable image, a photo without a face). Returns the
// exit status: 2 an image could not be read, else 0 a face was found, else 1.
int WriteFaces(std::ostream& out, const std::vector<std::string>& images, bool jsonl,
               const std::function<Result<PhotoFaces>(size_t)>& analyze, const std::function<void(LogLine)>& log);

// `optout`: what add, list and remove print, as text or (json) JSON lines; never the embedding.
std::string OptOutAdded(const OptOutResult& result, bool json);
std::string OptOutList(const std::vector<OptOutRecord>& list, bool json);
std::string OptOutRemoved(int64_t id, bool json);
// `optout remove --request RID`: the ids it removed (one, unless the request was applied twice).
std::string OptOutsOfRequestRemoved(const std::string& request_id, const std::vector<int64_t>& ids, bool json);

// [[x,y],...]
Json LandmarksJson(std::span<const Point> landmarks);
// `forget --subject` and `export --subject` without --threshold: the distance at which a subject
// with `references` references (its table, Calibration::ForReferences) has the false-match rate a
// single photo has at the model's same-person distance (dlib's 0.6): the same risk of taking a
// stranger for the person whatever the number of references. One reference: that distance.
float SubjectThreshold(const Calibration& photo, int references);

// One export line (no newline): face id, image, box, landmarks, detector score, provenance, EXIF,
// video, the 128 floats as "embedding", then the fields of the object `after` (say, a subject's).
// The floats are written by std::to_chars, float's shortest form, which reads back to the same
// bits: nlohmann prints doubles (a float's nearest double, or 0.08225938000000001 for 0.08225938f)
// and cost an export of 14k faces 1.85x the CPU of the whole command.
std::string FaceRecordLine(const FaceRecord& record, const Json& after = Json::object());

}  // namespace facesearch::frontend
