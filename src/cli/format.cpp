#include "cli/format.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <iomanip>

#include "facesearch/eval.h"

namespace facesearch::cli {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not one.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0;                       // overlong
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;  // UTF-16 surrogate
  if (n == 4 && (c > 0xF4 || (c == 0xF0 && b(i + 1) < 0x90) || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

}  // namespace

// File names are bytes, JSON strings are Unicode: bytes that are not valid UTF-8 (possible in
// Linux file names) become U+FFFD so that every line stays valid JSON; the image's sha256 still
// identifies the file exactly.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

namespace {
std::string JsonFloat(float v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

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

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

// The calibrated false-match rate at a distance (data/calibration.tsv), in a fixed short form.
std::string Fmr(float distance) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", EstimatedFmr(distance));
  return buf;
}

std::string MatchJsonFields(const Match& m) {
  return "\"rank\":" + std::to_string(m.rank) + ",\"face_id\":" + std::to_string(m.face_id) +
         ",\"distance\":" + Distance(m.distance) + ",\"fmr\":" + Fmr(m.distance) +
         ",\"confidence\":" + JsonString(ConfidenceBand(EstimatedFmr(m.distance))) +
         ",\"image\":" + JsonString(m.image_path) + ",\"sha256\":" + JsonString(m.image_sha256) +
         ",\"box\":" + JsonBox(m.box);
}

// Expected number of different-person faces within the threshold in a corpus of this size: the
// 1:N caveat that a 1:1 false-match rate hides.
double ExpectedFalseMatches(const QueryResult& r, const QueryOptions& o) {
  return EstimatedFmr(o.threshold) * static_cast<double>(r.corpus_faces);
}

void WriteJson(std::ostream& out, const QueryResult& r, const QueryOptions& o) {
  out << "{\"probe\":" << JsonString(r.probe_path) << ",\"probe_sha256\":" << JsonString(r.probe_sha256)
      << ",\"faces_detected\":" << r.faces_detected << ",\"corpus_faces\":" << r.corpus_faces
      << ",\"threshold\":" << JsonNumber(o.threshold) << ",\"threshold_fmr\":" << Fmr(o.threshold)
      << ",\"expected_false_matches\":" << JsonNumber(ExpectedFalseMatches(r, o))
      << ",\"top_k\":" << o.top_k << ",\"results\":[";
  for (size_t p = 0; p < r.probes.size(); ++p) {
    const ProbeFace& probe = r.probes[p];
    out << (p ? "," : "") << "{\"probe_face\":" << probe.index << ",\"box\":" << JsonBox(probe.face.box)
        << ",\"matches\":[";
    for (size_t i = 0; i < probe.matches.size(); ++i)
      out << (i ? "," : "") << "{" << MatchJsonFields(probe.matches[i]) << "}";
    out << "]}";
  }
  out << "]}\n";
}

void WriteJsonl(std::ostream& out, const QueryResult& r) {
  for (const ProbeFace& probe : r.probes)
    for (const Match& m : probe.matches)
      out << "{\"probe\":" << JsonString(r.probe_path) << ",\"probe_face\":" << probe.index << ","
          << MatchJsonFields(m) << "}\n";
}

void WriteCsv(std::ostream& out, const QueryResult& r) {
  out << "probe,probe_face,rank,face_id,distance,fmr,confidence,image,x,y,w,h\n";
  for (const ProbeFace& probe : r.probes)
    for (const Match& m : probe.matches)
      out << CsvField(r.probe_path) << ',' << probe.index << ',' << m.rank << ',' << m.face_id << ','
          << Distance(m.distance) << ',' << Fmr(m.distance) << ','
          << ConfidenceBand(EstimatedFmr(m.distance)) << ',' << CsvField(m.image_path) << ',' << m.box.x << ','
          << m.box.y << ',' << m.box.w << ',' << m.box.h << '\n';
}

void WriteTable(std::ostream& out, const QueryResult& r, const QueryOptions& o) {
  for (const ProbeFace& probe : r.probes) {
    const Box& b = probe.face.box;
    out << "probe face " << probe.index << " at " << b.w << "x" << b.h << "+" << b.x << "+" << b.y
        << ": " << probe.matches.size() << " match(es) within distance " << Distance(o.threshold)
        << " among " << r.corpus_faces << " faces\n";
    if (probe.matches.empty()) continue;
    out << std::left << std::setw(6) << "RANK" << std::setw(10) << "DISTANCE" << std::setw(10) << "FMR"
        << std::setw(13) << "CONFIDENCE" << std::setw(20) << "BOX" << "IMAGE\n";
    for (const Match& m : probe.matches) {
      std::string box = std::to_string(m.box.w) + "x" + std::to_string(m.box.h) + "+" +
                        std::to_string(m.box.x) + "+" + std::to_string(m.box.y);
      out << std::left << std::setw(6) << m.rank << std::setw(10) << Distance(m.distance)
          << std::setw(10) << Fmr(m.distance) << std::setw(13) << ConfidenceBand(EstimatedFmr(m.distance))
          << std::setw(20) << box << m.image_path << "\n";
    }
  }
  if (!r.probes.empty()) {
    char note[256];
    std::snprintf(note, sizeof note,
                  "FMR: share of different-person pairs this close on LFW. At distance %.2f about %.1f "
                  "different-person faces are expected among %lld: treat matches as leads.\n",
                  static_cast<double>(o.threshold), ExpectedFalseMatches(r, o),
                  static_cast<long long>(r.corpus_faces));
    out << note;
  }
}

}  // namespace

void WriteQueryResult(std::ostream& out, const QueryResult& result, const QueryOptions& options,
                      OutputFormat format) {
  switch (format) {
    case OutputFormat::kTable: WriteTable(out, result, options); break;
    case OutputFormat::kJson: WriteJson(out, result, options); break;
    case OutputFormat::kJsonl: WriteJsonl(out, result); break;
    case OutputFormat::kCsv: WriteCsv(out, result); break;
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
  s += "],\"det_score\":" + JsonNumber(r.face.det_score) + ",\"embedding\":[";
  for (size_t i = 0; i < r.face.embedding.size(); ++i) {
    if (i) s += ',';
    s += JsonFloat(r.face.embedding[i]);
  }
  return s + "]}";
}

}  // namespace facesearch::cli
