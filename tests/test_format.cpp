// Output formatting: JSON strings stay valid JSON whatever bytes a file name holds; CSV quoting.
#include <catch2/catch.hpp>
#include <limits>
#include <sstream>

#include "cli/format.h"
#include "json.h"

using namespace facesearch;

TEST_CASE("JsonText escapes quotes, backslashes and control characters", "[format]") {
  CHECK(JsonText("a\"b\\c\nd\te\x01") == "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  CHECK(test::ParseJson(JsonText("say \"hi\"\n")).str() == "say \"hi\"\n");
}

TEST_CASE("JsonText keeps valid UTF-8 and replaces invalid bytes with U+FFFD so output stays valid JSON", "[format]") {
  CHECK(JsonText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\"");
  // A Latin-1 file name, a lone continuation byte, an overlong '/', a truncated sequence.
  for (std::string bad : {std::string("nonutf8_\xff\xfe.jpg"), std::string("\x80"), std::string("\xc0\xaf"),
                          std::string("end\xe2\x82")}) {
    const std::string json = JsonText({{"image", bad}});
    INFO(json);
    CHECK(test::ParseJson(json)["image"].str().find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD
  }
  CHECK(test::ParseJson(JsonText("nonutf8_\xff\xfe.jpg")).str() == "nonutf8_\xef\xbf\xbd\xef\xbf\xbd.jpg");
}

TEST_CASE("Rounded JSON numbers are the short decimal printf would show and non-finite ones are null", "[format]") {
  CHECK(JsonText(RoundDecimals(0.30000001192092896, 4)) == "0.3");
  CHECK(JsonText(RoundDecimals(0.123456, 4)) == "0.1235");
  CHECK(JsonText(RoundDecimals(52.5163271, 6)) == "52.516327");
  CHECK(JsonText(RoundSignificant(0.000123456, 2)) == "0.00012");
  CHECK(JsonText(RoundSignificant(1.26e-7, 2)) == "1.3e-07");
  CHECK(JsonText(ShortestDouble(0.6f)) == "0.6");
  CHECK(static_cast<float>(ShortestDouble(0.1f + 0.2f)) == 0.1f + 0.2f);  // round-trips to the same float
  CHECK(JsonText(RoundDecimals(std::numeric_limits<double>::quiet_NaN(), 4)) == "null");
  CHECK(JsonText(std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("CsvField quotes only fields that need it and doubles inner quotes", "[format]") {
  CHECK(cli::CsvField("plain.jpg") == "plain.jpg");
  CHECK(cli::CsvField("a,b.jpg") == "\"a,b.jpg\"");
  CHECK(cli::CsvField("say \"x\".jpg") == "\"say \"\"x\"\".jpg\"");
  CHECK(cli::CsvField("line\nbreak") == "\"line\nbreak\"");
}

namespace {

// One probe with one match whose file name and provenance are chosen by the test.
std::vector<ProbeOutcome> OneMatch(const std::string& image, const Provenance& provenance, float distance = 0.3f) {
  Match m;
  m.rank = 1;
  m.face_id = 7;
  m.distance = distance;
  m.image_path = image;
  m.image_sha256 = std::string(64, 'a');
  m.box = Box{-5, 10, 80, 80};  // a face cut by the left edge has a negative x
  m.provenance = provenance;
  ProbeFace probe;
  probe.matches.push_back(m);
  ProbeOutcome o;
  o.photo = "probe.jpg";
  o.result.probe_path = "probe.jpg";
  o.result.faces_detected = 1;
  o.result.corpus_faces = 100;
  o.result.probes.push_back(probe);
  return {o};
}

std::string Render(const std::vector<ProbeOutcome>& outcomes, cli::OutputFormat format, QueryOptions options = {}) {
  std::ostringstream out;
  cli::WriteQueryResults(out, outcomes, options, Calibration::For(*ParseEmbeddingMode("plain")), format);
  return out.str();
}

}  // namespace

TEST_CASE("CSV and TSV text cells that a spreadsheet would run as a formula get a leading quote", "[hostile][format]") {
  Provenance p;
  p.page_url = "-2+3+cmd|' /C calc'!A0";
  p.source = "@SUM(1+1)";
  p.licence = "+1";
  p.notes = "\tstarts with a tab";
  p.captured_at = "\rstarts with CR";
  const auto outcomes = OneMatch("=HYPERLINK(\"http://evil\",\"x\")", p);
  const std::string csv = Render(outcomes, cli::OutputFormat::kCsv);
  CHECK(csv.find(",\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",") != std::string::npos);
  CHECK(csv.find(",\"'-2+3+cmd|' /C calc'!A0\",") != std::string::npos);
  CHECK(csv.find(",\"'@SUM(1+1)\",") != std::string::npos);
  CHECK(csv.find(",\"'+1\",") != std::string::npos);
  CHECK(csv.find(",\"'\tstarts with a tab\"") != std::string::npos);
  CHECK(csv.find(",\"'\rstarts with CR\",") != std::string::npos);
  CHECK(csv.find(",-5,10,80,80,") != std::string::npos);  // numbers stay numbers
  const std::string tsv = Render(outcomes, cli::OutputFormat::kTsv);
  CHECK(tsv.find("\t'=HYPERLINK(\"http://evil\",\"x\")\t") != std::string::npos);
  CHECK(tsv.find("\t'@SUM(1+1)\t") != std::string::npos);
  CHECK(tsv.find("\t-5\t10\t80\t80\t") != std::string::npos);
  CHECK(cli::CsvField("plain.jpg") == "plain.jpg");
}

TEST_CASE("Table output shows control characters in file names and provenance as hex escapes", "[hostile][format]") {
  Provenance p;
  p.notes = "C1 CSI \xc2\x9b" "31m, raw \x9b" "2J, bell \x07, DEL \x7f, bidi \xe2\x80\xae" "gpj.exe";
  const std::string evil = "photo\x1b]0;pwned\x07\x1b[2J\nsecond line.jpg";
  std::string table = Render(OneMatch(evil, p), cli::OutputFormat::kTable);
  for (const char* raw : {"\x1b", "\x07", "\x7f", "\xc2\x9b", "\x9b", "\xe2\x80\xae", "\nsecond line"}) {
    INFO(raw);
    CHECK(table.find(raw) == std::string::npos);
  }
  CHECK(table.find("photo\\x1b]0;pwned\\x07\\x1b[2J\\x0asecond line.jpg") != std::string::npos);
  CHECK(table.find("C1 CSI \\xc2\\x9b31m, raw \\x9b2J, bell \\x07, DEL \\x7f, bidi \\u202egpj.exe") != std::string::npos);
  CHECK(cli::TerminalText("caf\xc3\xa9 \xe2\x82\xac ok") == "caf\xc3\xa9 \xe2\x82\xac ok");
}

TEST_CASE("Query JSON stays valid JSON when a number is not finite", "[hostile][format]") {
  QueryOptions options;
  options.threshold = std::numeric_limits<float>::quiet_NaN();
  const auto outcomes = OneMatch("a.jpg", {}, std::numeric_limits<float>::infinity());
  const std::string json = Render(outcomes, cli::OutputFormat::kJson, options);
  INFO(json);
  CHECK(json.find("nan") == std::string::npos);
  CHECK(json.find("inf") == std::string::npos);
  CHECK_NOTHROW(test::ParseJson(json));
  CHECK_NOTHROW(test::ParseJsonLines(Render(outcomes, cli::OutputFormat::kJsonl, options)));
}
