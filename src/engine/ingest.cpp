// `facesearch index`: walk inputs → read + hash → skip known content → decode → analyze → commit.
//
// Threads: N workers each own a FaceAnalyzer clone and take files from a shared counter; the calling
// thread is the only writer. It commits results to SQLite in batches (one transaction each), then
// appends the new vectors to the in-memory index, and saves the index once at the end. A crash
// between those steps loses nothing: the next open of the corpus catches the index up from SQLite.
#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <istream>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/cpu_time.h"
#include "common/json.h"
#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/manifest.h"
#include "engine/privacy_internal.h"
#include "engine/video.h"
#include "face/models.h"
#include "facesearch/embed.h"
#include "fetch/fetcher.h"
#include "image/exif.h"
#include "image/phash.h"
#include "image/sharpness.h"
#include "image/video.h"
#include "index/corpus_index.h"

namespace facesearch {
namespace fs = std::filesystem;

const char* FileResultName(FileResult r) {
  switch (r) {
    case FileResult::kAdded: return "added";
    case FileResult::kNoFace: return "noface";
    case FileResult::kDuplicate: return "duplicate";
    case FileResult::kError: return "error";
    case FileResult::kErased: return "erased";
    case FileResult::kSkipped: return "skipped";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatchImages = 64;
constexpr auto kBatchMaxAge = std::chrono::seconds(2);
constexpr auto kProgressEvery = std::chrono::seconds(1);

// The files a directory walk takes: images and videos.
bool HasMediaExtension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::unordered_set<std::string> kExts = {".jpg", ".jpeg", ".jpe", ".png", ".webp",
                                                        ".bmp", ".tif", ".tiff"};
  return kExts.contains(ext) || HasVideoExtension(p);
}

// One unit of work: a file or a URL, with its provenance.
struct Input {
  std::string location;
  Provenance provenance;
  bool url = false;
};

FileOutcome Problem(std::string location, const char* reason, std::string why) {
  FileOutcome o;
  o.path = std::move(location);
  o.result = FileResult::kError;
  o.reason = reason;
  o.error = std::move(why);
  return o;
}

// Walks `dir` recursively for entries with an image or video extension, sorted. Symlinked directories are
// not followed (so links cannot loop); symlinked files are. Entries that are not regular files
// (FIFOs, sockets, devices) are found too, so that reading them fails with a reason. A directory
// that cannot be read, a broken or looping link with an image or video extension, or an entry that cannot
// be inspected (whatever its name: it may be a directory) is recorded in `problems` and the walk
// goes on.
void Walk(const fs::path& dir, std::vector<fs::path>& found, std::vector<FileOutcome>& problems) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    problems.push_back(Problem(dir.string(), "unreadable_dir", "cannot read directory " + dir.string() + ": " + ec.message()));
    return;
  }
  std::vector<fs::path> subdirs;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {
      problems.push_back(Problem(dir.string(), "unreadable_dir", "cannot list directory " + dir.string() + ": " + ec.message()));
      break;
    }
    const fs::path& p = it->path();
    std::error_code entry_ec;
    const fs::file_status link = it->symlink_status(entry_ec);
    if (entry_ec) {  // ENAMETOOLONG, EACCES on a directory without search permission, a removal...
      const bool vanished = entry_ec == std::errc::no_such_file_or_directory;
      problems.push_back(Problem(p.string(), vanished ? "not_found" : "unreadable",
                                 (vanished ? "vanished during the walk: " : "cannot inspect ") + p.string() +
                                     ": " + entry_ec.message()));
      continue;
    }
    if (fs::is_directory(link)) {
      subdirs.push_back(p);
    } else if (fs::is_symlink(link)) {
      const fs::file_status target = fs::status(p, entry_ec);
      if (entry_ec) {
        if (HasMediaExtension(p))
          problems.push_back(Problem(p.string(), "symlink", "broken or looping symbolic link " + p.string() + ": " + entry_ec.message()));
      } else if (!fs::is_directory(target) && HasMediaExtension(p)) {
        found.push_back(p);
      }
    } else if (HasMediaExtension(p)) {
      found.push_back(p);  // a FIFO, socket or device too: reading refuses it with a reason
    }
  }
  std::sort(subdirs.begin(), subdirs.end());
  for (const fs::path& sub : subdirs) Walk(sub, found, problems);
}

