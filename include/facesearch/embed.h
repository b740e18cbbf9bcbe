// Embed anywhere, write once: `facesearch embed` analyses images into an embed file without a
// corpus, and `facesearch import` adds such a file to a corpus as its one writer. The split lets
// many machines do the CPU-heavy part (detect, align, embed) while each corpus keeps one writer
// (docs/scale.md); on one machine it lets a batch be embedded now and imported later.
//
// The embed file (format 1, docs/output.md "Embed files") is JSON Lines, UTF-8:
//   line 1      {"facesearch_embed":1,"model_identity":"...","embedding_mode":"plain","detector":"hog"}
//   then        one record per input (an image, an image that failed, or an input issue)
//   last line   {"facesearch_embed_end":N}   N = the number of records: a truncated file is refused
// An embedding is 128 little-endian IEEE-754 float32 values, base64-encoded (512 bytes, 684
// characters): it round-trips bit for bit, so distances computed from an imported face are the
// ones `index` would have stored.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "facesearch/analyze.h"
#include "facesearch/corpus.h"
#include "facesearch/engine.h"

namespace facesearch {

inline constexpr int kEmbedFormatVersion = 1;
// A record line longer than this is refused (a hostile or wrong file must not exhaust memory):
// room for more than 4,000 faces in one image.
inline constexpr size_t kMaxEmbedLineBytes = size_t{4} << 20;
inline constexpr size_t kMaxEmbedFacesPerImage = 4096;

// The file's first line: what made the embeddings. A corpus refuses embeddings of another model
// identity or embedding mode.
struct EmbedHeader {
  int version = kEmbedFormatVersion;
  std::string model_identity;  // ModelIdentity() of the binary that embedded
  EmbeddingMode mode;
  std::string detector;  // informative: "hog", "cnn", "yunet"
};

// One record. kImage with status ok/noface carries content (sha256, size, faces); kImage with
// status error is a file that could not be read or decoded (no content hash, as `index` stores
// it); kIssue is an input refused before its content was read (robots.txt, a malformed manifest
// row, an unreadable folder: InputIssue); kErased is a tombstone (sha256, reason, erased_at; no
// path), written by `export --embed-file` so that content erased in one corpus stays out of the
// one its faces move to.
struct EmbeddedImage {
  enum class Status { kOk, kNoFace, kError, kIssue, kErased };
  Status status = Status::kOk;
  std::string path;  // absolute path or URL, as `index` would record it
  std::string sha256;
  int64_t size = 0;
  int width = 0, height = 0;
  Provenance provenance;
  std::vector<Face> faces;           // ok: at least one
  std::vector<FaceQuality> quality;  // one per face
  std::string outcome;               // kIssue: "error" or "skipped"
  std::string reason, error;         // kError, kIssue: short code and full message; kErased: reason
  std::string erased_at;             // kErased: ISO-8601 UTC

  // The record as a probe: its faces in detector order (query --embedding).
  PhotoFaces AsPhotoFaces() const;
};
const char* EmbeddedStatusName(EmbeddedImage::Status s);  // "ok", "noface", "error", "issue", "erased"

// Reads an embed file record by record, checking everything: a malformed line, a wrong type, a
// value out of range (a box or landmark beyond ±2^31, a non-finite embedding, a bad SHA-256), a
// line over kMaxEmbedLineBytes, a missing or wrong end line — any of them is an error
// (kInvalidArgument naming the line) and the file is refused whole.
class EmbedReader {
 public:
  // Reads and checks the header. `name` names the file in messages.
  static Result<std::unique_ptr<EmbedReader>> Open(std::istream& in, std::string name);
  ~EmbedReader();
  const EmbedHeader& header() const;
  // The next record; nullopt after the end line (which must match the records read and be the
  // last line).
  Result<std::optional<EmbeddedImage>> Next();

