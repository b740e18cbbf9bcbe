// The meta table's keys and accessors, private to the store module (defined in store.cpp).
// Each runs as part of the caller's transaction, or as a single statement outside one.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

#include "facesearch/error.h"

namespace facesearch {
struct IndexSnapshot;
}

namespace facesearch::meta {

inline constexpr const char* kSchemaVersionKey = "schema_version";
inline constexpr const char* kModelIdentity = "model_identity";
inline constexpr const char* kGeneration = "generation";
inline constexpr const char* kDeleteGeneration = "delete_generation";
inline constexpr const char* kCreatedAt = "created_at";
// Set by every erasure in its own transaction (value: the erasure's audit seq) and cleared only
// once the WAL has been checkpointed into the main file and truncated (Store::FinishScrub).
inline constexpr const char* kScrubPending = "erasure.scrub_pending";

// nullopt when the key is absent.
Result<std::optional<std::string>> Read(sqlite3* db, const std::string& key);
// kCorrupt when the key is absent.
Result<std::string> ReadRequired(sqlite3* db, const std::string& key);
// kCorrupt when the key is absent or not a decimal integer.
Result<int64_t> ReadInt(sqlite3* db, const std::string& key);
// Inserts or replaces.
Status Write(sqlite3* db, const std::string& key, const std::string& value);
// Bumps the generation; a removal of faces also moves the delete generation to the new value.
Status BumpGeneration(sqlite3* db, bool removed_faces);
// Writes the index.* keys of an index snapshot record.
Status WriteIndexSnapshot(sqlite3* db, const IndexSnapshot& snap);

}  // namespace facesearch::meta