// Reads a list of paths or URLs: one per line (or NUL-separated), "-" for `stdin_list` (the
// caller's standard input). Blank lines and, in URL lists, lines starting with '#' are skipped. A
// list over the kMaxList* bounds is an error (kInvalidArgument) found before it is all read:
// /dev/zero ends, it does not spin.
Status ReadList(const std::string& file, std::istream* stdin_list, bool null_separated, bool comments,
                std::vector<std::string>& out) {
  std::ifstream in;
  if (file != "-") {
    in.open(file, std::ios::binary);
    if (!in) return Fail(ErrorCode::kNotFound, "cannot open list " + file);
  } else if (!stdin_list) {
    return Fail(ErrorCode::kInvalidArgument, "'-' reads a list from standard input, which this caller "
                                             "does not pass (IndexOptions::list_stream)");
  }
  std::istream& src = file == "-" ? *stdin_list : in;
  const std::string name = file == "-" ? "the list on stdin" : "list " + file;
  const char separator = null_separated ? '\0' : '\n';
  auto too_large = [&](const std::string& what) {
    return Fail(ErrorCode::kInvalidArgument,
                name + " " + what + ": split it into smaller lists (e.g. split -l 100000" +
                    (null_separated ? " -t '\\0'" : "") + ") and index them one after another");
  };
  std::string entry;
  size_t entries = 0, bytes = 0;
  auto finish_entry = [&] {
    if (!null_separated && !entry.empty() && entry.back() == '\r') entry.pop_back();
    if (!entry.empty() && !(comments && entry.front() == '#')) out.push_back(entry);
    entry.clear();
  };
  char chunk[1 << 16];
  while (src.read(chunk, sizeof chunk) || src.gcount() > 0) {
    const size_t n = static_cast<size_t>(src.gcount());
    if ((bytes += n) > kMaxListBytes)
      return too_large("is larger than " + std::to_string(kMaxListBytes >> 20) + " MiB");
    for (size_t i = 0; i < n; ++i) {
      if (chunk[i] != separator) {
        entry += chunk[i];
        if (entry.size() > kMaxListEntryBytes)
          return Fail(ErrorCode::kInvalidArgument,
                      name + ": entry " + std::to_string(entries + 1) + " is longer than " +
                          std::to_string(kMaxListEntryBytes) + " bytes, more than any path or URL: is it " +
                          (null_separated ? "really NUL-separated (-0)?"
                                          : "one path or URL per line (or NUL-separated: add -0)?"));
        continue;
      }
      if (++entries > kMaxListEntries)
        return too_large("has more than " + std::to_string(kMaxListEntries) + " entries");
      finish_entry();
    }
  }
  if (src.bad()) return Fail(ErrorCode::kIo, "cannot read " + name);
  if (!entry.empty() && ++entries > kMaxListEntries)
    return too_large("has more than " + std::to_string(kMaxListEntries) + " entries");
  finish_entry();
  return Ok();
}

// Expands every input form into work items, in the order given: directories are walked (Walk),
// files named explicitly are always tried (one that does not exist fails when read, like a file
// that vanishes mid-run), URLs are fetched. Problems found while expanding (malformed manifest
// rows, unreadable directories, broken links) go to `problems`.
Result<std::vector<Input>> CollectInputs(const std::vector<std::string>& args, const IndexOptions& options,
                                         std::vector<FileOutcome>& problems) {
  std::vector<IndexInput> expanded;
  for (const auto& a : args) {
    if (a != "-") {
      expanded.push_back({a, {}});
      continue;
    }
    std::vector<std::string> lines;
    FS_TRY(ReadList("-", options.list_stream, options.null_separated, false, lines));
    for (auto& l : lines) expanded.push_back({std::move(l), {}});
  }
  for (const auto& f : options.list_files) {
    std::vector<std::string> lines;
    FS_TRY(ReadList(f, options.list_stream, options.null_separated, false, lines));
    for (auto& l : lines) expanded.push_back({std::move(l), {}});
  }
  for (const auto& f : options.manifests) {
    FS_ASSIGN(std::vector<IndexInput> rows, ReadManifest(f, options.manifest_format, problems));
    // Relative paths in a manifest are relative to the manifest's folder.
    const fs::path base = fs::absolute(f).parent_path();
    for (auto& r : rows) {
      if (!r.url && !LooksLikeUrl(r.location) && fs::path(r.location).is_relative())
        r.location = (base / r.location).string();
      expanded.push_back(std::move(r));
    }
  }
  for (const auto& f : options.url_lists) {
    std::vector<std::string> lines;
    FS_TRY(ReadList(f, options.list_stream, false, true, lines));
    for (auto& l : lines) {
      while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) l.pop_back();
      if (!l.empty()) expanded.push_back({std::move(l), {}, /*url=*/true});
    }
  }

  std::vector<Input> inputs;
  for (auto& e : expanded) {
    if (e.url || LooksLikeUrl(e.location)) {  // the fetcher refuses what is not http(s)
      inputs.push_back({std::move(e.location), std::move(e.provenance), true});
      continue;
    }
    std::error_code ec;
    fs::path p = fs::absolute(e.location, ec).lexically_normal();
    if (ec || e.location.empty()) {
      problems.push_back(Problem(e.location.empty() ? "(empty path)" : e.location, "not_found",
                                 "cannot resolve the path '" + e.location + "'"));
      continue;
    }
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      Walk(p, found, problems);
      std::sort(found.begin(), found.end());
      for (auto& f : found) inputs.push_back({f.string(), e.provenance, false});
    } else {
      inputs.push_back({p.string(), std::move(e.provenance), false});
    }
  }
  return inputs;
}

