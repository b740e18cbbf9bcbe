// Ingest manifests (facesearch/engine.h ReadManifest): JSONL or CSV rows naming a path or URL and
// its provenance. A small parser for exactly what a row may hold: one flat JSON object whose values
// are strings (or null), or one CSV record.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "facesearch/engine.h"
#include "fetch/fetcher.h"

namespace facesearch {
namespace {

// Parses one flat JSON object of string (or null) values; returns an error message on failure.
class FlatJson {
 public:
  explicit FlatJson(std::string_view s) : s_(s) {}

  std::optional<std::string> Parse(std::map<std::string, std::string>& out) {
    Ws();
    if (!Eat('{')) return "expected a JSON object";
    Ws();
    if (Eat('}')) return Tail();
    for (;;) {
      Ws();
      std::string key;
      if (auto e = String(key)) return e;
      Ws();
      if (!Eat(':')) return "expected ':' after \"" + key + "\"";
      Ws();
      if (Peek() == '"') {
        std::string value;
        if (auto e = String(value)) return e;
        out[key] = std::move(value);
      } else if (s_.substr(i_, 4) == "null") {
        i_ += 4;
      } else {
        return "the value of \"" + key + "\" is not a string";
      }
      Ws();
      if (Eat('}')) return Tail();
      if (!Eat(',')) return "expected ',' or '}' after the value of \"" + key + "\"";
    }
  }

 private:
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void Ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  std::optional<std::string> Tail() {
    Ws();
    if (i_ != s_.size()) return "unexpected text after the object";
    return std::nullopt;
  }
  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::optional<uint32_t> Hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return std::nullopt;
    }
    return v;
  }
  std::optional<std::string> String(std::string& out) {
    if (!Eat('"')) return "expected a string";
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return std::nullopt;
      if (static_cast<unsigned char>(c) < 0x20) return "a control character inside a string";
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      switch (char e = s_[i_++]) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto cp = Hex4();
          if (!cp) return "a malformed \\u escape";
          if (*cp >= 0xD800 && *cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            auto low = Hex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) return "a malformed surrogate pair";
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
          }
          AppendUtf8(out, *cp);
          break;
        }
        default: return std::string("an unknown escape \\") + e;
      }
    }
    return "an unterminated string";
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Turns one row's fields into an input, or says why it cannot.
std::optional<std::string> ToInput(const std::map<std::string, std::string>& row, IndexInput& input) {
  auto get = [&](const char* key) {
    auto it = row.find(key);
    return it == row.end() ? std::string() : it->second;
  };
  const std::string path = get("path"), url = get("url");
  if (!path.empty() && !url.empty()) return "a row names both a path and a url";
  if (path.empty() && url.empty()) return "a row names neither a path nor a url";
  input.location = path.empty() ? url : path;
  input.url = !url.empty();  // fetched as a URL, never read from disk
  input.provenance.page_url = RedactUrl(get("page_url"));
  input.provenance.source = get("source");
  input.provenance.captured_at = get("captured_at");
  input.provenance.licence = get("licence");
  if (input.provenance.licence.empty()) input.provenance.licence = get("license");
  input.provenance.notes = get("notes");
  return std::nullopt;
}

// Reads one CSV record (RFC 4180: quoted fields may hold commas, quotes and line breaks) starting
// at `pos`; advances `pos` and `line`. Returns an error message for a malformed record (the rest of
// its physical line is skipped).
std::optional<std::string> CsvRecord(std::string_view text, size_t& pos, int& line,
                                     std::vector<std::string>& fields) {
  fields.assign(1, "");
  bool quoted = false, was_quoted = false;
  while (pos < text.size()) {
    char c = text[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          fields.back() += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        fields.back() += c;
      }
      continue;
    }
    if (c == ',') {
      fields.emplace_back();
      was_quoted = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
      ++line;
      return std::nullopt;
    } else if (c == '"') {
      if (!fields.back().empty() || was_quoted) {
        while (pos < text.size() && text[pos] != '\n') ++pos;
        return "a quote inside an unquoted field";
      }
      quoted = was_quoted = true;
    } else {
      if (was_quoted) {
        while (pos < text.size() && text[pos] != '\n') ++pos;
        return "text after a closing quote";
      }
      fields.back() += c;
    }
  }
  if (quoted) return "an unterminated quoted field";
  return std::nullopt;
}

