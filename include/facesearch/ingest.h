// facesearch's library API: indexing files, folders, lists, manifests and URLs into a corpus.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "facesearch/config.h"

namespace facesearch {

// kErased: the content was erased by `forget` earlier (a tombstone), skipped unless allow_reindex.
// kSkipped: an input refused before its content was read (robots.txt, X-Robots-Tag).
enum class FileResult { kAdded, kNoFace, kDuplicate, kError, kErased, kSkipped };
// "added", "noface", "duplicate", "error", "erased", "skipped"
const char* FileResultName(FileResult r);

struct FileOutcome {
  std::string path;  // file path, URL, or "MANIFEST:LINE" for a malformed manifest row
  FileResult result = FileResult::kAdded;
  int faces = 0;
  std::string error;  // for kError and kSkipped: the full reason
  int optout_faces = 0;  // faces skipped because they match an opt-out (not stored, not counted)
  // For kError and kSkipped, a short code (InputIssue::reason in types.h): not_found, unreadable, empty,
  // unreadable_dir, symlink, not_image, truncated, pixel_cap, too_large, decoder_error,
  // analyzer_error, http_status, timeout, fetch_error, redirect, scheme, content_type, manifest,
  // robots, noimageindex.
  std::string reason;
  // For kAdded and kNoFace: a problem that did not stop indexing (malformed EXIF), "" when none.
  std::string warning;
};

// One input of an index run: a file, a directory, or an http(s) URL, and where it came from.
struct IndexInput {
  std::string location;
  Provenance provenance;
  // Named as a URL (a manifest's url column, a --urls line): it is fetched, never read from
  // disk, and anything but an http(s) URL is refused (skipped, reason "scheme").
  bool url = false;
};

// Bounds on one list of inputs (--from-file, stdin, --urls) and on one manifest, so that a wrong
// file (/dev/zero, a binary) ends in an error instead of being read forever. A list entry holds a
// path (PATH_MAX is 4096) or a URL (RFC 9110 asks servers for 8000 octets); entries and rows
// count blank lines too. Larger inputs are split into several lists or manifests.
inline constexpr size_t kMaxListEntryBytes = 8192;
inline constexpr size_t kMaxListEntries = 1'000'000;
inline constexpr size_t kMaxListBytes = size_t{256} << 20;  // also a manifest's size

enum class ManifestFormat { kAuto, kJsonl, kCsv };  // kAuto: by extension (.jsonl/.ndjson/.json, .csv)


// How URLs are fetched (libcurl). Politeness is on by default: robots.txt (fetched once per host
// per run) and X-Robots-Tag noimageindex/noindex/none are honoured, one request per second per
// host, at most two at a time per host.
struct FetchOptions {
  double timeout_s = 30;          // whole transfer, per attempt
  double connect_timeout_s = 10;
  int64_t max_bytes = 0;          // 0: the pipeline's max_file_bytes
  int max_redirects = 5;
  int retries = 2;                // extra attempts after a 5xx, 429, timeout or connection error
  double backoff_s = 1.0;         // before the first retry; doubles each time
  double host_rate = 1.0;         // requests per second per host (robots.txt included)
  int host_concurrency = 2;       // requests in flight per host
  std::string contact;            // the User-Agent's contact part; empty: the build's project URL, if any
  bool ignore_robots = false;     // also ignore X-Robots-Tag; recorded in the audit log
};


struct IndexProgress {
  int64_t done = 0, total = 0, faces = 0, errors = 0;
  double elapsed_s = 0;
};

struct IndexOptions {
  PipelineOptions pipeline;
  // Further inputs beside the paths: lists of paths or URLs (one per line, or NUL-separated with
  // null_separated; "-" reads `list_stream`), manifests (ReadManifest) and URL lists (one URL per
  // line, '#' comments), each within the kMaxList* bounds. URLs may also be given as paths.
  std::vector<std::string> list_files;
  // What a path or list named "-" reads (the CLI: standard input); unset, "-" is an error.
  std::istream* list_stream = nullptr;
  bool null_separated = false;
  std::vector<std::string> manifests;
  ManifestFormat manifest_format = ManifestFormat::kAuto;
  std::vector<std::string> url_lists;
  FetchOptions fetch;
  // When set and it becomes true (a signal handler), no new input is started; what is done is
  // committed, the index saved, and the summary comes back with interrupted = true.
  const std::atomic<bool>* stop = nullptr;
  int jobs = 0;  // worker threads, 1 to MaxIndexJobs(); 0 = one per hardware thread
  bool allow_reindex = false;  // index content that `forget` erased earlier (tombstoned)
  // Called on the calling thread, once per file (in completion order) and about once a second.
  std::function<void(const FileOutcome&)> on_file;
  std::function<void(const IndexProgress&)> on_progress;
};

// The most index workers allowed: 64, or the number of hardware threads when that is larger.
// Each worker holds its own copy of the models (about 34 MB, 100 MB with the CNN detector) and
// ingest is CPU-bound, so more workers than CPUs only cost memory; URL fetching is bounded by
// the per-host limits instead. 64 keeps that memory within a few GB.
int MaxIndexJobs();
// The message for a --jobs value outside 1..MaxIndexJobs(): the range, and why.
std::string JobsOutOfRange(const std::string& jobs);

// Seconds spent per ingest stage (IndexSummary has them as wall-clock time and as the CPU time of
// the threads doing each stage; OpenCV's and OpenBLAS's helper threads, if any, are not counted in
// the latter). read: reading and hashing the file (or fetching the URL), with
// the duplicate lookups; decode: image decoding; detect: the face detector (with its reduced copy
// and retries); landmarks: the 5-point shape predictor and chip extraction; embed: the ResNet;
// store: SQLite commits and index appends (the writer thread).
struct StageSeconds {
  double read = 0, decode = 0, detect = 0, landmarks = 0, embed = 0, store = 0;
  StageSeconds& operator+=(const StageSeconds& o) {
    read += o.read; decode += o.decode; detect += o.detect;
    landmarks += o.landmarks; embed += o.embed; store += o.store;
    return *this;
  }
};

struct IndexSummary {
  int64_t files = 0;       // candidate files found
  int64_t added = 0;       // new images with at least one face
  int64_t noface = 0;      // new images with no face detected
  int64_t duplicates = 0;  // content already in the corpus (same SHA-256), skipped
  int64_t errors = 0;      // unreadable or undecodable files, recorded with their reason
  int64_t faces = 0;       // faces added
  int64_t erased = 0;        // content erased earlier by `forget` (tombstoned), skipped
  int64_t optout_faces = 0;  // faces skipped because they match an opt-out
  int64_t skipped = 0;       // inputs refused before their content was read (robots, noimageindex)
  bool interrupted = false;  // IndexOptions::stop ended the run early
  double elapsed_s = 0;
  StageSeconds stage_seconds;      // where the time went, summed over the workers (and the writer)
  StageSeconds stage_cpu_seconds;  // the same as thread CPU time
};

// Indexes files and directories (recursively: files with an image or video extension), http(s) URLs, and
// the inputs of options' lists and manifests. A path "-" reads further paths from
// options.list_stream, one per line. One failing input never stops the run: errors are stored with their reason, one per
// location (image rows with status error), and skips too (input issues), see ListInputIssues.
// Content that failed is not "already indexed": the next run tries it again. Takes the corpus
// write lock (waits for another writer). Errors: setup failures only (models, database, lock, a
// list or manifest that cannot be opened or is over the kMaxList* bounds, jobs out of range).
Result<IndexSummary> IndexPaths(const CorpusConfig& config, const std::vector<std::string>& paths,
                                const IndexOptions& options);

}  // namespace facesearch
