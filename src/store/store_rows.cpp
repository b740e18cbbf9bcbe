// Store: image and face rows. Every write is one BEGIN IMMEDIATE transaction.
#include <cmath>

#include "common/time.h"
#include "store/face_codec.h"
#include "store/meta.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace facesearch {
using sqlite::QueryInt;
using sqlite::Stmt;
using sqlite::Transaction;

const char* ImageStatusName(ImageStatus s) {
  switch (s) {
    case ImageStatus::kOk: return "ok";
    case ImageStatus::kNoFace: return "noface";
    case ImageStatus::kError: return "error";
  }
  return "error";
}

namespace {

// Columns 11-15 are the image's provenance (schema v3), 16-22 its hash and EXIF (v7; see
// BindMedia), 23-24 its decoded width and height, 25-28 the face's place in a video (v8); NULL
// on an older read-only corpus.
std::string SelectFaces(int64_t version) {
  return std::string(
             "SELECT f.id, f.image_id, i.path, i.sha256, f.x, f.y, f.w, f.h, f.landmarks, "
             "f.det_score, f.embedding, ") +
         (version >= 3 ? "i.page_url, i.source, i.captured_at, i.licence, i.notes, "
                       : "NULL, NULL, NULL, NULL, NULL, ") +
         (version >= 7 ? "i.phash, i.exif_taken_at, i.camera_make, i.camera_model, i.gps_lat, i.gps_lon, "
                         "i.exif_problem, "
                       : "NULL, NULL, NULL, NULL, NULL, NULL, NULL, ") +
         "i.width, i.height, " +
         (version >= 8 ? "f.video_frame, f.video_at_s, f.video_first_s, f.video_last_s, "
                       : "NULL, NULL, NULL, NULL, ") +
         "i.size FROM faces f JOIN images i ON i.id = f.image_id ";
}

// Binds phash, exif_taken_at, camera_make, camera_model, gps_lat, gps_lon, exif_problem from
// parameter `first` on; what is absent or empty becomes NULL.
void BindMedia(Stmt& stmt, int first, std::optional<uint64_t> phash, const PhotoMetadata& m,
               const std::string& problem) {
  if (phash) stmt.Bind(first, static_cast<int64_t>(*phash));
  else stmt.BindNull(first);
  int i = first + 1;
  for (const std::string* field : {&m.taken_at, &m.camera_make, &m.camera_model}) {
    if (field->empty()) stmt.BindNull(i++);
    else stmt.Bind(i++, *field);
  }
  for (const std::optional<double>& v : {m.latitude, m.longitude}) {
    if (v) stmt.Bind(i++, *v);
    else stmt.BindNull(i++);
  }
  if (problem.empty()) stmt.BindNull(i);
  else stmt.Bind(i, problem);
}

void ReadMedia(const Stmt& row, int first, FaceRecord& r) {
  if (!row.IsNull(first)) r.phash = static_cast<uint64_t>(row.Int(first));
  r.photo.taken_at = row.Text(first + 1);
  r.photo.camera_make = row.Text(first + 2);
  r.photo.camera_model = row.Text(first + 3);
  if (!row.IsNull(first + 4) && !row.IsNull(first + 5)) {
    r.photo.latitude = row.Double(first + 4);
    r.photo.longitude = row.Double(first + 5);
  }
  r.exif_problem = row.Text(first + 6);
}

std::optional<VideoSpan> ReadVideoSpan(const Stmt& row, int first) {
  if (row.IsNull(first)) return std::nullopt;
  return VideoSpan{row.Int(first), row.Double(first + 1), row.Double(first + 2), row.Double(first + 3)};
}

Provenance ReadProvenance(const Stmt& row, int first) {
  return Provenance{row.Text(first), row.Text(first + 1), row.Text(first + 2), row.Text(first + 3),
                    row.Text(first + 4)};
}

// Binds the five provenance fields from parameter `first` on; empty fields become NULL.
void BindProvenance(Stmt& stmt, int first, const Provenance& p) {
  int i = first;
  for (const std::string* field : {&p.page_url, &p.source, &p.captured_at, &p.licence, &p.notes}) {
    if (field->empty()) stmt.BindNull(i++);
    else stmt.Bind(i++, *field);
  }
}

Result<FaceRecord> ReadFaceRow(const Stmt& row) {
  FaceRecord r;
  r.face_id = row.Int(0);
  r.image_id = row.Int(1);
  r.image_path = row.Text(2);
  r.image_sha256 = row.Text(3);
  r.face.box = Box{row.Int(4), row.Int(5), row.Int(6), row.Int(7)};
  auto landmarks = codec::DecodeLandmarks(row.Text(8));
  auto embedding = codec::DecodeEmbedding(row.Blob(10));
  if (!landmarks || !embedding)
    return Fail(ErrorCode::kCorrupt, "face " + std::to_string(r.face_id) + " has a malformed row");
  r.face.landmarks = *landmarks;
  r.face.det_score = row.Double(9);
  r.face.embedding = *embedding;
  r.provenance = ReadProvenance(row, 11);
  ReadMedia(row, 16, r);
  r.image_width = static_cast<int>(row.Int(23));
  r.image_height = static_cast<int>(row.Int(24));
  r.face.video = ReadVideoSpan(row, 25);
  r.image_size = row.Int(29);
  return r;
}

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Status Validate(const ImageRecord& image, const std::vector<Face>& faces) {
  auto invalid = [&](const std::string& why) {
    return Fail(ErrorCode::kInvalidArgument, "cannot add " + image.path + ": " + why);
  };
  if (image.path.empty()) return invalid("the path is empty");
  if (image.sha256 && !IsSha256Hex(*image.sha256))
    return invalid("'" + *image.sha256 + "' is not a lowercase hex SHA-256");
  if (image.size < 0 || image.width < 0 || image.height < 0)
    return invalid("negative size or dimensions");
  if (!faces.empty() && (image.status != ImageStatus::kOk || !image.sha256))
    return invalid("only a hashed image with status ok may have faces");
  if (image.duration_s && !std::isfinite(*image.duration_s)) return invalid("the duration is not finite");
  for (const Face& f : faces) {
    if (!std::isfinite(f.det_score)) return invalid("a detection score is not finite");
    if (f.video && (!image.duration_s || !std::isfinite(f.video->at_s) || !std::isfinite(f.video->first_s) ||
                    !std::isfinite(f.video->last_s)))
      return invalid("a video face needs a video (a duration) and finite times");
    for (float v : f.embedding)
      if (!std::isfinite(v)) return invalid("an embedding value is not finite");
  }
  return Ok();
}

// The prepared statements of one write transaction that adds images and their faces.
class Inserter {
 public:
  static Result<Inserter> Prepare(sqlite3* db) {
    FS_ASSIGN(Stmt find, Stmt::Prepare(db, "SELECT path FROM images WHERE sha256 = ? AND status != 'error'"));
    FS_ASSIGN(Stmt drop, Stmt::Prepare(db, "DELETE FROM images WHERE status = 'error' AND path = ?"));
    FS_ASSIGN(Stmt drop_failed, Stmt::Prepare(db, "DELETE FROM images WHERE status = 'error' AND sha256 = ?"));
    FS_ASSIGN(Stmt clear, Stmt::Prepare(db, "DELETE FROM input_issues WHERE location = ?"));
    FS_ASSIGN(Stmt image, Stmt::Prepare(db,
        "INSERT INTO images(sha256, path, size, width, height, status, error, added_at, "
        "error_kind, page_url, source, captured_at, licence, notes, phash, exif_taken_at, "
        "camera_make, camera_model, gps_lat, gps_lon, exif_problem, duration_s) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    FS_ASSIGN(Stmt face, Stmt::Prepare(db,
        "INSERT INTO faces(image_id, x, y, w, h, landmarks, det_score, embedding, added_at, "
        "video_frame, video_at_s, video_first_s, video_last_s) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    return Inserter(db, std::move(find), std::move(drop), std::move(drop_failed), std::move(clear),
                    std::move(image), std::move(face));
  }

  // Inserts one image and its faces; returns the face ids in the order of `faces`.
  Result<std::vector<int64_t>> Insert(const ImageRecord& image, const std::vector<Face>& faces) {
    FS_TRY(Validate(image, faces));
    if (image.sha256) {
      // An error row that kept this hash (older corpora did) is out of date now.
      drop_failed_.Reset();
      drop_failed_.Bind(1, *image.sha256);
      FS_TRY(drop_failed_.Run());
      find_.Reset();
      find_.Bind(1, *image.sha256);
      FS_ASSIGN(bool duplicate, find_.Step());
      if (duplicate) {
        std::string earlier = find_.Text(0);
        find_.Reset();
        return Fail(ErrorCode::kInvalidArgument, "cannot add " + image.path + ": the same image "
                    "(SHA-256 " + *image.sha256 + ") is already in the corpus as " + earlier);
      }
      image_.Bind(1, *image.sha256);
    } else {
      image_.BindNull(1);
    }
    // This path's content is (or again is not) readable: earlier unreadable rows and input
    // issues for it are out of date.
    FS_TRY(ClearStale(image.path));
    image_.Bind(2, image.path).Bind(3, image.size).Bind(4, int64_t{image.width});
    image_.Bind(5, int64_t{image.height}).Bind(6, ImageStatusName(image.status));
    if (image.error.empty()) image_.BindNull(7); else image_.Bind(7, image.error);
    image_.Bind(8, now_);
    if (image.error_kind.empty()) image_.BindNull(9); else image_.Bind(9, image.error_kind);
    BindProvenance(image_, 10, image.provenance);
    BindMedia(image_, 15, image.phash, image.photo, image.exif_problem);
    if (image.duration_s) image_.Bind(22, *image.duration_s);
    else image_.BindNull(22);
    FS_TRY(image_.Run());
    image_.Reset();
    const int64_t image_id = sqlite3_last_insert_rowid(db_);

    std::vector<int64_t> ids;
    for (const Face& f : faces) {
      face_.Reset();
      face_.Bind(1, image_id).Bind(2, f.box.x).Bind(3, f.box.y).Bind(4, f.box.w).Bind(5, f.box.h);
      face_.Bind(6, codec::EncodeLandmarks(f.landmarks)).Bind(7, f.det_score);
      face_.BindBlob(8, codec::EncodeEmbedding(f.embedding)).Bind(9, now_);
      if (f.video) {
        face_.Bind(10, f.video->frame).Bind(11, f.video->at_s).Bind(12, f.video->first_s).Bind(13, f.video->last_s);
      } else {
        for (int i = 10; i <= 13; ++i) face_.BindNull(i);
      }
      FS_TRY(face_.Run());
      ids.push_back(sqlite3_last_insert_rowid(db_));
    }
    return ids;
  }

  // Deletes the error rows and input issues recorded earlier for `location`.
  Status ClearStale(const std::string& location) {
    drop_.Reset();
    drop_.Bind(1, location);
    FS_TRY(drop_.Run());
    clear_.Reset();
    clear_.Bind(1, location);
    return clear_.Run();
  }

 private:
  Inserter(sqlite3* db, Stmt find, Stmt drop, Stmt drop_failed, Stmt clear, Stmt image, Stmt face)
      : db_(db), find_(std::move(find)), drop_(std::move(drop)), drop_failed_(std::move(drop_failed)),
        clear_(std::move(clear)), image_(std::move(image)), face_(std::move(face)), now_(IsoUtcNow()) {}
  sqlite3* db_;
  Stmt find_, drop_, drop_failed_, clear_, image_, face_;
  std::string now_;
};

Status InsertIssue(sqlite3* db, const InputIssue& issue) {
  if (issue.location.empty() || (issue.outcome != "error" && issue.outcome != "skipped"))
    return Fail(ErrorCode::kInvalidArgument, "an input issue needs a location and an outcome "
                                             "of error or skipped");
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db,
      "INSERT INTO input_issues(location, outcome, reason, detail, at, page_url, source, "
      "captured_at, licence, notes) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT(location) DO UPDATE SET outcome = excluded.outcome, reason = excluded.reason, "
      "detail = excluded.detail, at = excluded.at, page_url = excluded.page_url, "
      "source = excluded.source, captured_at = excluded.captured_at, "
      "licence = excluded.licence, notes = excluded.notes"));
  stmt.Bind(1, issue.location).Bind(2, issue.outcome).Bind(3, issue.reason).Bind(4, issue.detail);
  stmt.Bind(5, IsoUtcNow());
  BindProvenance(stmt, 6, issue.provenance);
  return stmt.Run();
}

}  // namespace