// A manifest over the kMaxList* bounds (not a manifest, or one to split).
std::unexpected<Error> TooLarge(const std::string& file, const std::string& what) {
  return Fail(ErrorCode::kInvalidArgument,
              "manifest " + file + " is " + what + ", the limit for one manifest: split it into " +
                  "smaller manifests and pass each with --manifest");
}

}  // namespace

Result<std::vector<IndexInput>> ReadManifest(const std::string& file, ManifestFormat format,
                                             std::vector<FileOutcome>& problems) {
  if (format == ManifestFormat::kAuto) {
    std::string ext = std::filesystem::path(file).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".jsonl" || ext == ".ndjson" || ext == ".json") format = ManifestFormat::kJsonl;
    else if (ext == ".csv") format = ManifestFormat::kCsv;
    else
      return Fail(ErrorCode::kInvalidArgument,
                  "cannot tell the format of manifest " + file +
                      " from its extension: name it .jsonl or .csv, or pass --manifest-format");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, "cannot open manifest " + file);
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxListBytes) return TooLarge(file, "larger than " + std::to_string(kMaxListBytes >> 20) + " MiB");
  }
  if (in.bad()) return Fail(ErrorCode::kIo, "cannot read manifest " + file);
  return ParseManifest(text, format, file, problems);
}

Result<std::vector<IndexInput>> ParseManifest(std::string_view text, ManifestFormat format,
                                              const std::string& file,
                                              std::vector<FileOutcome>& problems) {
  if (format == ManifestFormat::kAuto)
    return Fail(ErrorCode::kInvalidArgument, "manifest " + file + ": no format given");

  std::vector<IndexInput> inputs;
  auto problem = [&](int line, const std::string& why) {
    FileOutcome o;
    o.path = file + ":" + std::to_string(line);
    o.result = FileResult::kError;
    o.reason = "manifest";
    o.error = "malformed manifest row: " + why;
    problems.push_back(std::move(o));
  };

  if (format == ManifestFormat::kJsonl) {
    std::istringstream lines{std::string(text)};
    int line_no = 0;
    for (std::string line; std::getline(lines, line);) {
      if (++line_no > static_cast<int>(kMaxListEntries)) return TooLarge(file, "longer than " + std::to_string(kMaxListEntries) + " lines");
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      std::map<std::string, std::string> row;
      IndexInput input;
      if (auto e = FlatJson(line).Parse(row)) problem(line_no, "invalid JSON: " + *e);
      else if (auto e2 = ToInput(row, input)) problem(line_no, *e2);
      else inputs.push_back(std::move(input));
    }
    return inputs;
  }

  size_t pos = 0;
  int line = 1;
  std::vector<std::string> header;
  if (auto e = CsvRecord(text, pos, line, header))
    return Fail(ErrorCode::kInvalidArgument, "manifest " + file + ": malformed header row: " + *e);
  for (auto& h : header) {
    std::string_view t = h;
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
    if (t.starts_with("\xEF\xBB\xBF")) t.remove_prefix(3);  // a UTF-8 byte-order mark
    h = std::string(t);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
  }
  if (std::find(header.begin(), header.end(), "path") == header.end() &&
      std::find(header.begin(), header.end(), "url") == header.end())
    return Fail(ErrorCode::kInvalidArgument,
                "manifest " + file + ": the CSV header names no path or url column (first line: " +
                    "path,url,page_url,source,captured_at,licence,notes)");
  while (pos < text.size()) {
    if (line > static_cast<int>(kMaxListEntries)) return TooLarge(file, "longer than " + std::to_string(kMaxListEntries) + " lines");
    const int row_line = line;
    std::vector<std::string> fields;
    auto e = CsvRecord(text, pos, line, fields);
    if (e) {
      problem(row_line, "invalid CSV: " + *e);
      if (pos < text.size() && text[pos] == '\n') {
        ++pos;
        ++line;
      }
      continue;
    }
    if (fields.size() == 1 && fields[0].empty()) continue;  // blank line
    if (fields.size() != header.size()) {
      problem(row_line, std::to_string(fields.size()) + " fields where the header has " +
                            std::to_string(header.size()));
      continue;
    }
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size(); ++i) row[header[i]] = fields[i];
    IndexInput input;
    if (auto e2 = ToInput(row, input)) problem(row_line, *e2);
    else inputs.push_back(std::move(input));
  }
  return inputs;
}

}  // namespace facesearch
