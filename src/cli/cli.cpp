// Options and error reporting shared by the subcommands.
#include "cli/cli.h"
#include "facesearch/subject.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <streambuf>

namespace facesearch::cli {

CorpusConfig Context::Config() const {
  CorpusConfig config;
  config.corpus_dir = corpus.empty() ? DefaultCorpusDir() : std::filesystem::path(corpus);
  if (!models.empty()) config.models_dir = models;
  config.audit = AuditContext{case_id, purpose, {}, request_id};
  config.strict_permissions = strict_permissions;
  config.lock_wait_s = lock_wait_s;
  return config;
}

void Context::Report(const Error& error) {
  spdlog::error("{}", error.message);
  exit_code = kExitError;
}

namespace {

// CLI11's range checks compare with < and >, which every comparison with NaN fails: "nan" passed
// them and then matched everything (a threshold) or removed a limit (a timeout). "1e999" reads as
// infinity.
const CLI::Validator kFiniteNumber(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || std::isfinite(value)) return "";  // CLI11 judges the rest
      return "must be a finite number, not " + text;
    },
    "");

}  // namespace

namespace {

// std::cout's buffer while a command runs: write(2) in 64 KiB blocks, keeping the first error's
// errno for RunCheckingStdout (stdio's would be overwritten, and a flush that failed drops its
// data so a later flush succeeds). After an error the rest of the output is dropped.
class StdoutBuffer : public std::streambuf {
 public:
  StdoutBuffer() { setp(buf_, buf_ + sizeof buf_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type ch) override {
    if (Drain() != 0) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  int sync() override { return Drain() == 0 ? 0 : -1; }

 private:
  int Drain() {
    for (const char* p = pbase(); error_ == 0 && p < pptr();) {
      const ssize_t n = ::write(STDOUT_FILENO, p, static_cast<size_t>(pptr() - p));
      if (n < 0 && errno != EINTR) error_ = errno;
      if (n > 0) p += n;
    }
    setp(buf_, buf_ + sizeof buf_);
    return error_;
  }

  char buf_[1 << 16];
  int error_ = 0;
};

// Puts std::cout's own buffer back, even when the command throws.
struct CoutBufferSwap {
  std::streambuf* original;
  explicit CoutBufferSwap(std::streambuf* buffer) : original(std::cout.rdbuf(buffer)) {}
  ~CoutBufferSwap() {
    std::cout.flush();
    std::cout.rdbuf(original);
  }
};

}  // namespace

int RunCheckingStdout(const std::function<int()>& run) {
  StdoutBuffer buffer;
  int exit_code = kExitError;
  {
    CoutBufferSwap swap(&buffer);
    if (::isatty(STDOUT_FILENO)) std::cout << std::unitbuf;  // a person reads it as it comes, between log lines
    exit_code = run();
  }
  std::cout.clear();
  if (buffer.error() == 0) return exit_code;
  if (buffer.error() == EPIPE) return 128 + SIGPIPE;  // the reader stopped: quiet, as if SIGPIPE had ended us
  std::cerr << "facesearch: error: cannot write to standard output: " << std::strerror(buffer.error()) << "\n";
  return kExitError;
}

void RequireFiniteNumbers(CLI::App& app) {
  for (CLI::Option* option : app.get_options())
    if (option->get_type_name().rfind("FLOAT", 0) == 0) option->check(kFiniteNumber);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) RequireFiniteNumbers(*sub);
}

Result<float> SubjectThresholdFor(const Context& ctx, const std::string& subject, std::optional<float> given) {
  if (given) return *given;
  FS_ASSIGN(Subject found, GetSubject(ctx.Config(), subject));
  FS_ASSIGN(EmbeddingMode mode, ResolvedEmbeddingMode(ctx.Config(), PipelineOptions{}));
  const Calibration photo = Calibration::For(mode);
  const int references = static_cast<int>(found.references.size());
  const float threshold = SubjectThreshold(photo, references);
  spdlog::info("subject '{}': threshold {:.4f}, where {} reference(s) have the false-match rate of one photo at {:.2f} "
               "({} table); --threshold sets another", subject, threshold, references, photo.same_person_distance(),
               photo.ForReferences(references).mode());
  return threshold;
}

void AddFormatOption(CLI::App& cmd, OutputFormat& format) {
  cmd.add_option("-f,--format", format, "Output: table, json, jsonl, csv or tsv (docs/output.md)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable},
                                              {"json", OutputFormat::kJson},
                                              {"jsonl", OutputFormat::kJsonl},
                                              {"csv", OutputFormat::kCsv},
                                              {"tsv", OutputFormat::kTsv}},
          CLI::ignore_case))
      ->default_str("table");
}

