// facesearch's library API: what the command line (or any other front end) calls.
//
// A corpus is one directory: corpus.sqlite (the source of truth) and index/ (derived vectors).
// Functions here never print; they report through return values and the optional callbacks, and
// log through spdlog's default logger, whose sinks the caller chooses.
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

#include "facesearch/error.h"
#include "facesearch/types.h"

namespace facesearch {

// Who is acting and why: recorded in the audit log with every search, export and erasure
// (facesearch/privacy.h). Empty fields are recorded as absent.
struct AuditContext {
  std::string case_id;  // --case
  std::string purpose;  // --purpose
  // The API user a server acts for (facesearch/users.h): recorded as the audit record's user,
  // "api:NAME", instead of the OS user. Empty on the command line.
  std::string actor;
};

class FaceAnalyzer;     // the seam between the engine and the models (src/face/analyzer.h)
struct PipelineOptions;

// Makes the face analyzer for a pipeline (its embedding mode resolved).
using AnalyzerFactory = std::function<Result<std::unique_ptr<FaceAnalyzer>>(const PipelineOptions&)>;

struct CorpusConfig {
  std::filesystem::path corpus_dir;
  std::optional<std::filesystem::path> models_dir;  // unset: $FACESEARCH_MODELS, then the cache
  // Unset: the dlib models of models_dir. Set: every pipeline (index, query, compare, faces,
  // forget) analyzes with what it makes, and no model file is read: tests inject a deterministic
  // fake (tests/fake_analyzer.h) to exercise the pipelines without the models.
  AnalyzerFactory analyzer_factory;
  AuditContext audit;
  // Refuse (kInvalidArgument) rather than warn when the corpus directory or its files are
  // accessible to group or others (CheckCorpusPermissions in facesearch/privacy.h).
  bool strict_permissions = false;
  // How long a command that changes the corpus waits for another writer to finish: negative
  // waits as long as it takes, 0 fails at once, otherwise seconds (then kBusy).
  double lock_wait_s = -1;
};

// $FACESEARCH_CORPUS, else ${XDG_DATA_HOME:-~/.local/share}/facesearch/corpus.
std::filesystem::path DefaultCorpusDir();

const char* DetectorName(DetectorKind d);  // "hog", "cnn", "yunet"

// What to try when the detector finds no face in an image (docs/benchmarks.md, detector-miss
// study). Only images with no face pay for it; every other image is analysed exactly as with kNone.
enum class RetryStrategy {
  kNone,
  kUpsample,   // the detector again on the image doubled once more (upsample + 1); not YuNet
  kThreshold,  // HOG again with dlib's adjust_threshold lowered to retry_threshold; YuNet again
               // keeping scores down to kYunetRetryScore; nothing for CNN
  kCnn,        // after HOG only: dlib's CNN (MMOD) detector, same upsampling
};
inline constexpr RetryStrategy kDefaultRetry = RetryStrategy::kThreshold;
const char* RetryStrategyName(RetryStrategy r);  // "none", "upsample", "threshold", "cnn"

// "plain", "flip", "jitter:N", each optionally followed by "+lm68" (chips aligned with the
// 68-point landmark model instead of the 5-point one) or "+lm5+lm68" (the mean over both
// alignments); "sface" for the SFace model. Parse errors: kInvalidArgument.
const char* EmbeddingModelName(EmbeddingModel model);  // "dlib", "sface"
std::string EmbeddingModeName(const EmbeddingMode& mode);
Result<EmbeddingMode> ParseEmbeddingMode(const std::string& text);

inline constexpr int kDefaultDetectMaxSide = 1600;  // as the reference face_recognition CLI shrinks

// How videos (.mp4 .m4v .mov .mkv .webm .avi; MP4/QuickTime, Matroska/WebM and AVI containers
// read by FFmpeg) are sampled and bounded, at ingest and as query probes. Each sample is analysed
// like a photo; faces are tracked across samples and each track is stored as its best face with
// its frame number and the first and last times it was seen (docs/usage.md, "Videos").
struct VideoOptions {
  double sample_fps = 2.0;                  // frames analysed per second of video
  double max_seconds = 4 * 3600.0;          // refuse longer videos (declared or decoded)
  double budget_s = 1800;                   // wall-clock seconds one video may take, then refused
  int64_t max_bytes = int64_t{16} << 30;    // refuse larger video files without reading them
};

struct PipelineOptions {
  DetectorKind detector = DetectorKind::kHog;
  int upsample = 1;                           // detector upsampling (dlib's default for HOG); not YuNet
  RetryStrategy retry = kDefaultRetry;        // only for images where the detector finds no face
  double retry_threshold = -0.5;              // HOG adjust_threshold for RetryStrategy::kThreshold
  // Unset: the corpus's mode (meta key "embedding_mode"; plain for a corpus without one, and when
  // there is no corpus). A corpus holds embeddings of one mode only: asking for another is refused.
  std::optional<EmbeddingMode> embedding;
  // Unset: the corpus's model (dlib for a new corpus). kSface asks for the mode "sface"; another
  // model than the corpus's is refused (a corpus has one model: switching means re-indexing).
  std::optional<EmbeddingModel> model;
  int min_face = 0;  // ignore faces whose box is smaller than this many pixels (width or height)
  // Images whose longer side exceeds this are detected on a copy scaled down to it (area
  // averaging) and the boxes mapped back; landmarks, chips and embeddings use the full image.
  // 0: always detect at full size. The smallest face found is then about 40 px * side / this.
  int detect_max_side = kDefaultDetectMaxSide;
  int64_t max_file_bytes = int64_t{256} << 20;
  int64_t max_pixels = 80'000'000;  // per image, and per video frame
  VideoOptions video;
};

// The mode query, forget --like and optout embed probes with on the corpus at config.corpus_dir:
// the corpus's recorded mode (plain when it has none), or options.embedding where there is no
// corpus yet. The calibration of a distance depends on it (facesearch/eval.h). Errors:
// kInvalidArgument when options.embedding asks for another mode than the corpus holds.
Result<EmbeddingMode> ResolvedEmbeddingMode(const CorpusConfig& config, const PipelineOptions& options);

// How far a detected face can be trusted as a probe: the calibration (data/calibration.tsv) was
// measured on LFW faces, so a face outside what LFW holds gives less reliable distances
// (docs/benchmarks.md, quality signals).
struct FaceQuality {
  int64_t size = 0;       // the box's smaller side, in pixels
  double det_score = 0;   // detector confidence (Face::det_score: each detector has its scale)
  double sharpness = 0;   // variance of the Laplacian of the aligned 150x150 grey chip
  // "small", "blurry", "weak_detection"; empty when nothing is in doubt.
  std::vector<std::string> issues;
  bool low() const { return !issues.empty(); }
};
// "small": fewer pixels than this across (the embedder's 150 px chip is then upscaled 3x or more).
inline constexpr int64_t kSmallFacePixels = 50;
// "blurry": sharpness below this; fewer than 1% of LFW's faces (sharpness median 28) score lower.
inline constexpr double kBlurrySharpness = 8.0;
// "weak_detection": a face only a lowered-threshold retry (--retry threshold) finds: HOG's
// margin below 0, YuNet's score below kYunetScore (its retry keeps scores down to 0.5). `detector`
// is the one that found the face.
FaceQuality AssessFace(const Face& face, double sharpness, DetectorKind detector);

// ---- index -------------------------------------------------------------------------------------

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

// Reads a manifest: JSONL (one object per line) or CSV (a header row, RFC 4180 quoting). Each row
// names "path" or "url" and optionally page_url, source, captured_at, licence (or license), notes;
// other keys are ignored. A malformed row (bad JSON or CSV, no path/url, a non-string value)
// becomes an error outcome in `problems` (path "FILE:LINE", reason "manifest") and the others go
// on. A url row's input has `url` set, and user:password@ is dropped from a page_url. Errors:
// kNotFound/kIo when the file cannot be read, kInvalidArgument for an unknown extension with
// kAuto, a CSV without a path or url column, or a manifest over kMaxListBytes or
// kMaxListEntries rows.
Result<std::vector<IndexInput>> ReadManifest(const std::string& file, ManifestFormat format,
                                             std::vector<FileOutcome>& problems);
// The parser behind ReadManifest, on a manifest's bytes (`file` names it in messages; `format` is
// kJsonl or kCsv). Never reads anything else; any byte string gives rows, problems or an error.
Result<std::vector<IndexInput>> ParseManifest(std::string_view text, ManifestFormat format,
                                              const std::string& file,
                                              std::vector<FileOutcome>& problems);

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

// "facesearch/<version> (+<contact>)"; with an empty contact the build's FACESEARCH_PROJECT_URL
// stands in, and with neither it is just "facesearch/<version>".
std::string FetchUserAgent(const std::string& contact);

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

// ---- query -------------------------------------------------------------------------------------

// One photo to analyze: a file, image bytes the caller has read (from a socket...), or the photo
// "-", read from a stream the caller passes (the CLI: standard input) when its turn comes. The
// engine never reads std::cin itself.
struct ProbeImage {
  std::string name;                  // reported as QueryResult::probe_path / PhotoFaces::path
  std::optional<std::string> bytes;  // unset: read the file `name`, or `stream`
  std::istream* stream = nullptr;    // when set: read to its end; its messages say "stdin"