// A short code for why a file could not be read or decoded (FileOutcome::reason).
const char* ReasonFor(const Error& e) {
  if (e.code == ErrorCode::kNotFound) return "not_found";
  switch (e.reason) {
    case ErrorReason::kNotRegularFile: return "not_regular_file";
    case ErrorReason::kTooLarge: return "too_large";
    case ErrorReason::kPixelCap: return "pixel_cap";
    case ErrorReason::kTruncated: return "truncated";
    case ErrorReason::kNotImage: return "not_image";
    case ErrorReason::kNotVideo: return "not_video";
    case ErrorReason::kNoFrames: return "no_frames";
    case ErrorReason::kTooLong: return "too_long";
    case ErrorReason::kTimeBudget: return "time_budget";
    case ErrorReason::kInterrupted: return "interrupted";
    case ErrorReason::kUnspecified: break;
  }
  if (e.code == ErrorCode::kIo) return "unreadable";
  if (e.code == ErrorCode::kDecode) return "decoder_error";
  return "analyzer_error";
}

// dlib's convolutions call BLAS; with one worker per core, OpenBLAS's own threads only contend.
void LimitBlasThreads(int n) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(n);
}

struct Item {
  FileOutcome outcome;
  ImageRecord record;
  std::vector<Face> faces;
  std::vector<FaceQuality> quality;  // one per face, when the pipeline assesses them (embed)
  std::optional<InputIssue> issue;  // instead of an image row: an input skipped before reading
  bool read_again = false;          // instead of an image row: known content read from here
  std::optional<MediaBackfill> backfill;  // with read_again: the hash and EXIF an old row lacks
  bool abandoned = false;           // an interrupted video: nothing to record
};

// The perceptual hash of decoded pixels and the EXIF of their file's bytes (schema v7).
MediaBackfill MediaOf(const std::string& sha, const RgbImage& image, std::string_view bytes) {
  ExifRead exif = ReadExif(bytes);
  return {sha, PerceptualHash(image), std::move(exif.metadata), std::move(exif.problem)};
}

// `item` as a failed input. Its error is recorded for its location, without the content's hash:
// content that failed is not "already indexed", so the next run (with other caps, a fixed file or
// --allow-reindex) and every other location holding it try it again.
Item Failed(Item item, std::string why, std::string reason) {
  item.outcome.result = FileResult::kError;
  item.outcome.error = item.record.error = std::move(why);
  item.outcome.reason = item.record.error_kind = std::move(reason);
  item.record.status = ImageStatus::kError;
  item.record.sha256.reset();
  return item;
}

// Wall and CPU seconds of the calling thread between laps.
class StageClock {
 public:
  void Lap(double& wall_sink, double& cpu_sink) {
    const auto now = Clock::now();
    const double now_cpu = ThreadCpuSeconds();
    wall_sink += std::chrono::duration<double>(now - last_).count();
    cpu_sink += now_cpu - last_cpu_;
    last_ = now;
    last_cpu_ = now_cpu;
  }

 private:
  Clock::time_point last_ = Clock::now();
  double last_cpu_ = ThreadCpuSeconds();
};

// State shared between the workers and the writer.
class Pipeline {
 public:
  // `store`: the corpus being indexed, or null (embed: no corpus, nothing deduplicated or
  // skipped). `optouts`: faces matching them are dropped before they are stored. Content erased
  // earlier (tombstoned) is skipped as kErased unless allow_reindex. `assess`: also rate each
  // face's quality (the embed file carries it) as a probe from this detector would be.
  Pipeline(Store* store, std::vector<Input> files, const PipelineOptions& pipeline, OptOutFilter optouts,
           bool allow_reindex, Fetcher* fetcher, const std::atomic<bool>* interrupt,
           std::optional<DetectorKind> assess = std::nullopt)
      : store_(store), files_(std::move(files)), pipeline_(pipeline), limits_(LimitsFrom(pipeline)),
        optouts_(std::move(optouts)), allow_reindex_(allow_reindex), fetcher_(fetcher), interrupt_(interrupt),
        assess_(assess) {}

  // Runs on one worker thread; adds its read and decode seconds, wall and CPU, to `wall` and
  // `cpu` (the analyzer keeps the rest).
  void Work(FaceAnalyzer& analyzer, StageSeconds& wall, StageSeconds& cpu) {
    for (size_t i = next_++; i < files_.size() && !Stopping(); i = next_++) {
      Item item = Process(analyzer, files_[i], wall, cpu);
      if (!item.abandoned) Push(std::move(item));
    }
  }
  bool Interrupted() const { return interrupt_ && interrupt_->load(); }

