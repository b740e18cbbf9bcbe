// Output formatting: JSON strings stay valid JSON whatever bytes a file name holds; CSV quoting.
#include <catch2/catch.hpp>

#include "cli/format.h"
#include "json.h"

using namespace facesearch;

TEST_CASE("JsonString escapes quotes, backslashes and control characters", "[format]") {
  CHECK(JsonString("a\"b\\c\nd\te\x01") == "\"a\\\"b\\\\c\\nd\\te\\u0001\"");
  CHECK(test::ParseJson(JsonString("say \"hi\"\n")).str() == "say \"hi\"\n");
}

TEST_CASE("JsonString keeps valid UTF-8 and replaces invalid bytes so output stays valid JSON", "[format]") {
  CHECK(JsonString("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82\"");
  // A Latin-1 file name, a lone continuation byte, an overlong '/', a truncated sequence.
  for (std::string bad : {std::string("nonutf8_\xff\xfe.jpg"), std::string("\x80"), std::string("\xc0\xaf"),
                          std::string("end\xe2\x82")}) {
    std::string json = JsonString(bad);
    CHECK(json.find("\\ufffd") != std::string::npos);
    CHECK_NOTHROW(test::ParseJson(json));
  }
}

TEST_CASE("CsvField quotes only fields that need it and doubles inner quotes", "[format]") {
  CHECK(cli::CsvField("plain.jpg") == "plain.jpg");
  CHECK(cli::CsvField("a,b.jpg") == "\"a,b.jpg\"");
  CHECK(cli::CsvField("say \"x\".jpg") == "\"say \"\"x\"\".jpg\"");
  CHECK(cli::CsvField("line\nbreak") == "\"line\nbreak\"");
}