Status Store::RecordInputIssue(const InputIssue& issue) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_TRY(InsertIssue(db_, issue));
  return txn.Commit();
}

Status Store::ForEachInputIssue(const std::function<void(const InputIssue&)>& fn) {
  const std::string sql =
      version_ >= 3
          ? "SELECT path, 'error', COALESCE(error_kind, ''), COALESCE(error, ''), added_at, "
            "page_url, source, captured_at, licence, notes, 0, id FROM images WHERE status = 'error' "
            "UNION ALL SELECT location, outcome, reason, detail, at, page_url, source, "
            "captured_at, licence, notes, 1, id FROM input_issues ORDER BY 5, 11, 12"
          : "SELECT path, 'error', '', COALESCE(error, ''), added_at, NULL, NULL, NULL, NULL, "
            "NULL, 0, id FROM images WHERE status = 'error' ORDER BY 5, 12";
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, sql.c_str()));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) break;
    fn(InputIssue{stmt.Text(0), stmt.Text(1), stmt.Text(2), stmt.Text(3), stmt.Text(4),
                  ReadProvenance(stmt, 5)});
  }
  stmt.Reset();
  return txn.Commit();
}

Result<bool> Store::NeedsMedia(const std::string& sha256) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_,
      "SELECT 1 FROM images WHERE sha256 = ? AND status != 'error' AND phash IS NULL"));
  stmt.Bind(1, sha256);
  return stmt.Step();
}

