// The corpus database: SQLite, the source of truth for images and faces.
//
// Settings (see ../shared/RELIABILITY.md): WAL, synchronous=FULL, foreign_keys=ON, secure_delete=ON,
// busy_timeout, and BEGIN IMMEDIATE for every write transaction. The file is created 0600.
//
// Thread-safety: a Store is used by one thread at a time (the caller serialises). Only one Store
// per database file per process: opening the file twice would drop POSIX locks on close.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "facesearch/error.h"
#include "facesearch/types.h"
#include "facesearch/privacy_types.h"
#include "facesearch/users.h"
#include "facesearch/subject_types.h"
#include "facesearch/cluster_types.h"

struct sqlite3;

namespace facesearch {

// v2 added the audit, tombstones and optouts tables; v3 the images' provenance and error kind
// columns and the input_issues table; v4 the trigger-kept counts table; v5 the users table of
// `facesearch serve`; v6 the subjects tables; v7 the perceptual hash and EXIF columns; v8 the
// video columns of images and faces; v9 the kept clusters, labels and "different people" links;
// v10 the request id that added each opt-out (store_migrate.cpp upgrades older versions on open).
inline constexpr int kSchemaVersion = 10;

enum class ImageStatus { kOk, kNoFace, kError };
const char* ImageStatusName(ImageStatus s);  // "ok", "noface", "error"

struct ImageRecord {
  std::optional<std::string> sha256;  // absent for an error row: it is about a location, not content
  std::string path;                   // absolute path (or URL) as given at ingest
  int64_t size = 0;                   // bytes
  int width = 0, height = 0;          // 0 when not decoded
  ImageStatus status = ImageStatus::kOk;
  std::string error;                  // why, when status == kError
  std::string error_kind;             // short code for `error` (InputIssue::reason), when kError
  Provenance provenance;              // from the ingest manifest (v3)
  std::optional<double> duration_s;   // a video's duration (v8); absent for a still image
  std::optional<uint64_t> phash;      // PerceptualHash of the decoded pixels (v5); absent when not decoded
  PhotoMetadata photo;                // the file's EXIF (v5)
  std::string exif_problem;           // why its EXIF was not (all) read (v5), "" when fine
};

// The near-duplicate hash and EXIF of known content read again (schema v7's backfill).
struct MediaBackfill {
  std::string sha256;
  uint64_t phash = 0;
  PhotoMetadata photo;
  std::string exif_problem;
};

// An image's perceptual hash, for grouping near-duplicates (`info`).
struct ImageHash {
  int64_t image_id = 0;
  std::string path;
  uint64_t phash = 0;
};

// What the index files on disk claim to cover; stored in the meta table after each index write.
struct IndexSnapshot {
  int64_t generation = 0;   // Store::Generation() the snapshot reflects
  int64_t max_face_id = 0;  // largest face id in the snapshot (0 when empty)
  int64_t ntotal = 0;       // vectors in the snapshot
  int64_t size = 0;         // file size in bytes
  std::string sha256;       // of the file's bytes
  std::string file;         // file name inside the index directory
  std::string kind = "exact";  // IndexKindName of the file's index (index format 2)
  // VectorIndex::footprint() when saved: resident plus mapped, and the mapped part; -1: not
  // recorded (memory_bytes before index format 2, mapped_bytes before issue #19's split).
  int64_t memory_bytes = -1;
  int64_t mapped_bytes = -1;
};

class Store {
 public:
  // Opens or creates the database. On creation records kSchemaVersion and `model_identity`.
  // On open refuses (kMismatch, with a message naming both identities) a corpus built with other
  // models, and a schema newer than this build. The parent directory must exist (callers create
  // it with EnsurePrivateDir). Errors: kDatabase, kIo, kMismatch, kCorrupt (not a database).
  // Every open finishes the scrub of an erasure that a crash interrupted (FinishScrub) before it
  // returns, logging that it did, or a warning when it could not (readers kept the WAL busy).
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& db_path,
                                             const std::string& model_identity);
  // What a read-only open does about an interrupted erasure's scrub: finish it through a
  // short-lived read-write connection (a warning when the file cannot be written), or leave it
  // for the caller to report (`verify`).
  enum class PendingScrub { kFinish, kLeave };
  // Opens an existing database without checking model identity (for `info` and `export`, which
  // must work without model files). Errors: kNotFound when the file does not exist.
  static Result<std::unique_ptr<Store>> OpenReadOnly(const std::filesystem::path& db_path,
                                                     PendingScrub pending = PendingScrub::kFinish);
  // Opens an existing database for writing without checking model identity (erasure, opt-out
  // lists, audit records of commands that need no models). Upgrades an older schema like Open.
  // Errors: kNotFound when the file does not exist, and those of Open.
  static Result<std::unique_ptr<Store>> OpenExisting(const std::filesystem::path& db_path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // True when indexed content with this hash lacks its perceptual hash and EXIF (a row from before
  // schema v7): ingest then decodes it once more to fill them in (AddImages' `backfill`).
  Result<bool> NeedsMedia(const std::string& sha256);
  // Every image with a perceptual hash, in id order.
  Result<std::vector<ImageHash>> ImageHashes();

  // Image id of indexed content (status ok or noface) with this hash, if any. An error row never
  // counts: content that failed is tried again.
  Result<std::optional<int64_t>> FindImageBySha(const std::string& sha256);

  // Inserts an image and its faces in one transaction and bumps the generation when faces were
  // added. Returns the new face ids, in the order of `faces`. An image whose sha256 is already
  // indexed fails with kInvalidArgument and changes nothing. Every row replaces the error rows
  // left for its path, and a hashed row those left for its content by older corpora.
  Result<std::vector<int64_t>> AddImage(const ImageRecord& image, const std::vector<Face>& faces);

  // Several AddImage calls in one transaction (one fsync per batch), with the batch's input issues
  // (RecordInputIssue). Returns face ids per image. Every image row clears the unreadable rows and
  // input issues left for its path by earlier runs; so does each of `read_again`: locations read
  // fine this time whose content was already in the corpus. `backfill` sets the hash and EXIF of
  // content indexed before schema v7 (rows that have them already are left alone).
  Result<std::vector<std::vector<int64_t>>> AddImages(
      const std::vector<std::pair<ImageRecord, std::vector<Face>>>& batch,
      const std::vector<InputIssue>& issues = {}, const std::vector<std::string>& read_again = {},
      const std::vector<MediaBackfill>& backfill = {});

  // Records an input refused or failed before any content was read (a robots.txt rule, a
  // malformed manifest row...), replacing an earlier issue for the same location. `at` is set by
  // the store. Errors: kDatabase; kInvalidArgument for an empty location or outcome.
  Status RecordInputIssue(const InputIssue& issue);
  // Every image with status error and every input issue, oldest first. An older read-only schema
  // has no input issues and no error kinds ("" then).
  Status ForEachInputIssue(const std::function<void(const InputIssue&)>& fn);

  // From the counts table that triggers keep (schema v4): O(1) at any size. An older schema opened
  // read-only is counted by scanning its tables.
  Result<CorpusCounts> Counts();
  // The number of live faces alone (the `auto` index kind, query's default threshold).
  Result<int64_t> FaceCount();

  // Monotonic counter bumped by every transaction that adds or removes faces.
  Result<int64_t> Generation();
  // The generation of the last transaction that removed faces (0 if never). An index snapshot
  // older than this cannot be caught up by appending and must be rebuilt.
  Result<int64_t> DeleteGeneration();

  // Calls fn(face_id, embedding) for every face with id > after_id, in id order. The callbacks of
  // ForEachEmbedding/ForEachFace run inside a read statement: they must not call this Store.
  Status ForEachEmbedding(int64_t after_id,
                          const std::function<void(int64_t, const Embedding&)>& fn);
  // How many faces have id > after_id (a range of the primary key: O(those faces)).
  Result<int64_t> CountFacesAfter(int64_t after_id);
  // Every face id, ascending (the primary key only: no embedding is read).
  Result<std::vector<int64_t>> FaceIds();
  // The face ids of these images (what Erase of them removes), ascending per image.
  Result<std::vector<int64_t>> FaceIdsOfImages(std::span<const int64_t> image_ids);
  // Calls fn for every face joined with its image, in face id order.
  Status ForEachFace(const std::function<void(const FaceRecord&)>& fn);
  // Rows for the given face ids; ids with no live row are omitted (a stale index can then never
  // surface an erased face). Order follows `ids`.
  Result<std::vector<FaceRecord>> GetFaces(std::span<const int64_t> ids);

  Result<std::optional<IndexSnapshot>> GetIndexSnapshot();
  Status SetIndexSnapshot(const IndexSnapshot& snap);
  Status ClearIndexSnapshot();

  Result<std::string> ModelIdentity();
  Result<std::optional<std::string>> GetMeta(const std::string& key);
  // Sets a free-form meta key. Keys the store manages (schema_version, model_identity,
  // generation, delete_generation, created_at, index.*, audit.*) are refused with kInvalidArgument.
  Status SetMeta(const std::string& key, const std::string& value);

  // Deletes every face of `image_id` in one transaction (the image row stays). When faces were
  // removed, bumps the generation and sets the delete generation to it, so that index snapshots
  // taken earlier are rebuilt rather than caught up. No-op for an image without faces.
  Status DeleteFacesOfImage(int64_t image_id);

  // SQLite's own consistency checks: PRAGMA integrity_check and foreign_key_check, and that the
  // stored counts equal the rows (a scan of every row). Returns one line per problem found (empty
  // when the database is sound). Read-only. Errors: kDatabase, kCorrupt.
  Result<std::vector<std::string>> IntegrityCheck();

  // Checkpoints the WAL into the main file and truncates it. Errors: kBusy when readers kept it
  // from completing, kDatabase.
  Status Checkpoint();

  // ---- accountability and privacy (store_privacy.cpp) -------------------------------------------
  // Appends `record` to the audit chain in one transaction: fills seq, prev_hash and hash (and
  // `at` when empty) and moves the chain head in meta. Returns the stored record.
  Result<AuditRecord> AppendAudit(AuditRecord record);
  // Records matching `filter` in seq order. An older read-only schema without the table: none.
  Status ForEachAudit(const AuditFilter& filter, const std::function<void(const AuditRecord&)>& fn);
  // Reads every record and checks the chain (audit_chain.h).
  Result<AuditCheck> VerifyAudit();
  // Sets a meta key and appends its audit record in one transaction (settings changes are audited).
  Status SetMetaAudited(const std::string& key, const std::string& value, AuditRecord record);

  // True when an image with this SHA-256 was erased (and not since re-admitted).
  Result<bool> IsTombstoned(const std::string& sha256);
  // Every tombstone, in SHA-256 order (export --embed-file carries them with their buckets).
  Result<std::vector<Tombstone>> Tombstones();
  // Adds tombstones carried from another corpus (import), in one transaction; one already here
  // keeps its own reason and time.
  Status AddTombstones(const std::vector<Tombstone>& tombstones);
  // Image ids whose path is `path` (several when unreadable rows exist), and ids added before
  // `added_before` (ISO-8601 UTC).
  Result<std::vector<int64_t>> FindImagesByPath(const std::string& path);
  Result<std::vector<int64_t>> FindImagesAddedBefore(const std::string& added_before);
  // Erases, in one transaction with the audit record that make_audit builds from the counts:
  // the image rows of `image_ids` with all their faces, and the face rows of `face_ids`; an image
  // left without faces is erased too. Every erased image with a SHA-256 gets a tombstone carrying
  // `reason`. Bumps the delete generation when faces went, so the index is rebuilt
  // (corpus_index.h). Ids with no row are skipped. secure_delete zeroes the deleted bytes in the
  // database pages; callers then Checkpoint() so the WAL holds none either.
  //
  // Every erasure (and RemoveOptOut) also records "scrub pending" in its transaction, so a crash
  // between the commit and the checkpoint cannot leave the erased bytes behind unnoticed: the next
  // open finishes the scrub, and `verify` reports it until then.
  // With `subject_id`, that subject and its references go in the same transaction.
  // `scrubbed_index` describes an index file already scrubbed of these faces in place and stamped
  // with the generation this erasure commits: it is recorded as the index snapshot in the same
  // transaction when the erasure does commit that generation, so that no crash leaves the
  // scrubbed file unrecorded (which would cost a rebuild of the whole index).
  Result<EraseCounts> Erase(const std::vector<int64_t>& image_ids,
                            const std::vector<int64_t>& face_ids, const std::string& reason,
                            const std::function<AuditRecord(const EraseCounts&)>& make_audit,
                            std::optional<int64_t> subject_id = std::nullopt,
                            const std::optional<IndexSnapshot>& scrubbed_index = std::nullopt);

  Result<int64_t> AddOptOut(const OptOutRecord& optout, AuditRecord record);
  Result<std::vector<OptOutRecord>> OptOuts();  // empty on an older read-only schema
  // kNotFound when no opt-out has this id.
  Status RemoveOptOut(int64_t id, AuditRecord record);
  // Removes every opt-out added under `request_id` (a cluster ledger entry's id; one row, unless
  // the entry was applied twice) in one transaction with `record`, whose results become their ids.
  // Returns those ids. kNotFound when none was added under it.
  Result<std::vector<int64_t>> RemoveOptOutsOfRequest(const std::string& request_id, AuditRecord record);

  // ---- subjects (store_subjects.cpp, schema v6) ---------------------------------------------------
  // Every subject with its references, by name; with `name`, that one only (none: empty).
  Result<std::vector<Subject>> Subjects(const std::optional<std::string>& name = std::nullopt);
  // Creates the subject `name` (or, with append, finds it) and adds `refs` in one transaction with
  // `record`, whose results become {"subject_id":..,"references":[ids]}; each reference takes its
  // added_at, added_by, case_id and audit_seq from the stored record. Returns the subject as
  // stored. Errors: kInvalidArgument (name taken, without append), kNotFound (unknown, with
  // append), kDatabase.
  Result<Subject> AddSubjectReferences(const std::string& name, bool append,
                                       const std::vector<SubjectReference>& refs, AuditRecord record);
  // Marks corpus faces "not this person" for the subject, with `record` (results
  // {"subject_id":..,"excluded":[ids]}). Errors: kNotFound (no subject, or a face id that names no
  // face), kInvalidArgument (a face that is one of its references).
  Status ExcludeFromSubject(const std::string& name, const std::vector<int64_t>& face_ids, AuditRecord record);
  // Errors: kNotFound (no subject `from`), kInvalidArgument (`to` taken).
  Status RenameSubject(const std::string& from, const std::string& to, AuditRecord record);
  // Deletes the subject and its references with `record`, marking the scrub pending (their
  // embeddings are erased as an erasure's are). Errors: kNotFound.
  Status RemoveSubject(const std::string& name, AuditRecord record);

  // ---- kept clusters (store_clusters.cpp, schema v9) ---------------------------------------------
  // Every saved cluster that has faces, with its label and members, by id. None on an older
  // read-only schema.
  Result<std::vector<SavedCluster>> SavedClusters();
  // Faces labelled with a subject, by face id.
  Result<std::vector<std::pair<int64_t, ClusterLabel>>> FaceLabels();
  // Every "different people" link.
  Result<std::vector<ApartLink>> ApartLinks();
  // Applies `change` in one transaction with `record`, whose results become
  // {<change.results>,"clusters":[the id of each group],"dropped":[clusters left empty, deleted]};
  // every row written takes its time, user, case and audit seq from the stored record. Returns
  // the id of each group (a new cluster's id is never reused). Errors: kNotFound (a group's id
  // names no cluster), kDatabase (a face that is no longer in the corpus: its foreign key).
  Result<std::vector<int64_t>> ChangeClusters(const ClusterChange& change, AuditRecord record);

  // True while an erasure has committed but its scrub has not finished.
  Result<bool> ScrubPending();
  // Finishes a pending scrub: checkpoints the WAL into the main file and truncates it (the erased
  // rows, zeroed by secure_delete, then exist in neither file), and only then clears the mark.
  // No-op when none is pending. Errors: kBusy when readers kept the checkpoint from completing
  // (the mark stays for the next command), kDatabase.
  Status FinishScrub();

  // ---- API users of `facesearch serve` (store_privacy.cpp) ---------------------------------------
  // Adds a user with its audit record in one transaction. kInvalidArgument when the name is taken.
  Status AddUser(const UserRecord& user, AuditRecord record);
  // Every user, revoked ones too, by id; token_sha256 filled. None on a schema older than v5.
  Result<std::vector<UserRecord>> Users();
  // Marks the active user `name` revoked, with its audit record. kNotFound when there is none.
  Status RevokeUser(const std::string& name, AuditRecord record);

 private:
  Result<CorpusCounts> ScannedCounts();
  explicit Store(sqlite3* db, int64_t version = kSchemaVersion) : db_(db), version_(version) {}
  sqlite3* db_;
  int64_t version_;  // schema version; below kSchemaVersion only for read-only opens
};

}  // namespace facesearch
