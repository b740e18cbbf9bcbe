// Ingest manifests (facesearch/engine.h ReadManifest): JSONL or CSV rows naming a path or URL and
// its provenance. A JSONL row is read by nlohmann-json; a CSV record by the RFC 4180 reader here.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/manifest.h"
#include "facesearch/engine.h"
#include "fetch/fetcher.h"

namespace facesearch {
namespace {

// Reads one JSONL row: a JSON object whose values are strings (null: absent). Returns why it is
// not one.
std::optional<std::string> ParseJsonRow(const std::string& line, std::map<std::string, std::string>& out) {
  nlohmann::json row;
  try {
    row = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    std::string_view what = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    if (const size_t end = what.find("] "); what.starts_with("[json.exception") && end != what.npos)
      what.remove_prefix(end + 2);
    return std::string(what);
  }
  if (!row.is_object()) return "expected a JSON object";
  for (const auto& [key, value] : row.items()) {
    if (value.is_string()) out[key] = value.get<std::string>();
    else if (!value.is_null()) return "the value of \"" + key + "\" is not a string";
  }
  return std::nullopt;
}

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
      if (auto e = ParseJsonRow(line, row)) problem(line_no, "invalid JSON: " + *e);
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