Result<std::vector<ImageHash>> Store::ImageHashes() {
  std::vector<ImageHash> out;
  if (version_ < 7) return out;  // an older schema opened read-only
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id, path, phash FROM images WHERE phash IS NOT NULL ORDER BY id"));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return out;
    out.push_back({stmt.Int(0), stmt.Text(1), static_cast<uint64_t>(stmt.Int(2))});
  }
}

Result<std::optional<int64_t>> Store::FindImageBySha(const std::string& sha256) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id FROM images WHERE sha256 = ? AND status != 'error'"));
  stmt.Bind(1, sha256);
  FS_ASSIGN(bool row, stmt.Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(stmt.Int(0));
}

Result<std::vector<int64_t>> Store::AddImage(const ImageRecord& image,
                                             const std::vector<Face>& faces) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Inserter inserter, Inserter::Prepare(db_));
  FS_ASSIGN(std::vector<int64_t> ids, inserter.Insert(image, faces));
  if (!ids.empty()) FS_TRY(meta::BumpGeneration(db_, /*removed_faces=*/false));
  FS_TRY(txn.Commit());
  return ids;
}

Result<std::vector<std::vector<int64_t>>> Store::AddImages(
    const std::vector<std::pair<ImageRecord, std::vector<Face>>>& batch,
    const std::vector<InputIssue>& issues, const std::vector<std::string>& read_again,
    const std::vector<MediaBackfill>& backfill) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  for (const InputIssue& issue : issues) FS_TRY(InsertIssue(db_, issue));
  if (!backfill.empty()) {
    FS_ASSIGN(Stmt fill, Stmt::Prepare(db_,
        "UPDATE images SET phash = ?, exif_taken_at = ?, camera_make = ?, camera_model = ?, "
        "gps_lat = ?, gps_lon = ?, exif_problem = ? WHERE sha256 = ? AND phash IS NULL"));
    for (const MediaBackfill& b : backfill) {
      fill.Reset();
      BindMedia(fill, 1, b.phash, b.photo, b.exif_problem);
      fill.Bind(8, b.sha256);
      FS_TRY(fill.Run());
    }
  }
  FS_ASSIGN(Inserter inserter, Inserter::Prepare(db_));
  for (const std::string& location : read_again) FS_TRY(inserter.ClearStale(location));
  std::vector<std::vector<int64_t>> ids;
  bool added_faces = false;
  for (const auto& [image, faces] : batch) {
    FS_ASSIGN(std::vector<int64_t> image_ids, inserter.Insert(image, faces));
    added_faces = added_faces || !image_ids.empty();
    ids.push_back(std::move(image_ids));
  }
  if (added_faces) FS_TRY(meta::BumpGeneration(db_, /*removed_faces=*/false));
  FS_TRY(txn.Commit());
  return ids;
}

