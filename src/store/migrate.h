// Schema upgrades, private to the store module. Each step runs inside the caller's BEGIN IMMEDIATE
// transaction, so a failed upgrade leaves the database at its old version.
//
//   v1 → v2: the accountability and privacy tables (audit, tombstones, optouts) and the audit
//            chain head in meta (audit.head_seq = 0, audit.head_hash = "").
//   v2 → v3: provenance columns on images (page_url, source, captured_at, licence, notes), the
//            error_kind column (a short code beside the error text) and the input_issues table
//            (inputs refused or failed before any content was read: robots.txt, noimageindex,
//            malformed manifest rows...).
//   v3 → v4: the counts table, filled once from the tables and then kept by triggers (images by
//            status, faces, skipped inputs), so that `info` and the `auto` index kind read counts
//            in O(1) instead of scanning millions of rows (issue #16).
//   v4 → v5: the users table of `facesearch serve` (issue #18: API users, roles, token hashes).
//   v5 → v6: the subjects, subject_refs and subject_exclusions tables (issue #21: named people
//            with reference faces, and faces marked "not this person").
//   v6 → v7: the images' perceptual hash and EXIF columns (phash, exif_taken_at, camera_make,
//            camera_model, gps_lat, gps_lon, exif_problem; issue #20), NULL on older rows.
//   v7 → v8: videos: images.duration_s, and the faces' video_frame, video_at_s, video_first_s,
//            video_last_s (the track a stored face stands for; issue #20).
//   v8 → v9: the kept clusters, labels and "different people" links (issue #21).
//   v9 → v10: optouts.request_id, the --request-id an opt-out was added under (a cluster ledger
//            entry, the key a cluster removes it by; issue #19), backfilled from the audit log.
#pragma once

#include <sqlite3.h>

#include <cstdint>

#include "facesearch/error.h"

namespace facesearch::migrate {

// DDL of the tables added in v2; also run (after the v1 DDL) when creating a new corpus.
extern const char* const kV2Sql;

// Creates the v2 tables and meta rows in a database being created (no version bump here).
Status CreateV2(sqlite3* db);

// The v3 columns and table; also run when creating a new corpus (no version bump here).
Status CreateV3(sqlite3* db);

// The v4 counts table and its triggers, filled from the rows present; also run when creating a
// new corpus (no version bump here).
Status CreateV4(sqlite3* db);

// The v5 users table of `facesearch serve`; also run when creating a new corpus.
Status CreateUsersV5(sqlite3* db);
// The v6 subjects tables; also run when creating a new corpus.
Status CreateSubjectsV6(sqlite3* db);
// The v7 columns (near-duplicates, EXIF); also run when creating a new corpus.
Status CreateMediaV7(sqlite3* db);
// The v8 video columns; also run when creating a new corpus.
Status CreateVideosV8(sqlite3* db);
// The v9 kept-cluster tables; also run when creating a new corpus.
Status CreateClustersV9(sqlite3* db);
// The v10 optouts.request_id column, filled from the audit log; also run when creating a new corpus.
Status CreateOptoutRequestsV10(sqlite3* db);
// SELECT of (optout_id, request_id) from the audit records of `optout add` run with --request-id:
// what v10 fills the column from, and what a read-only open of an older schema reads it from.
extern const char* const kOptoutRequestsInAuditSql;

// Upgrades a database at `from` (>= 1) to kSchemaVersion, bumping user_version and the meta
// schema_version. No-op when already current. Logs what it did.
Status Upgrade(sqlite3* db, int64_t from);

}  // namespace facesearch::migrate