  // Waits up to `timeout` for results; returns what is ready (possibly nothing).
  std::vector<Item> Take(std::chrono::milliseconds timeout) {
    std::unique_lock lock(queue_mu_);
    queue_cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); });
    std::vector<Item> out(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    return out;
  }

  void Stop() { stop_ = true; }
  std::mutex& store_mutex() { return store_mu_; }
  size_t total() const { return files_.size(); }

 private:
  bool Stopping() const { return stop_ || Interrupted(); }

  Item Process(FaceAnalyzer& analyzer, const Input& input, StageSeconds& wall, StageSeconds& cpu) {
    StageClock clock;
    Item item;
    // A URL's user:password@ is used to fetch it, never stored or printed.
    const std::string shown = input.url ? RedactUrl(input.location) : input.location;
    item.outcome.path = item.record.path = shown;
    item.record.provenance = input.provenance;
    // A video is hashed by streaming and decoded from its file, never held in memory.
    std::optional<VideoFile> video;
    Result<std::string> bytes;
    if (input.url) {
      FetchOutcome fetched = fetcher_->Fetch(input.location);
      if (fetched.kind == FetchOutcome::Kind::kFailed)
        return Failed(std::move(item), fetched.detail, fetched.reason);
      if (fetched.kind == FetchOutcome::Kind::kSkipped) {
        item.outcome.result = FileResult::kSkipped;
        item.outcome.error = fetched.detail;
        item.outcome.reason = fetched.reason;
        item.issue = InputIssue{shown, "skipped", fetched.reason, fetched.detail, "", input.provenance};
        return item;
      }
      if (SniffVideo(fetched.body))
        return Failed(std::move(item), shown + " is a video: videos are indexed from local files only; "
                                       "download it and index the file", "video_url");
      bytes = std::move(fetched.body);
    } else if (IsVideoFile(input.location)) {
      auto opened = VideoFile::Open(input.location, pipeline_.video.max_bytes);
      if (!opened) return Failed(std::move(item), opened.error().message, ReasonFor(opened.error()));
      video.emplace(std::move(*opened));
    } else {
      bytes = ReadFile(input.location, static_cast<size_t>(limits_.max_bytes));
    }
    if (!video && !bytes) return Failed(std::move(item), bytes.error().message, ReasonFor(bytes.error()));
    item.record.size = video ? video->size() : static_cast<int64_t>(bytes->size());
    // Empty files all share one hash, yet each is its own failed input, not a duplicate.
    if (item.record.size == 0) return Failed(std::move(item), shown + " is empty (0 bytes)", "empty");
    const std::string sha = video ? video->sha256() : Sha256Hex(*bytes);
    item.record.sha256 = sha;
    const bool claimed = Claim(sha);
    clock.Lap(wall.read, cpu.read);
    if (!claimed) {
      item.outcome.result = FileResult::kDuplicate;
      item.read_again = true;
      if (!video) item.backfill = Backfill(sha, *bytes);  // a video has no perceptual hash or EXIF
      clock.Lap(wall.decode, cpu.decode);
      return item;
    }
    if (!allow_reindex_ && Erased(sha)) {
      Settle(sha, /*kept=*/true);
      item.outcome.result = FileResult::kErased;
      return item;
    }
    item = video ? AnalyzeVideoFile(analyzer, std::move(item), *video, wall, cpu)
                 : Analyze(analyzer, std::move(item), *bytes, clock, wall, cpu);
    Settle(sha, /*kept=*/item.outcome.result != FileResult::kError && !item.abandoned);
    return item;
  }

  // Samples, analyses and tracks a claimed video; `item` comes back with its outcome, or
  // abandoned when the run is interrupted (the next run starts the video again).
  Item AnalyzeVideoFile(FaceAnalyzer& analyzer, Item item, const VideoFile& file, StageSeconds& wall,
                        StageSeconds& cpu) {
    // An embed record carries each face's probe quality, measured on a still image's chip.
    if (assess_)
      return Failed(std::move(item), file.path() + " is a video: `embed` takes images; index videos into a corpus",
                    "video_embed");
    auto video = AnalyzeVideo(analyzer, file, pipeline_, interrupt_);
    if (!video) {
      if (video.error().reason == ErrorReason::kInterrupted) item.abandoned = true;
      return item.abandoned ? std::move(item) : Failed(std::move(item), video.error().message, ReasonFor(video.error()));
    }
    wall.decode += video->decode_s;
    cpu.decode += video->decode_cpu_s;
    spdlog::debug("{}: {} frames, {} samples, {} detections, {} tracks", file.path(), video->frames,
                  video->samples, video->detections, video->faces.size());
    item.record.width = video->width;
    item.record.height = video->height;
    item.record.duration_s = video->duration_s;
    return WithFaces(std::move(item), std::move(video->faces));
  }

  // Decodes and analyses claimed content; `item` comes back with its outcome.
  Item Analyze(FaceAnalyzer& analyzer, Item item, const std::string& bytes, StageClock& clock,
               StageSeconds& wall, StageSeconds& cpu) {
    auto image = DecodeImage(bytes, limits_);
    clock.Lap(wall.decode, cpu.decode);
    if (!image) return Failed(std::move(item), image.error().message, ReasonFor(image.error()));
    item.record.width = image->width;
    item.record.height = image->height;
    MediaBackfill media = MediaOf(*item.record.sha256, *image, bytes);
    item.record.phash = media.phash;
    item.record.photo = std::move(media.photo);
    item.record.exif_problem = media.exif_problem;
    if (!media.exif_problem.empty())
      item.outcome.warning = "EXIF not (all) read: " + media.exif_problem + "; the image is indexed all the same";
    auto faces = analyzer.Analyze(*image);
    if (!faces) return Failed(std::move(item), faces.error().message, "analyzer_error");
    item = WithFaces(std::move(item), std::move(*faces));
    for (const Face& face : item.faces) {
      if (!assess_) break;
      auto chip = analyzer.Chip(*image, face);
      if (!chip) return Failed(std::move(item), chip.error().message, "analyzer_error");
      item.quality.push_back(AssessFace(face, LaplacianVariance(*chip), *assess_));
    }
    return item;
  }

  // `item` analysed: its faces less those matching an opt-out (an all-opted-out image: noface).
  Item WithFaces(Item item, std::vector<Face> faces) {
    item.faces = std::move(faces);
    item.outcome.optout_faces = optouts_.RemoveMatching(item.faces);
    item.outcome.faces = static_cast<int>(item.faces.size());
    item.outcome.result = item.faces.empty() ? FileResult::kNoFace : FileResult::kAdded;
    item.record.status = item.faces.empty() ? ImageStatus::kNoFace : ImageStatus::kOk;
    return item;
  }

  // Content indexed before schema v7 lacks its perceptual hash and EXIF: it is decoded once more
  // (no face detection) to fill them in, so running `index` again on old folders backfills them.
  std::optional<MediaBackfill> Backfill(const std::string& sha, const std::string& bytes) {
    if (!store_) return std::nullopt;  // `embed`: no corpus to backfill
    {
      std::lock_guard lock(store_mu_);
      auto needs = store_->NeedsMedia(sha);
      if (!needs || !*needs) return std::nullopt;  // a read error: leave it for the next run
    }
    auto image = DecodeImage(bytes, limits_);
    if (!image) return std::nullopt;
    return MediaOf(sha, *image, bytes);
  }

  // True when this worker is to analyse `sha`: no image row of the corpus holds it and no other
  // worker of this run has it (first claimant wins). While another worker analyses the same
  // content this waits for its outcome: a failure releases the content (Settle), so that every
  // location holding it gets its own try and its own error.
  bool Claim(const std::string& sha) {
    if (!store_) return true;
    {
      std::unique_lock lock(claimed_mu_);
      claimed_cv_.wait(lock, [&] {
        auto it = claimed_.find(sha);
        return it == claimed_.end() || it->second == ContentState::kKept;
      });
      if (!claimed_.try_emplace(sha, ContentState::kAnalysing).second) return false;
    }
    std::optional<int64_t> found;
    {
      std::lock_guard lock(store_mu_);
      auto row = store_->FindImageBySha(sha);
      found = row ? *row : std::optional<int64_t>(0);  // a read error: do not analyse it twice
    }
    if (found) Settle(sha, /*kept=*/true);
    return !found;
  }

  // Ends a claim: `kept` content (stored, or known to the corpus) makes later claimants
  // duplicates; failed content is released for the next one.
  void Settle(const std::string& sha, bool kept) {
    {
      std::lock_guard lock(claimed_mu_);
      if (kept) claimed_[sha] = ContentState::kKept;
      else claimed_.erase(sha);
    }
    claimed_cv_.notify_all();
  }

  // True when `forget` erased this content earlier (a tombstone). A read error counts as erased:
  // when in doubt, do not re-index.
  bool Erased(const std::string& sha) {
    if (!store_) return false;
    std::lock_guard lock(store_mu_);
    auto erased = store_->IsTombstoned(sha);
    return !erased || *erased;
  }

  void Push(Item item) {
    {
      std::lock_guard lock(queue_mu_);
      queue_.push_back(std::move(item));
    }
    queue_cv_.notify_one();
  }

  Store* const store_;
  const std::vector<Input> files_;
  const PipelineOptions pipeline_;
  const DecodeLimits limits_;
  const OptOutFilter optouts_;
  const bool allow_reindex_;
  Fetcher* const fetcher_;  // null when no input is a URL
  const std::atomic<bool>* const interrupt_;
  const std::optional<DetectorKind> assess_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::mutex store_mu_, claimed_mu_, queue_mu_;
  std::condition_variable queue_cv_, claimed_cv_;
  enum class ContentState { kAnalysing, kKept };
  std::unordered_map<std::string, ContentState> claimed_;  // by SHA-256, see Claim
  std::deque<Item> queue_;
};

