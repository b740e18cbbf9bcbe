#include "frontend/format.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>

#include <charconv>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iterator>
#include <sstream>

#include "common/json.h"
#include "common/utf8.h"
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

Json BoxJson(const Box& b) { return {{"x", b.x}, {"y", b.y}, {"w", b.w}, {"h", b.h}}; }

void AddProvenance(Json& object, const Provenance& p) {
  object["page_url"] = TextOrNull(p.page_url);
  object["source"] = TextOrNull(p.source);
  object["captured_at"] = TextOrNull(p.captured_at);
  object["licence"] = TextOrNull(p.licence);
  object["notes"] = TextOrNull(p.notes);
}

std::string CameraName(const PhotoMetadata& p) {
  if (p.camera_model.starts_with(p.camera_make)) return p.camera_model;  // "Canon" + "Canon EOS 5D"
  if (p.camera_model.empty()) return p.camera_make;
  return p.camera_make + " " + p.camera_model;
}

void AddPhoto(Json& object, const PhotoMetadata& p) {
  auto degrees = [](const std::optional<double>& v) { return v ? Json(RoundDecimals(*v, 6)) : Json(nullptr); };
  object["taken_at"] = TextOrNull(p.taken_at);
  object["camera_make"] = TextOrNull(p.camera_make);
  object["camera_model"] = TextOrNull(p.camera_model);
  object["gps_lat"] = degrees(p.latitude);
  object["gps_lon"] = degrees(p.longitude);
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

Json VideoJson(const std::optional<VideoSpan>& v) {
  if (!v) return nullptr;
  return {{"frame", v->frame},
          {"at", RoundDecimals(v->at_s, 3)},
          {"first", RoundDecimals(v->first_s, 3)},
          {"last", RoundDecimals(v->last_s, 3)},
          {"timecode", Timecode(v->first_s) + "-" + Timecode(v->last_s)}};
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

// A float's shortest round-trip form.
std::string ShortestText(float v) {
  char buf[32];
  const auto written = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, written.ptr);
}

// The calibrated false-match rate at a distance, in a fixed short form.
std::string Fmr(const Calibration& cal, float distance) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", cal.Fmr(distance));
  return buf;
}

// A match's fields, added to `object` after what the caller put first (its probe).
void AddMatch(Json& object, const Match& m, const Calibration& cal) {
  object["rank"] = m.rank;
  object["face_id"] = m.face_id;
  object["distance"] = RoundDecimals(m.distance, 4);
  object["distance_exact"] = ShortestDouble(m.distance);
  object["fmr"] = RoundSignificant(cal.Fmr(m.distance), 2);
  object["confidence"] = ConfidenceBand(cal.Fmr(m.distance));
  object["image"] = m.image_path;
  object["sha256"] = m.image_sha256;
  object["box"] = BoxJson(m.box);
  AddProvenance(object, m.provenance);
  AddPhoto(object, m.photo);
  object["copies"] = m.copies;
  object["copy_of"] = OrNull(m.copy_of);
  object["video"] = VideoJson(m.video);
}

Json MatchJson(const Match& m, const Calibration& cal) {
  Json object = Json::object();
  AddMatch(object, m, cal);
  return object;
}

// Expected number of different-person faces within the threshold in a corpus of this size: the
// 1:N caveat that a 1:1 false-match rate hides.
double ExpectedFalseMatches(const QueryResult& r, const QueryOptions& o, const Calibration& cal) {
  return cal.Fmr(o.threshold) * static_cast<double>(r.corpus_faces);
}

// The probe face's quality signals (json): size, detector score, sharpness, and whether it is low.
Json QualityJson(const FaceQuality& q) {
  return {{"size", q.size}, {"det_score", q.det_score}, {"sharpness", q.sharpness}, {"low", q.low()}, {"issues", q.issues}};
}

Json CalibrationJson(const Calibration& cal) { return {{"mode", cal.mode()}, {"exact", cal.exact()}}; }

Json ProbeJson(const ProbeOutcome& outcome, const QueryOptions& o, const Calibration& cal) {
  const QueryResult& r = outcome.result;
  if (outcome.error) return {{"probe", outcome.photo}, {"error", outcome.error->message}};
  Json results = Json::array();
  for (const ProbeFace& probe : r.probes) {
    Json matches = Json::array();
    for (const Match& m : probe.matches) matches.push_back(MatchJson(m, cal));
    results.push_back({{"probe_face", probe.index},
                       {"box", BoxJson(probe.face.box)},
                       {"video", VideoJson(probe.face.video)},
                       {"quality", QualityJson(probe.quality)},
                       {"matches", std::move(matches)}});
  }
  return {{"probe", r.probe_path},
          {"probe_sha256", r.probe_sha256},
          {"subject", TextOrNull(r.subject)},
          {"references", r.references},
          {"faces_detected", r.faces_detected},
          {"corpus_faces", r.corpus_faces},
          {"model", EmbeddingModelName(cal.model())},
          {"threshold", ShortestDouble(o.threshold)},
          {"threshold_fmr", RoundSignificant(cal.Fmr(o.threshold), 2)},
          {"calibration", CalibrationJson(cal)},
          {"expected_false_matches", ExpectedFalseMatches(r, o, cal)},
          {"top_k", o.top_k},
          {"results", std::move(results)}};
}

