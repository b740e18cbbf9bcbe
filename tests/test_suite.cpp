// Checks of the test suite itself: what ctest needs from the test case names.
#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "support.h"

using namespace facesearch::test;

TEST_CASE("No test case name holds a semicolon or a backslash or starts with a dash, which would make its ctest entry match no test case",
          "[suite]") {
  // catch_discover_tests (tests/CMakeLists.txt) keeps each name as a CMake list element (';'
  // splits it), and ctest hands the name back to Catch as a test spec, where '\\' escapes and a
  // leading '-' reads as an option.
  RunResult list = RunProgram({"/proc/self/exe", "--list-test-names-only"});
  REQUIRE(list.out.find("No test case name holds") != std::string::npos);  // this test is listed
  std::istringstream names(list.out);
  for (std::string name; std::getline(names, name);) {
    INFO(name);
    CHECK(name.find(';') == std::string::npos);
    CHECK(name.find('\\') == std::string::npos);
    CHECK_FALSE(name.starts_with('-'));
  }
}