// Commits a batch to SQLite, then appends its vectors to the index.
Status Commit(Store& store, std::mutex& store_mu, VectorIndex& index, std::vector<Item>& batch) {
  if (batch.empty()) return Ok();
  std::vector<std::pair<ImageRecord, std::vector<Face>>> rows;
  std::vector<InputIssue> issues;
  std::vector<std::string> read_again;
  std::vector<MediaBackfill> backfill;
  for (auto& item : batch) {
    if (item.issue) {
      issues.push_back(std::move(*item.issue));
    } else if (item.read_again) {
      read_again.push_back(std::move(item.record.path));
      if (item.backfill) backfill.push_back(std::move(*item.backfill));
    } else {
      rows.emplace_back(std::move(item.record), std::move(item.faces));
    }
  }
  Result<std::vector<std::vector<int64_t>>> ids;
  {
    std::lock_guard lock(store_mu);
    ids = store.AddImages(rows, issues, read_again, backfill);
  }
  if (!ids) return std::unexpected(ids.error());
  std::vector<int64_t> flat_ids;
  std::vector<float> vectors;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t f = 0; f < rows[i].second.size(); ++f) {
      flat_ids.push_back((*ids)[i][f]);
      const Embedding& e = rows[i].second[f].embedding;
      vectors.insert(vectors.end(), e.begin(), e.end());
    }
  }
  batch.clear();
  if (flat_ids.empty()) return Ok();
  return index.Add(flat_ids, vectors);
}