 private:
  struct Impl;
  explicit EmbedReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads a whole embed file within `max_records` records: from `in` when the caller passes a stream
// (the CLI: standard input for "-"; `path` then only names it), else from the file `path`. The
// engine never reads std::cin itself. Errors: as EmbedReader, kNotFound when the file cannot be
// opened, kInvalidArgument past max_records.
struct EmbedFile {
  EmbedHeader header;
  std::vector<EmbeddedImage> records;
};
Result<EmbedFile> ReadEmbedFile(const std::string& path, std::istream* in, size_t max_records);

// Searches `corpus` with each record of `embed` as QueryEmbedded does (a record of an input that
// could not be embedded becomes an outcome with its error), audited as `audit`: what a server
// answers for an embed file it was sent. `name` names the file in messages. Errors: those of
// Corpus::QueryEmbedding, and kInvalidArgument for another model identity or embedding mode
// than the corpus's.
Result<std::vector<ProbeOutcome>> QueryEmbedRecords(Corpus& corpus, const EmbedFile& embed, const std::string& name,
                                                    const QueryOptions& options, const AuditContext& audit);

// The header line and a record line, without the newline (the writer's side of EmbedReader).
std::string FormatEmbedHeader(const EmbedHeader& header);
std::string FormatEmbedRecord(const EmbeddedImage& record);
std::string FormatEmbedEnd(int64_t records);

// The refusal of an embed file whose model identity or embedding mode is not `mode` and this
// binary's: kInvalidArgument saying what to do, or Ok.
Status CheckEmbedHeader(const EmbedHeader& header, const EmbeddingMode& mode, const std::string& file);

// `facesearch embed`: analyses the inputs as IndexPaths would (the same walk, lists, manifests,
// URLs, workers and pipeline) and writes an embed file to `out`: header, one record per input in
// completion order, end line. Needs no corpus: options.pipeline.embedding (plain when unset) is
// the mode. Dedupes nothing (a corpus does that on import). Summary counts as IndexSummary's
// (duplicates, erased always 0). Errors: setup failures (models, lists, jobs), kIo writing `out`.
Result<IndexSummary> EmbedPaths(const CorpusConfig& config, const std::vector<std::string>& paths,
                                const IndexOptions& options, std::ostream& out);

// Content buckets, as facesearch-cluster routes images to shards: an image's bucket is the first
// 8 hex digits of its content SHA-256 read as a number, modulo the bucket count.
struct BucketSelection {
  int64_t count = 0;                                // buckets in all
  std::vector<std::pair<int64_t, int64_t>> ranges;  // the selected ones: inclusive [first, last]
  bool Contains(const std::string& sha256) const;
};
int64_t ContentBucket(const std::string& sha256, int64_t count);

struct EmbedExportCounts {
  int64_t images = 0, faces = 0, tombstones = 0;
};

// `facesearch export --embed-file`: the corpus's images with faces, and its tombstones, as an embed
// file that `import` reads (its model identity and embedding mode are the corpus's), for moving
// content to another corpus; with `buckets`, only content in those buckets. Embeddings are written
// bit for bit. A corpus keeps no sharpness, so each face's quality.sharpness is 0 (import
// recomputes quality and stores none). Not carried: images without faces, unreadable inputs,
// the other locations a content was read at, EXIF, and opt-outs (kept per corpus); a video face
// is refused (kInvalidArgument: the format has no frame times). Recorded in the audit log first.
// Errors: those of opening a corpus, kIo writing `out`.
Result<EmbedExportCounts> ExportEmbedFile(const CorpusConfig& config, const std::optional<BucketSelection>& buckets,
                                          std::ostream& out);

struct ImportOptions {
  bool allow_reindex = false;  // import content that `forget` erased earlier (tombstoned)
  std::function<void(const FileOutcome&)> on_file;  // once per record, in file order
};

// `facesearch import FILE` ("-" for stdin): adds an embed file to the corpus at config.corpus_dir
// (made when missing) as its one writer, exactly as `index` would have added the same inputs:
// content already in the corpus is a duplicate (its location recorded as read again), tombstoned
// content is skipped unless allow_reindex, faces matching an opt-out are dropped, error records
// replace the location's earlier error. The file's tombstones (erased records) are added first; one
// for content the corpus holds refuses the file (kInvalidArgument: import never erases). So a second import of the same file adds nothing. The
// whole file is read and checked before anything is written. Errors: kInvalidArgument for a
// malformed file or one of another model identity or embedding mode than the corpus, kNotFound,
// kBusy (lock), kDatabase, kIndex.
// `in`, when set, holds the file's contents (ReadEmbedFile).
Result<IndexSummary> ImportEmbeddings(const CorpusConfig& config, const std::string& file, std::istream* in,
                                      const ImportOptions& options);

}  // namespace facesearch