// One object for one probe; an array of them for several.
void WriteJson(std::ostream& out, const std::vector<ProbeOutcome>& outcomes, const QueryOptions& o,
               const Calibration& cal) {
  Json all = Json::array();
  for (const ProbeOutcome& outcome : outcomes) {
    const Scale scale = ScaleOf(outcome, o, cal);
    all.push_back(ProbeJson(outcome, scale.options, scale.cal));
  }
  out << JsonText(outcomes.size() == 1 ? all[0] : all) << "\n";
}

void WriteJsonl(std::ostream& out, const QueryResult& r, const Calibration& cal) {
  for (const ProbeFace& probe : r.probes)
    for (const Match& m : probe.matches) {
      Json line = {{"probe", r.probe_path},
                   {"probe_face", probe.index},
                   {"probe_video", VideoJson(probe.face.video)},
                   {"probe_low_quality", probe.quality.low()},
                   {"probe_quality_issues", probe.quality.issues}};
      AddMatch(line, m, cal);
      out << JsonText(line) << "\n";
    }
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
    {"distance_exact", [](const Row& r) { return ShortestText(r.m.distance); }, true},
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

Json CompareSideJson(const PhotoFaces& p, int chosen) {
  Json side = {{"path", p.path}, {"sha256", p.sha256}, {"faces_detected", p.faces.size()}, {"face", chosen}};
  if (chosen >= 0) side["box"] = BoxJson(p.faces[chosen].box);
  return side;
}

Json TogetherJson(const TogetherImage& image, const std::vector<ProbeOutcome>& outcomes,
                  const std::vector<Calibration>& cals) {
  Json matches = Json::array();
  for (size_t j = 0; j < image.matches.size(); ++j) {
    Json match = {{"probe", outcomes[j].photo}};
    AddMatch(match, image.matches[j], cals[j]);
    matches.push_back(std::move(match));
  }
  return {{"image", image.image_path}, {"sha256", image.image_sha256}, {"matches", std::move(matches)}};
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
  return JsonText({{"a", CompareSideJson(r.a, r.face_a)},
                   {"b", CompareSideJson(r.b, r.face_b)},
                   {"distance", OrNull(r.distance)},
                   {"fmr", r.distance ? Json(fmr) : Json(nullptr)},
                   {"confidence", r.distance ? Json(ConfidenceBand(fmr)) : Json(nullptr)},
                   {"model", EmbeddingModelName(calibration.model())},
                   {"threshold", threshold},
                   {"calibration", CalibrationJson(calibration)},
                   {"same", r.same}}) +
         "\n";
}

std::string InfoJson(const CorpusInfo& info) {
  const CorpusCounts& c = info.counts;
  const auto& recall = info.index_recall_at_10;
  return JsonText({{"corpus", info.corpus_dir.string()},
                   {"database", info.database.string()},
                   {"schema_version", info.schema_version},
                   {"model_identity", info.model_identity},
                   {"model", info.model},
                   {"embedding_mode", info.embedding_mode},
                   {"images", c.images},
                   {"images_with_faces", c.images_ok},
                   {"images_without_face", c.images_noface},
                   {"images_error", c.images_error},
                   {"faces", c.faces},
                   {"inputs_skipped", c.inputs_skipped},
                   {"generation", info.generation},
                   {"index_state", info.index_state},
                   {"index_vectors", info.index_vectors},
                   {"index_bytes", info.index_bytes},
                   {"index_kind", info.index_kind},
                   {"index_setting", info.index_setting},
                   {"index_memory_bytes", info.index_memory_bytes},
                   {"index_resident_bytes", info.index_resident_bytes},
                   {"index_mapped_bytes", info.index_mapped_bytes},
                   {"index_params", info.index_params},
                   {"index_recall_at_10", recall ? Json(RoundDecimals(*recall, 4)) : Json(nullptr)},
                   {"index_recall_queries", info.index_recall_queries},
                   {"index_build_seconds", RoundDecimals(info.index_build_seconds, 4)},
                   {"index_built_generation", info.index_built_generation},
                   {"index_built_at", info.index_built_at}}) +
         "\n";
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
      << "\n"
      << "index memory:    " << info.index_resident_bytes << " bytes resident, " << info.index_mapped_bytes
      << " bytes mapped from the index file (paged in as searches read them)\n";
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
// params and results are JSON text that facesearch wrote itself, so they parse; text that does not
// (a database edited by hand) is shown as a string rather than making the line invalid JSON.
Json EmbeddedJson(const std::string& text) {
  Json value = Json::parse(text, nullptr, false);
  return value.is_discarded() ? Json(text) : value;
}
}  // namespace

std::string AuditRecordJson(const AuditRecord& r) {
  return JsonText({{"seq", r.seq},
                   {"at", r.at},
                   {"user", r.user},
                   {"action", r.action},
                   {"params", EmbeddedJson(r.params)},
                   {"case", r.case_id},
                   {"purpose", r.purpose},
                   {"probe_sha256", r.probe_sha256},
                   {"results", EmbeddedJson(r.results)},
                   {"prev_hash", r.prev_hash},
                   {"hash", r.hash}});
}

namespace {
Json StagesJson(const StageSeconds& st) {
  return {{"read", st.read},   {"decode", st.decode}, {"detect", st.detect},
          {"landmarks", st.landmarks}, {"embed", st.embed}, {"store", st.store}};
}
}  // namespace

std::string IndexSummaryJson(const IndexSummary& s) {
  return JsonText({{"files", s.files},
                   {"added", s.added},
                   {"noface", s.noface},
                   {"duplicates", s.duplicates},
                   {"errors", s.errors},
                   {"faces", s.faces},
                   {"erased", s.erased},
                   {"optout_faces", s.optout_faces},
                   {"skipped", s.skipped},
                   {"interrupted", s.interrupted},
                   {"seconds", s.elapsed_s},
                   {"stage_seconds", StagesJson(s.stage_seconds)},
                   {"stage_cpu_seconds", StagesJson(s.stage_cpu_seconds)}}) +
         "\n";
}

std::string ForgetJson(const ForgetSummary& summary) {
  return JsonText({{"faces_erased", summary.erased.faces},
                   {"images_erased", summary.erased.images},
                   {"faces_left", summary.faces_left}}) +
         "\n";
}

std::string ForgetText(const ForgetSummary& summary) {
  return "erased " + std::to_string(summary.erased.faces) + " face(s) and " + std::to_string(summary.erased.images) +
         " image(s); " + std::to_string(summary.faces_left) + " face(s) remain\n";
}

namespace {

std::string FaceJson(const PhotoFaces& p, size_t i) {
  const Face& f = p.faces[i];
  Json face = {{"image", p.path},
               {"sha256", p.sha256},
               {"face", i},
               {"box", BoxJson(f.box)},
               {"size", std::min(f.box.w, f.box.h)},
               {"det_score", f.det_score},
               {"landmarks", LandmarksJson(f.landmarks)}};
  if (i < p.quality.size()) {
    const FaceQuality& q = p.quality[i];
    face["sharpness"] = q.sharpness;
    face["low_quality"] = q.low();
    face["quality_issues"] = q.issues;
  }
  if (i < p.chip_paths.size()) face["chip"] = p.chip_paths[i];
  return JsonText(face);
}

std::string FaceRow(const Face& f, size_t i, const std::string& image) {
  std::ostringstream row;
  const std::string box = std::to_string(f.box.w) + "x" + std::to_string(f.box.h) + "+" + std::to_string(f.box.x) +
                          "+" + std::to_string(f.box.y);
  char score[16];
  std::snprintf(score, sizeof score, "%.3f", f.det_score);
  row << std::left << std::setw(6) << i << std::setw(20) << box << std::setw(7) << std::min(f.box.w, f.box.h)
      << std::setw(8) << score << TerminalText(image) << '\n';
  return row.str();
}

}  // namespace

int WriteFaces(std::ostream& out, const std::vector<std::string>& images, bool jsonl,
               const std::function<Result<PhotoFaces>(size_t)>& analyze, const std::function<void(LogLine)>& log) {
  bool any_face = false, any_error = false;
  if (!jsonl)
    out << std::left << std::setw(6) << "FACE" << std::setw(20) << "BOX" << std::setw(7) << "SIZE" << std::setw(8)
        << "SCORE" << "IMAGE\n";
  for (size_t n = 0; n < images.size(); ++n) {
    auto photo = analyze(n);
    if (!photo) {
      log({spdlog::level::err, photo.error().message});
      any_error = true;
      continue;
    }
    if (photo->faces.empty()) log({spdlog::level::info, "no face found in " + images[n]});
    for (size_t i = 0; i < photo->faces.size(); ++i) {
      any_face = true;
      out << (jsonl ? FaceJson(*photo, i) + "\n" : FaceRow(photo->faces[i], i, images[n]));
    }
    out.flush();
  }
  return any_error ? 2 : any_face ? 0 : 1;
}

std::string OptOutAdded(const OptOutResult& result, bool json) {
  if (json)
    return JsonText({{"id", result.id},
                     {"faces_erased", result.erased.faces},
                     {"images_erased", result.erased.images}}) +
           "\n";
  return "opt-out " + std::to_string(result.id) + " added; erased " + std::to_string(result.erased.faces) +
         " matching face(s) and " + std::to_string(result.erased.images) + " image(s)\n";
}

std::string OptOutList(const std::vector<OptOutRecord>& list, bool json) {
  std::string out = json ? "" : "ID    THRESHOLD  ADDED                 REQUEST     REASON\n";
  for (const OptOutRecord& o : list) {  // never the embedding
    const double threshold = RoundDecimals(o.threshold, 4);
    const Json request = o.request_id.empty() ? Json() : Json(o.request_id);
    if (json) {
      out += JsonText({{"id", o.id}, {"threshold", threshold}, {"added_at", o.added_at}, {"reason", o.reason},
                       {"request_id", request}}) + "\n";
    } else {
      const std::string id = std::to_string(o.id);
      const std::string shown = fmt::format("{}", threshold);
      const std::string rid = o.request_id.empty() ? "-" : TerminalText(o.request_id);
      out += id + std::string(id.size() < 6 ? 6 - id.size() : 1, ' ') + shown +
             std::string(shown.size() < 11 ? 11 - shown.size() : 1, ' ') + TerminalText(o.added_at) + "  " + rid +
             std::string(rid.size() < 12 ? 12 - rid.size() : 1, ' ') + TerminalText(o.reason) + "\n";
    }
  }
  return out;
}

std::string OptOutRemoved(int64_t id, bool json) {
  if (json) return JsonText({{"id", id}, {"removed", true}}) + "\n";
  return "opt-out " + std::to_string(id) + " removed; faces erased earlier stay erased\n";
}

std::string OptOutsOfRequestRemoved(const std::string& request_id, const std::vector<int64_t>& ids, bool json) {
  if (json) return JsonText({{"ids", ids}, {"request_id", request_id}, {"removed", true}}) + "\n";
  std::string listed;
  for (int64_t id : ids) listed += (listed.empty() ? "" : ", ") + std::to_string(id);
  return "opt-out " + listed + " (request " + TerminalText(request_id) +
         ") removed; faces erased earlier stay erased\n";
}

std::vector<LogLine> QueryMessages(const std::vector<ProbeOutcome>& outcomes, OutputFormat format) {
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
      Json probes = Json::array(), together = Json::array();
      for (const ProbeOutcome& o : outcomes) probes.push_back(o.photo);
      for (const TogetherImage& image : images) together.push_back(TogetherJson(image, outcomes, cals));
      out << JsonText({{"probes", std::move(probes)}, {"together", std::move(together)}}) << "\n";
      return;
    }
    case OutputFormat::kJsonl:
      for (const TogetherImage& image : images) out << JsonText(TogetherJson(image, outcomes, cals)) << "\n";
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

Json LandmarksJson(std::span<const Point> landmarks) {
  Json points = Json::array();
  for (const Point& p : landmarks) points.push_back({p.x, p.y});
  return points;
}

std::string FaceRecordLine(const FaceRecord& r, const Json& after) {
  Json record = {{"face_id", r.face_id},
                 {"image_id", r.image_id},
                 {"image", r.image_path},
                 {"sha256", r.image_sha256},
                 {"box", BoxJson(r.face.box)},
                 {"landmarks", LandmarksJson(r.face.landmarks)},
                 {"det_score", r.face.det_score}};
  AddProvenance(record, r.provenance);
  AddPhoto(record, r.photo);
  record["exif_problem"] = TextOrNull(r.exif_problem);
  record["video"] = VideoJson(r.face.video);
  std::string line = JsonText(record);
  line.pop_back();  // the closing brace: the embedding follows
  line += ",\"embedding\":[";
  char number[32];
  for (size_t i = 0; i < r.face.embedding.size(); ++i) {
    const float v = r.face.embedding[i];
    if (i) line += ',';
    if (!std::isfinite(v)) {
      line += "null";
      continue;
    }
    line.append(number, std::to_chars(number, number + sizeof number, v).ptr);
  }
  line += ']';
  if (!after.empty()) line += ',' + JsonText(after).substr(1);  // its fields, and the closing brace
  else line += '}';
  return line;
}

}  // namespace facesearch::frontend