Status Store::DeleteFacesOfImage(int64_t image_id) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/true));
  FS_ASSIGN(Stmt del, Stmt::Prepare(db_, "DELETE FROM faces WHERE image_id = ?"));
  del.Bind(1, image_id);
  FS_TRY(del.Run());
  if (sqlite3_changes64(db_) > 0) FS_TRY(meta::BumpGeneration(db_, /*removed_faces=*/true));
  return txn.Commit();
}

// Counts by scanning the tables (every image row): the truth the v4 counts table must equal.
Result<CorpusCounts> Store::ScannedCounts() {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(Stmt images, Stmt::Prepare(db_,
      "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), COALESCE(SUM(status = 'noface'), 0), "
      "COALESCE(SUM(status = 'error'), 0) FROM images"));
  FS_ASSIGN(bool row, images.Step());
  if (!row) return Fail(ErrorCode::kInternal, "no row from an aggregate query");
  CorpusCounts c{images.Int(0), images.Int(1), images.Int(2), images.Int(3), 0};
  images.Reset();
  FS_ASSIGN(c.faces, QueryInt(db_, "SELECT COUNT(*) FROM faces"));
  if (version_ >= 3) {
    FS_ASSIGN(c.inputs_skipped,
              QueryInt(db_, "SELECT COUNT(*) FROM input_issues WHERE outcome = 'skipped'"));
  }
  FS_TRY(txn.Commit());
  return c;
}

