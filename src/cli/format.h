// Output formatting for the command line: JSON/CSV quoting and the query result formats.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "facesearch/engine.h"

namespace facesearch::cli {

enum class OutputFormat { kTable, kJson, kJsonl, kCsv };

std::string JsonString(std::string_view s);  // quoted and escaped
std::string JsonNumber(double v);            // shortest round-trip form; non-finite → null
std::string JsonBox(const Box& b);           // {"x":..,"y":..,"w":..,"h":..}
std::string CsvField(std::string_view s);    // quoted when it holds a comma, quote or newline

void WriteQueryResult(std::ostream& out, const QueryResult& result, const QueryOptions& options,
                      OutputFormat format);

// One export line: face id, image, box, landmarks, detector score and the 128 floats.
std::string FaceRecordJson(const FaceRecord& record);

}  // namespace facesearch::cli
