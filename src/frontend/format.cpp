#include "frontend/format.h"

#include <spdlog/pattern_formatter.h>

#include <charconv>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iterator>
#include <sstream>

#include "common/json.h"
#include "facesearch/eval.h"
#include "facesearch/privacy.h"

namespace facesearch::frontend {

namespace {
// Distances are shown to 4 decimals: more digits suggest a precision the model does not have.
std::string Distance(float d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", static_cast<double>(d));
  return buf;
}
}  // namespace

const char* OutputFormatName(OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson: return "json";
    case OutputFormat::kJsonl: return "jsonl";
    case OutputFormat::kCsv: return "csv";
    case OutputFormat::kTsv: return "tsv";
    case OutputFormat::kTable: break;
  }
  return "table";
}

std::string JsonBox(const Box& b) {
  return "{\"x\":" + std::to_string(b.x) + ",\"y\":" + std::to_string(b.y) +
         ",\"w\":" + std::to_string(b.w) + ",\"h\":" + std::to_string(b.h) + "}";
}

std::string ProvenanceJsonFields(const Provenance& p) {
  auto field = [](const std::string& v) { return v.empty() ? std::string("null") : JsonString(v); };
  return "\"page_url\":" + field(p.page_url) + ",\"source\":" + field(p.source) +
         ",\"captured_at\":" + field(p.captured_at) + ",\"licence\":" + field(p.licence) +
         ",\"notes\":" + field(p.notes);
}

std::string CameraName(const PhotoMetadata& p) {
  if (p.camera_model.starts_with(p.camera_make)) return p.camera_model;  // "Canon" + "Canon EOS 5D"
  if (p.camera_model.empty()) return p.camera_make;
  return p.camera_make + " " + p.camera_model;
}

std::string PhotoJsonFields(const PhotoMetadata& p) {
  auto text = [](const std::string& v) { return v.empty() ? std::string("null") : JsonString(v); };
  auto degrees = [](const std::optional<double>& v) { return v ? JsonFixed(*v, 6) : std::string("null"); };
  return "\"taken_at\":" + text(p.taken_at) + ",\"camera_make\":" + text(p.camera_make) +
         ",\"camera_model\":" + text(p.camera_model) + ",\"gps_lat\":" + degrees(p.latitude) +
         ",\"gps_lon\":" + degrees(p.longitude);
}

namespace {

// Unicode bidirectional controls (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069): they reorder
// the text around them, so "photo\u202Egpj.exe" shows as "photoexe.jpg".
bool IsBidiControl(std::string_view s, size_t i, size_t n) {
  if (n != 3 || static_cast<unsigned char>(s[i]) != 0xE2) return false;
  const auto b1 = static_cast<unsigned char>(s[i + 1]), b2 = static_cast<unsigned char>(s[i + 2]);
  return (b1 == 0x80 && (b2 == 0x8E || b2 == 0x8F || (b2 >= 0xAA && b2 <= 0xAE))) ||
         (b1 == 0x81 && b2 >= 0xA6 && b2 <= 0xA9);
}

// A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
bool StartsLikeFormula(std::string_view s) {
  return !s.empty() && std::string_view("=+-@\t\r").find(s.front()) != std::string_view::npos;
}

}  // namespace