Result<CorpusCounts> Store::Counts() {
  if (version_ < 4) return ScannedCounts();  // an older schema opened read-only
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT key, n FROM counts"));
  CorpusCounts c;
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) break;
    const std::string key = stmt.Text(0);
    const int64_t n = stmt.Int(1);
    if (key == "images") c.images = n;
    else if (key == "images.ok") c.images_ok = n;
    else if (key == "images.noface") c.images_noface = n;
    else if (key == "images.error") c.images_error = n;
    else if (key == "faces") c.faces = n;
    else if (key == "inputs.skipped") c.inputs_skipped = n;
  }
  return c;
}

Result<int64_t> Store::FaceCount() {
  if (version_ < 4) return QueryInt(db_, "SELECT COUNT(*) FROM faces");
  return QueryInt(db_, "SELECT n FROM counts WHERE key = 'faces'");
}

Status Store::ForEachEmbedding(int64_t after_id,
                               const std::function<void(int64_t, const Embedding&)>& fn) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_,
      "SELECT id, embedding FROM faces WHERE id > ? ORDER BY id"));
  stmt.Bind(1, after_id);
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return Ok();
    auto embedding = codec::DecodeEmbedding(stmt.Blob(1));
    if (!embedding)
      return Fail(ErrorCode::kCorrupt, "face " + std::to_string(stmt.Int(0)) + " has a malformed embedding");
    fn(stmt.Int(0), *embedding);
  }
}

Result<int64_t> Store::CountFacesAfter(int64_t after_id) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT COUNT(*) FROM faces WHERE id > ?"));
  stmt.Bind(1, after_id);
  FS_ASSIGN(bool row, stmt.Step());
  return row ? stmt.Int(0) : 0;
}

Result<std::vector<int64_t>> Store::FaceIds() {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id FROM faces ORDER BY id"));
  std::vector<int64_t> ids;
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return ids;
    ids.push_back(stmt.Int(0));
  }
}

Result<std::vector<int64_t>> Store::FaceIdsOfImages(std::span<const int64_t> image_ids) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, "SELECT id FROM faces WHERE image_id = ? ORDER BY id"));
  std::vector<int64_t> ids;
  for (int64_t image : image_ids) {
    stmt.Reset();
    stmt.Bind(1, image);
    for (;;) {
      FS_ASSIGN(bool row, stmt.Step());
      if (!row) break;
      ids.push_back(stmt.Int(0));
    }
  }
  return ids;
}

Status Store::ForEachFace(const std::function<void(const FaceRecord&)>& fn) {
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, (SelectFaces(version_) + "ORDER BY f.id").c_str()));
  for (;;) {
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) return Ok();
    FS_ASSIGN(FaceRecord record, ReadFaceRow(stmt));
    fn(record);
  }
}

Result<std::vector<FaceRecord>> Store::GetFaces(std::span<const int64_t> ids) {
  FS_ASSIGN(Transaction txn, Transaction::Begin(db_, /*immediate=*/false));
  FS_ASSIGN(Stmt stmt, Stmt::Prepare(db_, (SelectFaces(version_) + "WHERE f.id = ?").c_str()));
  std::vector<FaceRecord> out;
  for (int64_t id : ids) {
    stmt.Reset();
    stmt.Bind(1, id);
    FS_ASSIGN(bool row, stmt.Step());
    if (!row) continue;  // erased (or never existed): never surface it
    FS_ASSIGN(FaceRecord record, ReadFaceRow(stmt));
    out.push_back(std::move(record));
  }
  stmt.Reset();
  FS_TRY(txn.Commit());
  return out;
}

}  // namespace facesearch