// The inputs of a run, expanded (CollectInputs); the problems found while expanding them have no
// content and come first in the batch, as input issues.
struct Inputs {
  std::vector<Input> files;
  std::vector<Item> batch;
};

Result<Inputs> ExpandInputs(const std::vector<std::string>& paths, const IndexOptions& options,
                            const std::function<void(const FileOutcome&)>& report) {
  std::vector<FileOutcome> problems;
  Inputs out;
  FS_ASSIGN(out.files, CollectInputs(paths, options, problems));
  for (const auto& p : problems) {
    report(p);
    Item item;
    item.outcome = p;
    item.issue = InputIssue{p.path, FileResultName(p.result), p.reason, p.error, "", {}};
    out.batch.push_back(std::move(item));
  }
  return out;
}

// A fetcher when some input is a URL, else null.
std::unique_ptr<Fetcher> MakeFetcher(const std::vector<Input>& files, const IndexOptions& options) {
  if (std::none_of(files.begin(), files.end(), [](const Input& i) { return i.url; })) return nullptr;
  FetchOptions fetch = options.fetch;
  if (fetch.max_bytes <= 0) fetch.max_bytes = options.pipeline.max_file_bytes;
  auto fetcher = std::make_unique<Fetcher>(fetch);
  spdlog::info("fetching URLs as \"{}\"{}", fetcher->user_agent(),
               fetch.ignore_robots ? " IGNORING robots.txt and X-Robots-Tag (audited)" : "");
  return fetcher;
}

// The worker count for `inputs` inputs: options.jobs, or one per hardware thread, at most one per input.
int WorkersFor(const IndexOptions& options, size_t inputs) {
  int jobs = options.jobs > 0 ? options.jobs : static_cast<int>(std::thread::hardware_concurrency());
  jobs = std::clamp(jobs, 1, std::min(MaxIndexJobs(), std::max(1, static_cast<int>(inputs))));
  if (jobs > 1) LimitBlasThreads(1);
  return jobs;
}

// Runs `jobs` workers (`analyzer` and its clones) over the pipeline's inputs and hands their
// items, with those already in `batch`, to `flush` on the calling thread: in batches of
// kBatchImages, or every kBatchMaxAge, and at the end. A failing flush stops the workers and is
// returned. Adds the workers' and the flushes' seconds to the summary (flushes count as store).
Status Drive(Pipeline& pipeline, std::unique_ptr<FaceAnalyzer> analyzer, int jobs, const IndexOptions& options,
             std::vector<Item> batch, const std::function<void(const FileOutcome&)>& report,
             const std::function<Status(std::vector<Item>&)>& flush, IndexSummary& summary, Clock::time_point start) {
  std::vector<std::unique_ptr<FaceAnalyzer>> analyzers;
  analyzers.push_back(std::move(analyzer));
  for (int j = 1; j < jobs; ++j) analyzers.push_back(analyzers.front()->Clone());
  std::atomic<int> running{jobs};
  std::vector<StageSeconds> worker_wall(jobs), worker_cpu(jobs);
  std::vector<std::thread> workers;
  for (int j = 0; j < jobs; ++j)
    workers.emplace_back([&, j] {
      pipeline.Work(*analyzers[j], worker_wall[j], worker_cpu[j]);
      --running;
    });

  Status status = Ok();
  int64_t done = 0;
  auto last_flush = Clock::now(), last_progress = Clock::now();
  while (true) {
    bool finished = running == 0;  // read before Take so the final results are drained
    for (Item& item : pipeline.Take(std::chrono::milliseconds(200))) {
      ++done;
      report(item.outcome);
      if (item.outcome.result != FileResult::kErased &&
          (item.outcome.result != FileResult::kDuplicate || item.read_again))
        batch.push_back(std::move(item));
    }
    if (status && (batch.size() >= kBatchImages || (finished && !batch.empty()) ||
                   Clock::now() - last_flush > kBatchMaxAge)) {
      const auto flush_start = Clock::now();
      const double flush_cpu = ThreadCpuSeconds();
      status = flush(batch);
      batch.clear();
      last_flush = Clock::now();
      summary.stage_seconds.store += std::chrono::duration<double>(last_flush - flush_start).count();
      summary.stage_cpu_seconds.store += ThreadCpuSeconds() - flush_cpu;
      if (!status) pipeline.Stop();
    }
    if (options.on_progress && (finished || Clock::now() - last_progress > kProgressEvery)) {
      options.on_progress({done, static_cast<int64_t>(pipeline.total()), summary.faces, summary.errors,
                           std::chrono::duration<double>(Clock::now() - start).count()});
      last_progress = Clock::now();
    }
    if (finished) break;
  }
  for (auto& w : workers) w.join();
  if (!status) return status;
  summary.interrupted = pipeline.Interrupted() && done < static_cast<int64_t>(pipeline.total());
  if (summary.interrupted)
    spdlog::warn("interrupted: {} of {} inputs done; run the same command again to finish", done, pipeline.total());

  for (int j = 0; j < jobs; ++j) {
    summary.stage_seconds += worker_wall[j];
    summary.stage_cpu_seconds += worker_cpu[j];
    const AnalyzerSeconds a = analyzers[j]->Seconds();
    summary.stage_seconds.detect += a.detect;
    summary.stage_seconds.landmarks += a.landmarks;
    summary.stage_seconds.embed += a.embed;
    summary.stage_cpu_seconds.detect += a.detect_cpu;
    summary.stage_cpu_seconds.landmarks += a.landmarks_cpu;
    summary.stage_cpu_seconds.embed += a.embed_cpu;
  }
  return Ok();
}