  static ProbeImage File(std::string path) { return {std::move(path), std::nullopt}; }
  static ProbeImage Bytes(std::string name, std::string data) { return {std::move(name), std::move(data)}; }
  static ProbeImage Stdin(std::istream& in) { return {"-", std::nullopt, &in}; }
};

struct QueryOptions {
  PipelineOptions pipeline;
  int top_k = 10;
  float threshold = 0.6f;  // dlib's same-person Euclidean distance on LFW
  bool all_faces = false;  // default: only the probe's largest face
  std::optional<int> face;  // instead: the probe's face with this index (0-based, detector order)
  // Matches in copies of one picture (near-duplicate images: resized, recompressed, lightly
  // cropped) are folded into the nearest of them, which counts them in Match::copies. False
  // (`--no-collapse`): every match is returned, the copies naming theirs in Match::copy_of.
  // Grouping happens after top_k: a probe face may get fewer than top_k pictures.
  bool collapse_copies = true;
};

struct Match {
  int rank = 0;  // 1-based, by distance
  int64_t face_id = 0;
  float distance = 0;
  std::string image_path;
  std::string image_sha256;
  Box box;
  Provenance provenance;  // of the matched image
  PhotoMetadata photo;    // the matched image's EXIF: capture time, camera, GPS
  int copies = 0;         // other matches in copies of this image's picture (see collapse_copies)
  std::optional<int64_t> copy_of;  // not collapsed: the face id of the nearest match in a copy
  std::optional<VideoSpan> video;  // a face in a video: its frame and the track's time range
};

struct ProbeFace {
  int index = 0;  // position among the faces detected in the probe (0-based, detector order)
  Face face;
  FaceQuality quality;
  std::vector<Match> matches;  // at most top_k, all within the threshold, nearest first
};

struct QueryResult {
  std::string probe_path;  // "-" for stdin; "subject:NAME" for a subject
  std::string subject;     // the subject searched with (Corpus::QuerySubject), else empty
  int references = 0;      // the subject's references used (its template's size)
  float threshold = 0;     // the threshold the matches are within
  std::string probe_sha256;
  int faces_detected = 0;
  int64_t corpus_faces = 0;
  std::vector<ProbeFace> probes;  // empty when the probe has no face
  bool any_match() const;
};

// The answer for one probe photo of a query: its result, or why it could not be searched.
struct ProbeOutcome {
  std::string photo;
  QueryResult result;          // meaningful when !error
  std::optional<Error> error;  // unreadable or undecodable photo, or a --face it does not have
};

// Searches the corpus with each probe (a file, bytes, or ProbeImage::Stdin), through one
// corpus handle (facesearch/corpus.h): the models and the index are loaded once. A photo that cannot be searched gets its error in its outcome and
// the others go on; a probe with no face is a normal result. Each searched probe's audit record
// (facesearch/privacy.h) is committed before this returns: no record, no result. Matches within
// an opt-out are never returned. Errors: setup failures (corpus, models, --top-k, audit).
Result<std::vector<ProbeOutcome>> QueryPhotos(const CorpusConfig& config,
                                              const std::vector<ProbeImage>& probes,
                                              const QueryOptions& options);

// The same for the records of an embed file (`facesearch embed`, facesearch/embed.h; read from
// `in` when the caller passes a stream, as ReadEmbedFile) as probes: each record's faces are searched as its photo's would be (Corpus::QueryEmbedding:
// the same matches and distances); a record of an input that could not be embedded becomes an
// outcome with its error. Errors: setup failures, and kInvalidArgument for a malformed file or
// one of other models or another embedding mode than the corpus's.
Result<std::vector<ProbeOutcome>> QueryEmbedded(const CorpusConfig& config, const std::string& embed_file,
                                                std::istream* in, const QueryOptions& options);
// Searches with each named subject (Corpus::QuerySubject) through one corpus handle, each with
// its own options (the threshold depends on its number of references). Errors: those of
// QuerySubject; a subject that does not exist fails the whole call before any search.
Result<std::vector<ProbeOutcome>> QuerySubjects(const CorpusConfig& config,
                                                const std::vector<std::pair<std::string, QueryOptions>>& subjects);

// Co-appearance (`query --together`): an image in which every probe of a query (a photo's chosen
// faces, or a subject) has a match, each by a different face.
struct TogetherImage {
  std::string image_path;
  std::string image_sha256;
  std::vector<Match> matches;  // one per outcome, in the outcomes' order
  float worst_distance = 0;    // the largest of their distances
};
// The images where all `outcomes` match (those with an error or no face make the answer empty),
// by content (SHA-256), each probe assigned a distinct face, nearest first within each probe;
// ordered by worst_distance. Only the matches the outcomes hold count: raise --top-k for more.
std::vector<TogetherImage> FindTogether(const std::vector<ProbeOutcome>& outcomes);

// ---- info / export -----------------------------------------------------------------------------

struct CorpusInfo {
  std::filesystem::path corpus_dir;
  std::filesystem::path database;
  CorpusCounts counts;
  std::string model_identity;
  std::string embedding_mode;  // "plain", "flip", "jitter:N", "sface" (facesearch index --embedding)
  std::string model;           // the embedding model: "dlib" or "sface" (facesearch index --model)
  int schema_version = 0;
  int64_t generation = 0;
  std::string index_state;  // "fresh", "lagging", "missing", "corrupt"
  int64_t index_vectors = 0;
  int64_t index_bytes = 0;         // the index file's size
  std::string index_kind;          // of the index file: "exact", "int8", "ivf", "ivfpq", "hnsw"
  std::string index_setting;       // the corpus's setting (`reindex`), e.g. "kind=ivfpq nlist=0 ..."
  int64_t index_memory_bytes = 0;  // vectors, ids and codes / lists / graph when last saved
  // The last `reindex`: its parameters as built, recall@10 against exact search, and when.
  std::string index_params;
  std::optional<double> index_recall_at_10;
  int index_recall_queries = 0;
  double index_build_seconds = 0;
  int64_t index_built_generation = 0;
  std::string index_built_at;
};

// Reads the corpus without changing it and without needing model files. Errors: kNotFound when
// there is no corpus at config.corpus_dir.
Result<CorpusInfo> GetCorpusInfo(const CorpusConfig& config);

// The number of faces in the corpus, read cheaply (no image scan, no models, no index): what
// `query` sizes its default threshold by. 0 when there is no corpus. Errors: kDatabase, kCorrupt.
Result<int64_t> CorpusFaceCount(const CorpusConfig& config);

// ---- reindex -----------------------------------------------------------------------------------

// Which vector index a corpus searches with (`facesearch reindex`). Parameters left at 0 take the
// default for the corpus size at each build (src/index/index_spec.h; docs/usage.md "Large corpora: reindex").
struct ReindexOptions {
  std::string kind = "auto";  // auto, exact, int8, ivf, ivfpq, hnsw
  int nlist = 0, nprobe = 0;  // ivf, ivfpq
  int pq_m = 0, pq_bits = 0;  // ivfpq
  int hnsw_m = 0, ef_construction = 0, ef_search = 0;  // hnsw
  int rerank = 0;             // every kind but exact: candidates re-ranked with exact distances
  int recall_queries = 200;   // corpus vectors used as probes for the recall@10 measurement
};

struct ReindexSummary {
  std::string kind;     // as built (auto resolved)
  std::string setting;  // what the corpus now records (FormatIndexSpec)
  std::string params;   // the parameters as built
  int64_t faces = 0;
  double recall_at_10 = 1.0;  // against exact search, own face excluded (VectorIndex::MeasureRecall)
  int recall_queries = 0;
  double build_seconds = 0;
  int64_t memory_bytes = 0;
  int64_t generation = 0;
};

// Records the index setting in the corpus (every later rebuild, catch-up and repair keeps it),
// rebuilds and saves the index, measures its recall@10 and records that too. Takes the corpus
// write lock; needs no model files. Errors: kInvalidArgument (kind or parameters), kNotFound,
// kIndex, kDatabase, kIo.
Result<ReindexSummary> ReindexCorpus(const CorpusConfig& config, const ReindexOptions& options);

// What `facesearch compact` did: the index file's rows before (main segment, delta chunks and rows
// erased in place) and after (the live faces, all in the main segment).
struct CompactSummary {
  std::string kind;
  int64_t rows_before = 0;
  int64_t delta_rows_before = 0;
  int64_t faces = 0;
  int64_t bytes_before = 0, bytes_after = 0;
  bool retrained = false;  // the structure was trained anew (a small corpus), not kept
  double seconds = 0;
};

// Folds the index file's delta chunks (rows appended by `index` since the last compaction) into a
// new main segment, dropping rows erased in place, and rebuilds its structure (int8 codes, FAISS
// lists; coarse centroids and codebooks kept from kKeepTrainingFrom faces, trained anew below),
// with progress on stderr. `index` does the same by itself once the delta passes 10% of the main
// segment. Takes the corpus write lock; needs no model files. Errors: kNotFound, kIndex,
// kDatabase, kIo.
Result<CompactSummary> CompactCorpus(const CorpusConfig& config);
// Near-duplicate images: copies of one picture (resized, recompressed, lightly cropped), found by
// their perceptual hashes (`info --duplicates`). Exact copies never get here: identical bytes are
// one image (SHA-256).
struct DuplicateGroup {
  std::vector<int64_t> image_ids;  // ascending
  std::vector<std::string> images;  // their paths (or URLs), in the same order
};
struct DuplicateReport {
  int64_t images_hashed = 0;    // images whose hash is known
  int64_t images_unhashed = 0;  // indexed before schema v7 and not read again by `index` since
  std::vector<DuplicateGroup> groups;  // two or more images each, in order of their first image
};
// Reads the corpus without changing it and without needing model files. Every image's hash is
// read (O(images)), then grouped by multi-index hashing. Errors: kNotFound without a corpus.
Result<DuplicateReport> FindDuplicateImages(const CorpusConfig& config);

// Calls fn for every input that failed (image rows with status error) or was skipped before its
// content was read (robots.txt, noimageindex, malformed manifest rows), oldest first. Read-only.
Status ListInputIssues(const CorpusConfig& config, const std::function<void(const InputIssue&)>& fn);

// Calls fn for every face in the corpus, in face id order (no model files needed). Appends the
// export's audit record first (`xmp`: the faces go to XMP sidecars, said in its params), so it
// needs write access to the corpus.
Status ExportFaces(const CorpusConfig& config, const std::function<void(const FaceRecord&)>& fn,
                   bool xmp = false);

}  // namespace facesearch