void AddPipelineOptions(CLI::App& cmd, PipelineOptions& options) {
  cmd.add_option("--detector", options.detector,
                 "Face detector: hog (dlib's, frontal faces), cnn (dlib's, slower, finds more turned faces) or "
                 "yunet (OpenCV's YuNet, faster than hog, misses a few small faces hog finds; its model comes from "
                 "scripts/fetch-models.sh --with-opencv). With each, dlib's 5-point model places the "
                 "landmarks in the box and dlib's ResNet embeds the face")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, DetectorKind>{
              {"hog", DetectorKind::kHog}, {"cnn", DetectorKind::kCnn}, {"yunet", DetectorKind::kYunet}},
          CLI::ignore_case))
      ->default_str("hog");
  cmd.add_option("--upsample", options.upsample,
                 "Times to double the image before detecting (hog, cnn); 1 finds faces down to ~40 px. "
                 "yunet detects on the image as it is")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  cmd.add_option("--retry", options.retry,
                 "When the detector finds no face: none, upsample (hog, cnn: detect again on the image "
                 "doubled once more), threshold (hog with --retry-threshold; yunet keeping scores down "
                 "to 0.5 instead of 0.9) or cnn (after hog: the CNN detector)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, RetryStrategy>{{"none", RetryStrategy::kNone},
                                               {"upsample", RetryStrategy::kUpsample},
                                               {"threshold", RetryStrategy::kThreshold},
                                               {"cnn", RetryStrategy::kCnn}},
          CLI::ignore_case))
      ->default_str(RetryStrategyName(kDefaultRetry));
  cmd.add_option("--retry-threshold", options.retry_threshold,
                 "dlib adjust_threshold for --retry threshold (0 is the first pass's; lower finds "
                 "more faces and more false ones)")
      ->check(CLI::Range(-3.0, 0.0))
      ->capture_default_str();
  cmd.add_option("--yunet-score", options.yunet_score,
                 "Lowest YuNet score kept (yunet, and --model sface which detects with it): 0.9 is "
                 "OpenCV's default; 0.75 finds the blurred, dark and half-hidden faces HOG finds "
                 "(docs/benchmarks.md), and more false ones. Example: index --detector yunet --yunet-score 0.75 photos/")
      ->check(CLI::Range(0.05, 1.0))
      ->capture_default_str();
  cmd.add_option_function<std::string>(
         "--embedding",
         [&options](const std::string& text) {
           auto mode = ParseEmbeddingMode(text);
           if (!mode) throw CLI::ValidationError("--embedding", mode.error().message);
           options.embedding = *mode;
         },
         "How a face becomes a vector: plain (dlib's single pass), flip (mean with the mirror "
         "image; about 2x the embedding time, more accurate) or jitter:N (mean of N jittered "
         "copies); add +lm68 (e.g. flip+lm68) to align faces with the 68-point landmark model, "
         "or +lm5+lm68 to average both alignments (flip+lm5+lm68: about 4x, the most accurate "
         "measured; the 68-point model is optional, from scripts/fetch-models.sh --with-68, and "
         "its training data is for non-commercial use). A corpus keeps the mode of its first "
         "index run; default: the corpus's mode, plain for a new one")
      ->type_name("MODE");
  cmd.add_option_function<std::string>(
         "--model",
         [&options](const std::string& name) {
           options.model = name == "sface" ? EmbeddingModel::kSface : EmbeddingModel::kDlib;
           if (options.model == EmbeddingModel::kSface) options.embedding = EmbeddingMode{.model = EmbeddingModel::kSface};
         },
         "The embedding model: dlib (dlib's ResNet, the default: face_recognition's embeddings) or "
         "sface (OpenCV's SFace, aligned on YuNet's landmarks and so always detecting with yunet; "
         "more accurate at low false-match rates; scripts/fetch-models.sh --with-opencv). A corpus "
         "has one model, recorded by its first index run: switching means indexing into a new "
         "corpus. Default: the corpus's model")
      ->check(CLI::IsMember({"dlib", "sface"}))
      ->excludes("--embedding")
      ->type_name("MODEL");
  cmd.add_option("--min-face", options.min_face,
                 "Ignore faces smaller than this many pixels (box width or height): not indexed, not "
                 "searched with, not returned as matches")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd.add_option("--detect-max-side", options.detect_max_side,
                 "Detect faces in larger images on a copy scaled down to this many pixels on its "
                 "longer side (faces smaller than about 40 px x side / this are then missed); "
                 "landmarks and embeddings still use the full image. 0: always full size")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd.add_option("--max-pixels", options.max_pixels, "Refuse images with more pixels than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void AddVideoOptions(CLI::App& cmd, VideoOptions& video) {
  cmd.add_option("--video-fps", video.sample_fps,
                 "Video frames analysed per second of video (faces are tracked between them; a face "
                 "seen for less than 1/this may be missed)")
      ->check(CLI::Range(0.01, 60.0))
      ->capture_default_str();
  cmd.add_option("--video-max-seconds", video.max_seconds, "Refuse videos longer than this (seconds)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--video-budget", video.budget_s,
                 "Give up on a video (an error, nothing stored) after this many seconds of work")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--video-max-bytes", video.max_bytes, "Refuse video files larger than this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

}  // namespace facesearch::cli