// Counts each outcome into `summary` and passes it on to on_file.
std::function<void(const FileOutcome&)> Tally(IndexSummary& summary, const IndexOptions& options) {
  return [&summary, &options](const FileOutcome& o) {
    CountOutcome(o, summary);
    if (options.on_file) options.on_file(o);
  };
}

// An ingest item as an embed file record.
EmbeddedImage ToRecord(Item& item) {
  EmbeddedImage r;
  if (item.issue) {
    r.status = EmbeddedImage::Status::kIssue;
    r.path = item.issue->location;
    r.outcome = item.issue->outcome;
    r.reason = item.issue->reason;
    r.error = item.issue->detail;
    r.provenance = item.issue->provenance;
    return r;
  }
  const ImageRecord& rec = item.record;
  r.path = rec.path;
  r.provenance = rec.provenance;
  if (rec.status == ImageStatus::kError) {
    r.status = EmbeddedImage::Status::kError;
    r.reason = rec.error_kind;
    r.error = rec.error;
    return r;
  }
  r.status = rec.status == ImageStatus::kOk ? EmbeddedImage::Status::kOk : EmbeddedImage::Status::kNoFace;
  r.sha256 = rec.sha256.value_or("");
  r.size = rec.size;
  r.width = rec.width;
  r.height = rec.height;
  r.faces = std::move(item.faces);
  r.quality = std::move(item.quality);
  return r;
}

}  // namespace

void CountOutcome(const FileOutcome& o, IndexSummary& summary) {
  switch (o.result) {
    case FileResult::kAdded: ++summary.added; summary.faces += o.faces; break;
    case FileResult::kNoFace: ++summary.noface; break;
    case FileResult::kDuplicate: ++summary.duplicates; break;
    case FileResult::kError: ++summary.errors; break;
    case FileResult::kErased: ++summary.erased; break;
    case FileResult::kSkipped: ++summary.skipped; break;
  }
  summary.optout_faces += o.optout_faces;
}

int MaxIndexJobs() { return std::max(64, static_cast<int>(std::thread::hardware_concurrency())); }

std::string JobsOutOfRange(const std::string& jobs) {
  return "--jobs " + jobs + " is out of range: give 1 to " + std::to_string(MaxIndexJobs()) +
         " workers (more than the CPUs only cost memory: each worker holds its own copy of the models), "
         "or leave it out for one per CPU";
}

