#include "cli/format.h"

#include <spdlog/pattern_formatter.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iterator>

#include "common/json.h"
#include "facesearch/eval.h"

namespace facesearch::cli {

namespace {
// Distances are shown to 4 decimals: more digits suggest a precision the model does not have.
std::string Distance(float d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", static_cast<double>(d));
  return buf;
}
}  // namespace

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

// The calibrated false-match rate at a distance, in a fixed short form.
std::string Fmr(const Calibration& cal, float distance) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", cal.Fmr(distance));
  return buf;
}

std::string MatchJsonFields(const Match& m, const Calibration& cal) {
  return "\"rank\":" + std::to_string(m.rank) + ",\"face_id\":" + std::to_string(m.face_id) +
         ",\"distance\":" + JsonFixed(m.distance, 4) + ",\"fmr\":" + JsonSignificant(cal.Fmr(m.distance), 2) +
         ",\"confidence\":" + JsonString(ConfidenceBand(cal.Fmr(m.distance))) +
         ",\"image\":" + JsonString(m.image_path) + ",\"sha256\":" + JsonString(m.image_sha256) +
         ",\"box\":" + JsonBox(m.box) + "," + ProvenanceJsonFields(m.provenance) + ",\"video\":" + VideoJson(m.video);
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
      << ",\"faces_detected\":" << r.faces_detected << ",\"corpus_faces\":" << r.corpus_faces
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
    WriteJsonObject(out, outcomes[i], o, cal);
  }
  out << (many ? "]\n" : "\n");
}

void WriteJsonl(std::ostream& out, const QueryResult& r, const Calibration& cal) {
  for (const ProbeFace& probe : r.probes)
    for (const Match& m : probe.matches)
      out << "{\"probe\":" << JsonString(r.probe_path) << ",\"probe_face\":" << probe.index
          << ",\"probe_video\":" << VideoJson(probe.face.video) << ",\"probe_low_quality\":" << (probe.quality.low() ? "true" : "false")
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
    {"video_first", [](const Row& r) { return VideoSeconds(r.m.video, &VideoSpan::first_s); }, true},
    {"video_last", [](const Row& r) { return VideoSeconds(r.m.video, &VideoSpan::last_s); }, true},
    {"video_frame", [](const Row& r) { return r.m.video ? std::to_string(r.m.video->frame) : ""; }, true},
    // Not in the default set: ask for them with --fields.
    {"sha256", [](const Row& r) { return r.m.image_sha256; }},
    {"probe_low_quality", [](const Row& r) { return std::string(r.probe.quality.low() ? "true" : "false"); }},
    {"probe_video_first", [](const Row& r) { return VideoSeconds(r.probe.face.video, &VideoSpan::first_s); }, true},
    {"probe_video_last", [](const Row& r) { return VideoSeconds(r.probe.face.video, &VideoSpan::last_s); }, true},
};
constexpr size_t kDefaultColumns = 20;  // probe .. video_frame

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
  for (const ProbeOutcome& o : outcomes)
    for (const ProbeFace& probe : o.result.probes)
      for (const Match& m : probe.matches) {
        const Row row{o, probe, m, cal};
        for (size_t i = 0; i < columns.size(); ++i) out << (i ? std::string(1, sep) : "") << field(*columns[i], row);
        out << '\n';
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

void WriteTable(std::ostream& out, const QueryResult& r, const QueryOptions& o, const Calibration& cal,
                bool name_probe) {
  if (name_probe) out << "== " << TerminalText(r.probe_path) << " (" << r.faces_detected << " face(s))\n";
  for (const ProbeFace& probe : r.probes) {
    const Box& b = probe.face.box;
    out << "probe face " << probe.index << " at " << b.w << "x" << b.h << "+" << b.x << "+" << b.y
        << VideoText(probe.face.video) << ": " << probe.matches.size() << " match(es) within distance " << Distance(o.threshold)
        << " among " << r.corpus_faces << " faces\n";
    if (probe.matches.empty()) continue;
    out << std::left << std::setw(6) << "RANK" << std::setw(10) << "DISTANCE" << std::setw(10) << "FMR"
        << std::setw(13) << "CONFIDENCE" << std::setw(20) << "BOX" << "IMAGE\n";
    for (const Match& m : probe.matches) {
      std::string box = std::to_string(m.box.w) + "x" + std::to_string(m.box.h) + "+" +
                        std::to_string(m.box.x) + "+" + std::to_string(m.box.y);
      out << std::left << std::setw(6) << m.rank << std::setw(10) << Distance(m.distance)
          << std::setw(10) << Fmr(cal, m.distance) << std::setw(13) << ConfidenceBand(cal.Fmr(m.distance))
          << std::setw(20) << box << TerminalText(m.image_path) << VideoText(m.video) << "\n";
      if (!m.provenance.empty()) out << std::string(59, ' ') << ProvenanceLine(m.provenance) << "\n";
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
    if (format == OutputFormat::kJsonl) WriteJsonl(out, o.result, calibration);
    else WriteTable(out, o.result, options, calibration, outcomes.size() > 1);
  }
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
       ",\"video\":" + VideoJson(r.face.video) +
       ",\"embedding\":[";
  for (size_t i = 0; i < r.face.embedding.size(); ++i) {
    if (i) s += ',';
    s += JsonFloat(r.face.embedding[i]);
  }
  return s + "]}";
}

}  // namespace facesearch::cli