std::string TerminalText(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [&out](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0 || c < 0x20 || c == 0x7F) {  // C0, DEL, and bytes that are not UTF-8 (raw 8-bit C1)
      hex(c);
      ++i;
    } else if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {  // C1 as UTF-8
      hex(c);
      hex(static_cast<unsigned char>(s[i + 1]));
      i += 2;
    } else if (IsBidiControl(s, i, n)) {
      const unsigned cp = ((c & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                          (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", cp);
      out += buf;
      i += 3;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

namespace {

class TerminalMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string text = TerminalText(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<TerminalMessageFlag>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> TerminalLogFormatter(const std::string& pattern) {
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<TerminalMessageFlag>('*').set_pattern(pattern);
  return formatter;
}

std::string CsvField(std::string_view s, bool text) {
  const bool formula = text && StartsLikeFormula(s);
  if (!formula && s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = formula ? "\"'" : "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string TsvField(std::string_view s, bool text) {
  std::string out = text && StartsLikeFormula(s) ? "'" : "";
  out += s;
  for (char& c : out)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return out;
}

std::string Timecode(double seconds) {
  const auto ms = static_cast<int64_t>(std::llround(std::max(0.0, seconds) * 1000));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld.%03lld", static_cast<long long>(ms / 3'600'000),
                static_cast<long long>(ms / 60'000 % 60), static_cast<long long>(ms / 1000 % 60),
                static_cast<long long>(ms % 1000));
  return buf;
}

std::string VideoJson(const std::optional<VideoSpan>& v) {
  if (!v) return "null";
  return "{\"frame\":" + std::to_string(v->frame) + ",\"at\":" + JsonFixed(v->at_s, 3) +
         ",\"first\":" + JsonFixed(v->first_s, 3) + ",\"last\":" + JsonFixed(v->last_s, 3) +
         ",\"timecode\":" + JsonString(Timecode(v->first_s) + "-" + Timecode(v->last_s)) + "}";
}

namespace {

// A face in a video in the table: " @ FIRST-LAST (frame N)"; nothing for a still image.
std::string VideoText(const std::optional<VideoSpan>& v) {
  if (!v) return "";
  return " @ " + Timecode(v->first_s) + "-" + Timecode(v->last_s) + " (frame " + std::to_string(v->frame) + ")";
}

// A video time in seconds for csv/tsv, empty for a still image.
std::string VideoSeconds(const std::optional<VideoSpan>& v, double VideoSpan::*field) {
  if (!v) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", (*v).*field);
  return buf;
}

// A GPS coordinate to 6 decimals (about 0.1 m), "" when absent.
std::string Degrees(const std::optional<double>& v) {
  if (!v) return {};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", *v);
  return buf;
}

// The calibrated false-match rate at a distance, in a fixed short form.
std::string Fmr(const Calibration& cal, float distance) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", cal.Fmr(distance));
  return buf;
}

std::string MatchJsonFields(const Match& m, const Calibration& cal) {
  return "\"rank\":" + std::to_string(m.rank) + ",\"face_id\":" + std::to_string(m.face_id) +
         ",\"distance\":" + JsonFixed(m.distance, 4) + ",\"distance_exact\":" + JsonFloat(m.distance) +
         ",\"fmr\":" + JsonSignificant(cal.Fmr(m.distance), 2) +
         ",\"confidence\":" + JsonString(ConfidenceBand(cal.Fmr(m.distance))) +
         ",\"image\":" + JsonString(m.image_path) + ",\"sha256\":" + JsonString(m.image_sha256) +
         ",\"box\":" + JsonBox(m.box) + "," + ProvenanceJsonFields(m.provenance) + "," +
         PhotoJsonFields(m.photo) + ",\"copies\":" + std::to_string(m.copies) +
         ",\"copy_of\":" + (m.copy_of ? std::to_string(*m.copy_of) : "null") + ",\"video\":" + VideoJson(m.video);
}

// Expected number of different-person faces within the threshold in a corpus of this size: the
// 1:N caveat that a 1:1 false-match rate hides.
double ExpectedFalseMatches(const QueryResult& r, const QueryOptions& o, const Calibration& cal) {
  return cal.Fmr(o.threshold) * static_cast<double>(r.corpus_faces);
}

std::string JsonIssues(const FaceQuality& q) {
  std::string s = "[";
  for (size_t i = 0; i < q.issues.size(); ++i) {
    if (i) s += ',';
    s += JsonString(q.issues[i]);
  }
  return s + "]";
}

// The probe face's quality signals (json): size, detector score, sharpness, and whether it is low.
std::string QualityJson(const FaceQuality& q) {
  return "{\"size\":" + std::to_string(q.size) + ",\"det_score\":" + JsonNumber(q.det_score) +
         ",\"sharpness\":" + JsonNumber(q.sharpness) + ",\"low\":" + (q.low() ? "true" : "false") +
         ",\"issues\":" + JsonIssues(q) + "}";
}

void WriteJsonObject(std::ostream& out, const ProbeOutcome& outcome, const QueryOptions& o, const Calibration& cal) {
  const QueryResult& r = outcome.result;
  if (outcome.error) {
    out << "{\"probe\":" << JsonString(outcome.photo) << ",\"error\":" << JsonString(outcome.error->message) << "}";
    return;
  }
  out << "{\"probe\":" << JsonString(r.probe_path) << ",\"probe_sha256\":" << JsonString(r.probe_sha256)
      << ",\"subject\":" << (r.subject.empty() ? "null" : JsonString(r.subject)) << ",\"references\":" << r.references
      << ",\"faces_detected\":" << r.faces_detected << ",\"corpus_faces\":" << r.corpus_faces
      << ",\"model\":" << JsonString(EmbeddingModelName(cal.model()))
      << ",\"threshold\":" << JsonFloat(o.threshold) << ",\"threshold_fmr\":" << JsonSignificant(cal.Fmr(o.threshold), 2)
      << ",\"calibration\":{\"mode\":" << JsonString(cal.mode()) << ",\"exact\":" << (cal.exact() ? "true" : "false")
      << "},\"expected_false_matches\":" << JsonNumber(ExpectedFalseMatches(r, o, cal))
      << ",\"top_k\":" << o.top_k << ",\"results\":[";
  for (size_t p = 0; p < r.probes.size(); ++p) {
    const ProbeFace& probe = r.probes[p];
    out << (p ? "," : "") << "{\"probe_face\":" << probe.index << ",\"box\":" << JsonBox(probe.face.box)
        << ",\"video\":" << VideoJson(probe.face.video) << ",\"quality\":" << QualityJson(probe.quality)
        << ",\"matches\":[";
    for (size_t i = 0; i < probe.matches.size(); ++i)
      out << (i ? "," : "") << "{" << MatchJsonFields(probe.matches[i], cal) << "}";
    out << "]}";
  }
  out << "]}";
}

// One object for one probe; an array of them for several.
void WriteJson(std::ostream& out, const std::vector<ProbeOutcome>& outcomes, const QueryOptions& o,
               const Calibration& cal) {
  const bool many = outcomes.size() != 1;
  if (many) out << "[";
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i) out << ",";
    const Scale scale = ScaleOf(outcomes[i], o, cal);
    WriteJsonObject(out, outcomes[i], scale.options, scale.cal);
  }
  out << (many ? "]\n" : "\n");
}

void WriteJsonl(std::ostream& out, const QueryResult& r, const Calibration& cal) {
  for (const ProbeFace& probe : r.probes)
    for (const Match& m : probe.matches)
      out << "{\"probe\":" << JsonString(r.probe_path) << ",\"probe_face\":" << probe.index
          << ",\"probe_video\":" << VideoJson(probe.face.video)
          << ",\"probe_low_quality\":" << (probe.quality.low() ? "true" : "false")
          << ",\"probe_quality_issues\":" << JsonIssues(probe.quality) << "," << MatchJsonFields(m, cal) << "}\n";
}

// The csv/tsv columns, in their default order: each a name and how to print it for one match.
struct Row {
  const ProbeOutcome& outcome;
  const ProbeFace& probe;
  const Match& m;
  const Calibration& cal;
};
// number: a value facesearch computes. The others are text (file names, provenance from a
// manifest) and are neutralised where a spreadsheet would run them as a formula.
struct Column {
  const char* name;
  std::string (*get)(const Row&);
  bool number = false;
};
const Column kColumns[] = {
    {"probe", [](const Row& r) { return r.outcome.photo; }},
    {"probe_face", [](const Row& r) { return std::to_string(r.probe.index); }, true},
    {"rank", [](const Row& r) { return std::to_string(r.m.rank); }, true},
    {"face_id", [](const Row& r) { return std::to_string(r.m.face_id); }, true},
    {"distance", [](const Row& r) { return Distance(r.m.distance); }, true},
    {"fmr", [](const Row& r) { return Fmr(r.cal, r.m.distance); }, true},
    {"confidence", [](const Row& r) { return std::string(ConfidenceBand(r.cal.Fmr(r.m.distance))); }},
    {"image", [](const Row& r) { return r.m.image_path; }},
    {"x", [](const Row& r) { return std::to_string(r.m.box.x); }, true},
    {"y", [](const Row& r) { return std::to_string(r.m.box.y); }, true},
    {"w", [](const Row& r) { return std::to_string(r.m.box.w); }, true},
    {"h", [](const Row& r) { return std::to_string(r.m.box.h); }, true},
    {"page_url", [](const Row& r) { return r.m.provenance.page_url; }},
    {"source", [](const Row& r) { return r.m.provenance.source; }},
    {"captured_at", [](const Row& r) { return r.m.provenance.captured_at; }},
    {"licence", [](const Row& r) { return r.m.provenance.licence; }},
    {"notes", [](const Row& r) { return r.m.provenance.notes; }},
    {"taken_at", [](const Row& r) { return r.m.photo.taken_at; }},
    {"camera_make", [](const Row& r) { return r.m.photo.camera_make; }},
    {"camera_model", [](const Row& r) { return r.m.photo.camera_model; }},
    {"gps_lat", [](const Row& r) { return Degrees(r.m.photo.latitude); }, true},
    {"gps_lon", [](const Row& r) { return Degrees(r.m.photo.longitude); }, true},
    {"copies", [](const Row& r) { return std::to_string(r.m.copies); }, true},
    {"copy_of", [](const Row& r) { return r.m.copy_of ? std::to_string(*r.m.copy_of) : std::string(); }, true},
    {"video_first", [](const Row& r) { return VideoSeconds(r.m.video, &VideoSpan::first_s); }, true},
    {"video_last", [](const Row& r) { return VideoSeconds(r.m.video, &VideoSpan::last_s); }, true},
    {"video_frame", [](const Row& r) { return r.m.video ? std::to_string(r.m.video->frame) : ""; }, true},
    // Not in the default set: ask for them with --fields.
    {"sha256", [](const Row& r) { return r.m.image_sha256; }},
    {"distance_exact", [](const Row& r) { return JsonFloat(r.m.distance); }, true},
    {"probe_low_quality", [](const Row& r) { return std::string(r.probe.quality.low() ? "true" : "false"); }},
    {"probe_video_first", [](const Row& r) { return VideoSeconds(r.probe.face.video, &VideoSpan::first_s); }, true},
    {"probe_video_last", [](const Row& r) { return VideoSeconds(r.probe.face.video, &VideoSpan::last_s); }, true},
};
constexpr size_t kDefaultColumns = 27;  // probe .. video_frame

// CSV (sep ',') or TSV (sep '\t'): one header, then one row per match of every probe.
void WriteDelimited(std::ostream& out, const std::vector<ProbeOutcome>& outcomes, char sep,
                    const std::vector<std::string>& fields, const Calibration& cal) {
  auto field = [&](const Column& c, const Row& row) {
    const std::string value = c.get(row);
    return sep == ',' ? CsvField(value, !c.number) : TsvField(value, !c.number);
  };
  std::vector<const Column*> columns;
  if (fields.empty())
    for (size_t i = 0; i < kDefaultColumns; ++i) columns.push_back(&kColumns[i]);
  for (const std::string& name : fields)  // names were checked by CheckFields
    for (const Column& c : kColumns)
      if (name == c.name) columns.push_back(&c);
  for (size_t i = 0; i < columns.size(); ++i) out << (i ? std::string(1, sep) : "") << columns[i]->name;
  out << '\n';
  for (const ProbeOutcome& o : outcomes) {
    const Calibration own = ScaleOf(o, {}, cal).cal;
    for (const ProbeFace& probe : o.result.probes)
      for (const Match& m : probe.matches) {
        const Row row{o, probe, m, own};
        for (size_t i = 0; i < columns.size(); ++i) out << (i ? std::string(1, sep) : "") << field(*columns[i], row);
        out << '\n';
      }
  }
}

// "from PAGE_URL; source S; captured AT; licence L; notes N" with the fields that are set.
std::string ProvenanceLine(const Provenance& p) {
  std::string line;
  auto add = [&](const char* label, const std::string& v) {
    if (v.empty()) return;
    if (!line.empty()) line += "; ";
    line += label;
    line += v;
  };
  add("from ", p.page_url);
  add("source ", p.source);
  add("captured ", p.captured_at);
  add("licence ", p.licence);
  add("notes ", p.notes);
  return TerminalText(line);
}

// "taken AT; camera MAKE MODEL; GPS LAT,LON" with what the EXIF held.
std::string PhotoLine(const PhotoMetadata& p) {
  std::string line;
  auto add = [&](const std::string& v) {
    if (v.empty()) return;
    if (!line.empty()) line += "; ";
    line += v;
  };
  if (!p.taken_at.empty()) add("taken " + p.taken_at);
  const std::string camera = CameraName(p);
  if (!camera.empty()) add("camera " + camera);
  if (p.latitude) add("GPS " + Degrees(p.latitude) + "," + Degrees(p.longitude));
  return TerminalText(line);
}

void WriteTable(std::ostream& out, const QueryResult& r, const QueryOptions& o, const Calibration& cal,
                bool name_probe) {
  if (name_probe) out << "== " << TerminalText(r.probe_path) << " (" << r.faces_detected << " face(s))\n";
  for (const ProbeFace& probe : r.probes) {
    const Box& b = probe.face.box;
    if (!r.subject.empty())
      out << "subject " << TerminalText(r.subject) << " (" << r.references << " references, their mean face)";
    else
      out << "probe face " << probe.index << " at " << b.w << "x" << b.h << "+" << b.x << "+" << b.y
          << VideoText(probe.face.video);
    out << ": " << probe.matches.size() << " match(es) within distance " << Distance(o.threshold)
        << " among " << r.corpus_faces << " faces\n";
    if (probe.matches.empty()) continue;
    out << std::left << std::setw(6) << "RANK" << std::setw(10) << "DISTANCE" << std::setw(10) << "FMR"
        << std::setw(13) << "CONFIDENCE" << std::setw(20) << "BOX" << "IMAGE\n";
    for (const Match& m : probe.matches) {
      std::string box = std::to_string(m.box.w) + "x" + std::to_string(m.box.h) + "+" +
                        std::to_string(m.box.x) + "+" + std::to_string(m.box.y);
      out << std::left << std::setw(6) << m.rank << std::setw(10) << Distance(m.distance)
          << std::setw(10) << Fmr(cal, m.distance) << std::setw(13) << ConfidenceBand(cal.Fmr(m.distance))
          << std::setw(20) << box << TerminalText(m.image_path) << VideoText(m.video)
          << (m.copies ? " (+" + std::to_string(m.copies) + (m.copies == 1 ? " copy)" : " copies)") : "")
          << (m.copy_of ? " (copy of face " + std::to_string(*m.copy_of) + ")" : "") << "\n";
      if (!m.provenance.empty()) out << std::string(59, ' ') << ProvenanceLine(m.provenance) << "\n";
      if (!m.photo.empty()) out << std::string(59, ' ') << PhotoLine(m.photo) << "\n";
    }
  }
  if (!r.probes.empty()) {
    char note[256];
    std::snprintf(note, sizeof note,
                  "FMR: share of different-person pairs this close on LFW. At distance %.2f about %.1f "
                  "different-person faces are expected among %lld: treat matches as leads.\n",
                  static_cast<double>(o.threshold), ExpectedFalseMatches(r, o, cal),
                  static_cast<long long>(r.corpus_faces));
    out << note;
    if (!cal.exact())
      out << "The FMR comes from the " << cal.mode() << " calibration: approximate for this corpus's embedding mode.\n";
  }
}

}  // namespace

Status CheckFields(const std::vector<std::string>& fields) {
  for (const std::string& name : fields) {
    bool known = false;
    for (const Column& c : kColumns) known = known || name == c.name;
    if (known) continue;
    std::string all;
    for (const Column& c : kColumns) {
      if (!all.empty()) all += ',';
      all += c.name;
    }
    return Fail(ErrorCode::kInvalidArgument, "unknown --fields column '" + name + "'; the columns are " + all);
  }
  return Ok();
}

void WriteQueryResults(std::ostream& out, const std::vector<ProbeOutcome>& outcomes, const QueryOptions& options,
                       const Calibration& calibration, OutputFormat format, const std::vector<std::string>& fields) {
  switch (format) {
    case OutputFormat::kJson: return WriteJson(out, outcomes, options, calibration);
    case OutputFormat::kCsv: return WriteDelimited(out, outcomes, ',', fields, calibration);
    case OutputFormat::kTsv: return WriteDelimited(out, outcomes, '\t', fields, calibration);
    case OutputFormat::kTable:
    case OutputFormat::kJsonl:
      break;
  }
  for (const ProbeOutcome& o : outcomes) {
    if (o.error) continue;  // reported on stderr
    const Scale scale = ScaleOf(o, options, calibration);
    if (format == OutputFormat::kJsonl) WriteJsonl(out, o.result, scale.cal);
    else WriteTable(out, o.result, scale.options, scale.cal, outcomes.size() > 1);
  }
}

namespace {

std::string CompareSideJson(const PhotoFaces& p, int chosen) {
  std::string s = "{\"path\":" + JsonString(p.path) + ",\"sha256\":" + JsonString(p.sha256) +
                  ",\"faces_detected\":" + std::to_string(p.faces.size()) + ",\"face\":" + std::to_string(chosen);
  if (chosen >= 0) s += ",\"box\":" + JsonBox(p.faces[chosen].box);
  return s + "}";
}

std::string TogetherJson(const TogetherImage& image, const std::vector<ProbeOutcome>& outcomes,
                         const std::vector<Calibration>& cals) {
  std::string matches;
  for (size_t j = 0; j < image.matches.size(); ++j)
    matches += std::string(j ? "," : "") + "{\"probe\":" + JsonString(outcomes[j].photo) + "," +
               MatchJsonFields(image.matches[j], cals[j]) + "}";
  return "{\"image\":" + JsonString(image.image_path) + ",\"sha256\":" + JsonString(image.image_sha256) +
         ",\"matches\":[" + matches + "]}";
}

}  // namespace

std::string CompareText(const CompareResult& r, float threshold, const Calibration& calibration) {
  if (!r.distance) return "cannot compare: no face in " + TerminalText(r.a.faces.empty() ? r.a.path : r.b.path) + "\n";
  const double fmr = calibration.Fmr(*r.distance);
  char line[256];
  std::snprintf(line, sizeof line, "%s: distance %.4f (threshold %.2f), FMR %.2g (%s)\n",
                r.same ? "same person" : "different people", static_cast<double>(*r.distance),
                static_cast<double>(threshold), fmr, ConfidenceBand(fmr));
  return line;
}

std::string CompareJson(const CompareResult& r, float threshold, const Calibration& calibration) {
  const double fmr = r.distance ? calibration.Fmr(*r.distance) : 1.0;
  return "{\"a\":" + CompareSideJson(r.a, r.face_a) + ",\"b\":" + CompareSideJson(r.b, r.face_b) +
         ",\"distance\":" + (r.distance ? JsonNumber(*r.distance) : "null") +
         ",\"fmr\":" + (r.distance ? JsonNumber(fmr) : "null") +
         ",\"confidence\":" + (r.distance ? JsonString(ConfidenceBand(fmr)) : "null") +
         ",\"model\":" + JsonString(EmbeddingModelName(calibration.model())) +
         ",\"threshold\":" + JsonNumber(threshold) + ",\"calibration\":{\"mode\":" + JsonString(calibration.mode()) +
         ",\"exact\":" + (calibration.exact() ? "true" : "false") + "}" +
         ",\"same\":" + (r.same ? "true" : "false") + "}\n";
}

std::string InfoJson(const CorpusInfo& info) {
  const CorpusCounts& c = info.counts;
  return "{\"corpus\":" + JsonString(info.corpus_dir.string()) + ",\"database\":" + JsonString(info.database.string()) +
         ",\"schema_version\":" + std::to_string(info.schema_version) +
         ",\"model_identity\":" + JsonString(info.model_identity) + ",\"model\":" + JsonString(info.model) +
         ",\"embedding_mode\":" + JsonString(info.embedding_mode) + ",\"images\":" + std::to_string(c.images) +
         ",\"images_with_faces\":" + std::to_string(c.images_ok) +
         ",\"images_without_face\":" + std::to_string(c.images_noface) +
         ",\"images_error\":" + std::to_string(c.images_error) + ",\"faces\":" + std::to_string(c.faces) +
         ",\"inputs_skipped\":" + std::to_string(c.inputs_skipped) +
         ",\"generation\":" + std::to_string(info.generation) + ",\"index_state\":" + JsonString(info.index_state) +
         ",\"index_vectors\":" + std::to_string(info.index_vectors) +
         ",\"index_bytes\":" + std::to_string(info.index_bytes) + ",\"index_kind\":" + JsonString(info.index_kind) +
         ",\"index_setting\":" + JsonString(info.index_setting) +
         ",\"index_memory_bytes\":" + std::to_string(info.index_memory_bytes) +
         ",\"index_params\":" + JsonString(info.index_params) + ",\"index_recall_at_10\":" +
         (info.index_recall_at_10 ? JsonFixed(*info.index_recall_at_10, 4) : std::string("null")) +
         ",\"index_recall_queries\":" + std::to_string(info.index_recall_queries) +
         ",\"index_build_seconds\":" + JsonFixed(info.index_build_seconds, 4) +
         ",\"index_built_generation\":" + std::to_string(info.index_built_generation) +
         ",\"index_built_at\":" + JsonString(info.index_built_at) + "}\n";
}

namespace {
std::string Fixed4(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}
}  // namespace

std::string InfoText(const CorpusInfo& info) {
  const CorpusCounts& c = info.counts;
  std::ostringstream out;
  out << "corpus:          " << TerminalText(info.corpus_dir.string()) << "\n"
      << "database:        " << TerminalText(info.database.string()) << " (schema " << info.schema_version << ")\n"
      << "models:          " << info.model << " (" << info.model_identity << ")\n"
      << "embedding mode:  " << info.embedding_mode << "\n"
      << "images:          " << c.images << " (" << c.images_ok << " with faces, " << c.images_noface << " without, "
      << c.images_error << " errors; " << c.inputs_skipped << " inputs skipped; see info --errors)\n"
      << "faces:           " << c.faces << "\n"
      << "index:           " << info.index_state << ", " << info.index_vectors << " vectors, " << info.index_bytes
      << " bytes (generation " << info.generation << ")\n"
      << "index kind:      " << info.index_kind << (info.index_params.empty() ? "" : " (" + info.index_params + ")")
      << ", " << info.index_memory_bytes << " bytes in memory\n";
  if (!info.index_built_at.empty())
    out << "index recall@10: " << (info.index_recall_at_10 ? Fixed4(*info.index_recall_at_10) : std::string("not measured"))
        << " against exact search (" << info.index_recall_queries << " probes; built in "
        << Fixed4(info.index_build_seconds) << " s at generation " << info.index_built_generation << ", "
        << info.index_built_at << ")\n";
  return out.str();
}

Result<float> ChooseQueryThreshold(const Calibration& calibration, std::optional<float> threshold, double max_fmr,
                                   int64_t corpus_faces, std::string* note) {
  if (max_fmr > 0) {
    const float from_fmr = calibration.ThresholdForFmr(max_fmr);
    if (from_fmr <= 0)
      return Fail(ErrorCode::kInvalidArgument, "--max-fmr is below what the calibration table can resolve; use 1e-6 or more");
    return from_fmr;
  }
  if (threshold) return *threshold;
  const float dflt = calibration.same_person_distance();
  const float scaled = calibration.DefaultThreshold(corpus_faces);
  if (scaled >= dflt) return dflt;
  if (note) {
    char text[400];
    std::snprintf(text, sizeof text,
                  "threshold %.2f instead of %.2f: in a corpus of %lld faces the default keeps the strangers expected "
                  "among the matches to about %g (at %.2f: about %.0f); --threshold or --max-fmr set another",
                  static_cast<double>(scaled), static_cast<double>(dflt), static_cast<long long>(corpus_faces),
                  kDefaultExpectedStrangers, static_cast<double>(dflt),
                  calibration.Fmr(dflt) * static_cast<double>(corpus_faces));
    *note = text;
  }
  return scaled;
}

float SubjectThreshold(const Calibration& photo, int references) {
  const float same_person = photo.same_person_distance();
  if (references <= 1) return same_person;
  const float calibrated = photo.ForReferences(references).ThresholdForFmr(photo.Fmr(same_person));
  return calibrated > 0 ? calibrated : same_person;  // 0: beyond what the table resolves
}

namespace {
std::string AuditProbesJson(const AuditRecord& r) {
  std::string out = "[";
  for (size_t i = 0; i < r.probe_sha256.size(); ++i) out += (i ? "," : "") + JsonString(r.probe_sha256[i]);
  return out + "]";
}

}  // namespace

// params and results are JSON text written by facesearch itself; they are embedded as values.
std::string AuditRecordJson(const AuditRecord& r) {
  return "{\"seq\":" + std::to_string(r.seq) + ",\"at\":" + JsonString(r.at) +
         ",\"user\":" + JsonString(r.user) + ",\"action\":" + JsonString(r.action) +
         ",\"params\":" + r.params + ",\"case\":" + JsonString(r.case_id) +
         ",\"purpose\":" + JsonString(r.purpose) + ",\"probe_sha256\":" + AuditProbesJson(r) +
         ",\"results\":" + r.results + ",\"prev_hash\":" + JsonString(r.prev_hash) +
         ",\"hash\":" + JsonString(r.hash) + "}";
}

namespace {
std::string StagesJson(const StageSeconds& st) {
  return "{\"read\":" + JsonNumber(st.read) + ",\"decode\":" + JsonNumber(st.decode) +
         ",\"detect\":" + JsonNumber(st.detect) + ",\"landmarks\":" + JsonNumber(st.landmarks) +
         ",\"embed\":" + JsonNumber(st.embed) + ",\"store\":" + JsonNumber(st.store) + "}";
}
}  // namespace

std::string IndexSummaryJson(const IndexSummary& s) {
  return "{\"files\":" + std::to_string(s.files) + ",\"added\":" + std::to_string(s.added) +
         ",\"noface\":" + std::to_string(s.noface) + ",\"duplicates\":" + std::to_string(s.duplicates) +
         ",\"errors\":" + std::to_string(s.errors) + ",\"faces\":" + std::to_string(s.faces) +
         ",\"erased\":" + std::to_string(s.erased) + ",\"optout_faces\":" + std::to_string(s.optout_faces) +
         ",\"skipped\":" + std::to_string(s.skipped) + ",\"interrupted\":" + (s.interrupted ? "true" : "false") +
         ",\"seconds\":" + JsonNumber(s.elapsed_s) + ",\"stage_seconds\":" + StagesJson(s.stage_seconds) +
         ",\"stage_cpu_seconds\":" + StagesJson(s.stage_cpu_seconds) + "}\n";
}

std::string ForgetJson(const ForgetSummary& summary) {
  return "{\"faces_erased\":" + std::to_string(summary.erased.faces) + ",\"images_erased\":" +
         std::to_string(summary.erased.images) + ",\"faces_left\":" + std::to_string(summary.faces_left) + "}\n";
}

std::vector<LogLine> QueryMessages(const std::vector<ProbeOutcome>& outcomes, const QueryOptions& options,
                                   OutputFormat format) {
  std::vector<LogLine> lines;
  for (const ProbeOutcome& o : outcomes) {
    if (o.error) {
      lines.push_back({spdlog::level::err, o.error->message});
    } else if (o.result.faces_detected == 0) {
      lines.push_back({spdlog::level::warn, "no face found in " + o.photo +
                                                "; try --upsample 2 or --detector cnn for small or turned faces"});
    } else if (!o.result.any_match()) {
      lines.push_back({spdlog::level::info, fmt::format("no face in the corpus is within distance {} of {}",
                                                        o.result.threshold, o.photo)});
    }
    // json/jsonl carry the quality in their records; the other formats get a warning line.
    if (o.error || format == OutputFormat::kJson || format == OutputFormat::kJsonl) continue;
    for (const ProbeFace& p : o.result.probes) {
      if (!p.quality.low()) continue;
      std::string issues;
      for (const std::string& i : p.quality.issues) issues += (issues.empty() ? "" : ", ") + i;
      lines.push_back({spdlog::level::warn,
                       fmt::format("low-quality probe: face {} of {} is {} (size {} px, sharpness {:.0f}); its "
                                   "distances are less reliable than the calibration assumes",
                                   p.index, o.photo, issues, p.quality.size, p.quality.sharpness)});
    }
  }
  return lines;
}

int QueryExitCode(const std::vector<ProbeOutcome>& outcomes) {
  bool any_match = false, any_error = false;
  for (const ProbeOutcome& o : outcomes) {
    any_error = any_error || o.error.has_value();
    any_match = any_match || (!o.error && o.result.any_match());
  }
  return any_error ? 2 : any_match ? 0 : 1;
}

void WriteTogetherResults(std::ostream& out, const std::vector<TogetherImage>& images,
                          const std::vector<ProbeOutcome>& outcomes, const std::vector<Calibration>& cals,
                          OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson: {
      out << "{\"probes\":[";
      for (size_t j = 0; j < outcomes.size(); ++j) out << (j ? "," : "") << JsonString(outcomes[j].photo);
      out << "],\"together\":[";
      for (size_t i = 0; i < images.size(); ++i) out << (i ? "," : "") << TogetherJson(images[i], outcomes, cals);
      out << "]}\n";
      return;
    }
    case OutputFormat::kJsonl:
      for (const TogetherImage& image : images) out << TogetherJson(image, outcomes, cals) << "\n";
      return;
    case OutputFormat::kCsv:
    case OutputFormat::kTsv: {
      const char sep = format == OutputFormat::kCsv ? ',' : '\t';
      auto cell = [&](const std::string& v, bool text = true) { return sep == ',' ? CsvField(v, text) : TsvField(v, text); };
      out << "image" << sep << "sha256" << sep << "probe" << sep << "face_id" << sep << "distance" << sep << "fmr" << sep
          << "confidence\n";
      for (const TogetherImage& image : images)
        for (size_t j = 0; j < image.matches.size(); ++j) {
          const Match& m = image.matches[j];
          out << cell(image.image_path) << sep << image.image_sha256 << sep << cell(outcomes[j].photo) << sep
              << m.face_id << sep << Distance(m.distance) << sep << Fmr(cals[j], m.distance) << sep
              << ConfidenceBand(cals[j].Fmr(m.distance)) << "\n";
        }
      return;
    }
    case OutputFormat::kTable:
      break;
  }
  out << images.size() << " image(s) with all " << outcomes.size() << " probes, each by a different face\n";
  for (const TogetherImage& image : images) {
    out << TerminalText(image.image_path) << "\n";
    for (size_t j = 0; j < image.matches.size(); ++j) {
      const Match& m = image.matches[j];
      out << "  " << std::left << std::setw(30) << TerminalText(outcomes[j].photo) << " face " << std::setw(8)
          << m.face_id << " distance " << Distance(m.distance) << "  FMR " << Fmr(cals[j], m.distance) << " ("
          << ConfidenceBand(cals[j].Fmr(m.distance)) << ")\n";
    }
  }
}

Scale ScaleOf(const ProbeOutcome& outcome, const QueryOptions& options, const Calibration& cal) {
  if (outcome.result.subject.empty()) return {options, cal};
  Scale scale{options, cal.ForReferences(outcome.result.references)};
  scale.options.threshold = outcome.result.threshold;
  return scale;
}

std::string FaceRecordJson(const FaceRecord& r) {
  std::string s = "{\"face_id\":" + std::to_string(r.face_id) + ",\"image_id\":" +
                  std::to_string(r.image_id) + ",\"image\":" + JsonString(r.image_path) +
                  ",\"sha256\":" + JsonString(r.image_sha256) + ",\"box\":" + JsonBox(r.face.box) +
                  ",\"landmarks\":[";
  for (size_t i = 0; i < r.face.landmarks.size(); ++i) {
    s.append(i ? ",[" : "[");
    s += std::to_string(r.face.landmarks[i].x) + "," + std::to_string(r.face.landmarks[i].y) + "]";
  }
  s += "],\"det_score\":" + JsonNumber(r.face.det_score) + "," + ProvenanceJsonFields(r.provenance) +
       "," + PhotoJsonFields(r.photo) + ",\"exif_problem\":" +
       (r.exif_problem.empty() ? std::string("null") : JsonString(r.exif_problem)) +
       ",\"video\":" + VideoJson(r.face.video) + ",\"embedding\":[";
  for (size_t i = 0; i < r.face.embedding.size(); ++i) {
    if (i) s += ',';
    s += JsonFloat(r.face.embedding[i]);
  }
  return s + "]}";
}

}  // namespace facesearch::frontend