Result<IndexSummary> IndexPaths(const CorpusConfig& config, const std::vector<std::string>& paths,
                                const IndexOptions& options) {
  const auto start = Clock::now();
  IndexSummary summary;
  const auto report = Tally(summary, options);

  if (options.jobs < 0 || options.jobs > MaxIndexJobs())
    return Fail(ErrorCode::kInvalidArgument, JobsOutOfRange(std::to_string(options.jobs)));
  FS_TRY(CheckCorpusPermissions(config));
  FS_ASSIGN(PipelineOptions resolved, WithCorpusEmbedding(config, options.pipeline));
  FS_ASSIGN(auto analyzer, LoadAnalyzer(config, resolved));
  CorpusPaths corpus = PathsFor(config.corpus_dir);
  FS_ASSIGN(FileLock lock, LockCorpusForWriting(corpus, config.lock_wait_s));
  FS_ASSIGN(auto store, Store::Open(corpus.database, ModelIdentity(resolved.embedding->model)));
  // Under the lock: the mode chosen above still agrees with the corpus (a first run records it).
  FS_TRY(RecordEmbeddingMode(*store, *resolved.embedding));
  spdlog::debug("embedding mode {}, retry {}", EmbeddingModeName(*resolved.embedding),
                RetryStrategyName(resolved.retry));
  FS_ASSIGN(OpenedIndex opened, OpenCorpusIndex(*store, corpus.index_dir, /*persist=*/true));
  FS_ASSIGN(OptOutFilter optouts, OptOutFilter::Load(*store));

  FS_ASSIGN(Inputs inputs, ExpandInputs(paths, options, report));
  summary.files = static_cast<int64_t>(inputs.files.size());
  std::unique_ptr<Fetcher> fetcher = MakeFetcher(inputs.files, options);
  if (fetcher && options.fetch.ignore_robots) {
    // An override of the politeness rules is an accountable act: recorded before any fetch.
    AuditEvent event;
    event.action = "index-ignore-robots";
    const auto urls = std::count_if(inputs.files.begin(), inputs.files.end(), [](const Input& i) { return i.url; });
    event.params = JsonText({{"user_agent", fetcher->user_agent()}, {"urls", urls}});
    FS_TRY(AppendAudit(*store, config.audit, event));
  }
  const int jobs = WorkersFor(options, inputs.files.size());
  spdlog::info("indexing {} files with {} worker(s) into {}", inputs.files.size(), jobs, corpus.dir.string());

  Pipeline pipeline(store.get(), std::move(inputs.files), resolved, std::move(optouts),
                    options.allow_reindex, fetcher.get(), options.stop);
  FS_TRY(Drive(pipeline, std::move(analyzer), jobs, options, std::move(inputs.batch), report,
               [&](std::vector<Item>& batch) { return Commit(*store, pipeline.store_mutex(), *opened.index, batch); },
               summary, start));
  if (summary.interrupted)
    spdlog::info("what was done is committed: the next run skips finished inputs by their content hash");

  const auto save_start = Clock::now();
  const double save_cpu = ThreadCpuSeconds();
  FS_TRY(SaveCorpusIndex(*store, *opened.index, corpus.index_dir));
  FS_TRY(store->Checkpoint());
  summary.stage_seconds.store += std::chrono::duration<double>(Clock::now() - save_start).count();
  summary.stage_cpu_seconds.store += ThreadCpuSeconds() - save_cpu;
  summary.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

Result<IndexSummary> EmbedPaths(const CorpusConfig& config, const std::vector<std::string>& paths,
                                const IndexOptions& options, std::ostream& out) {
  const auto start = Clock::now();
  IndexSummary summary;
  const auto report = Tally(summary, options);
  if (options.jobs < 0 || options.jobs > MaxIndexJobs())
    return Fail(ErrorCode::kInvalidArgument, JobsOutOfRange(std::to_string(options.jobs)));
  if (options.fetch.ignore_robots)
    return Fail(ErrorCode::kInvalidArgument,
                "--ignore-robots is recorded in a corpus's audit log, and embed has no corpus: use `facesearch "
                "index --ignore-robots` on the corpus that is to hold the faces");
  PipelineOptions pipeline_options = options.pipeline;
  pipeline_options.embedding = pipeline_options.embedding.value_or(EmbeddingMode{});
  FS_ASSIGN(auto analyzer, LoadAnalyzer(config, pipeline_options));
  FS_ASSIGN(Inputs inputs, ExpandInputs(paths, options, report));
  summary.files = static_cast<int64_t>(inputs.files.size());
  std::unique_ptr<Fetcher> fetcher = MakeFetcher(inputs.files, options);
  const int jobs = WorkersFor(options, inputs.files.size());
  spdlog::info("embedding {} files with {} worker(s)", inputs.files.size(), jobs);

  auto write = [&](const std::string& line) -> Status {
    if (!(out << line << '\n')) return Fail(ErrorCode::kIo, "cannot write the embed file (disk full?)");
    return Ok();
  };
  FS_TRY(write(FormatEmbedHeader({kEmbedFormatVersion, ModelIdentity(pipeline_options.embedding->model), *pipeline_options.embedding,
                                  DetectorName(pipeline_options.detector)})));
  int64_t records = 0;
  Pipeline pipeline(nullptr, std::move(inputs.files), pipeline_options, OptOutFilter{},
                    /*allow_reindex=*/true, fetcher.get(), options.stop, pipeline_options.detector);
  auto write_batch = [&](std::vector<Item>& batch) -> Status {
    for (Item& item : batch) {
      FS_TRY(write(FormatEmbedRecord(ToRecord(item))));
      ++records;
    }
    return Ok();
  };
  FS_TRY(Drive(pipeline, std::move(analyzer), jobs, options, std::move(inputs.batch), report, write_batch,
               summary, start));
  // An interrupted run writes no end line: its file is refused, as a truncated one is.
  if (!summary.interrupted) FS_TRY(write(FormatEmbedEnd(records)));
  out.flush();
  if (!out) return Fail(ErrorCode::kIo, "cannot write the embed file (disk full?)");
  summary.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace facesearch
