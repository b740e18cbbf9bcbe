// Photo analysis without a corpus: PhotoAnalyzer, face choice, and 1:1 comparison.
#include "facesearch/analyze.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <spdlog/spdlog.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/corpus_handle.h"
#include "engine/privacy_internal.h"
#include "engine/video.h"
#include "facesearch/privacy.h"
#include "image/sharpness.h"
#include "image/video.h"

namespace facesearch {
namespace fs = std::filesystem;

namespace {

Status WriteChip(FaceAnalyzer& analyzer, const RgbImage& image, const Face& face, const fs::path& path) {
  FS_ASSIGN(RgbImage chip, analyzer.Chip(image, face));
  FS_ASSIGN(std::string png, EncodeImage(chip, ".png"));
  return WritePrivateOutputFile(path, png);
}

}  // namespace

FaceQuality AssessFace(const Face& face, double sharpness, DetectorKind detector) {
  FaceQuality q;
  q.size = std::min(face.box.w, face.box.h);
  q.det_score = face.det_score;
  q.sharpness = sharpness;
  if (q.size < kSmallFacePixels) q.issues.push_back("small");
  if (sharpness < kBlurrySharpness) q.issues.push_back("blurry");
  const double weak_below = detector == DetectorKind::kYunet ? kYunetScore : 0.0;
  if (face.det_score < weak_below) q.issues.push_back("weak_detection");
  return q;
}

struct PhotoAnalyzer::Impl {
  std::unique_ptr<FaceAnalyzer> analyzer;
  PipelineOptions options;
  DecodeLimits limits;
  DetectorKind detector = DetectorKind::kHog;
  Result<PhotoFaces> Analyze(const std::string& photo, std::string_view bytes, const fs::path* chip_dir);
};

PhotoAnalyzer::PhotoAnalyzer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PhotoAnalyzer::~PhotoAnalyzer() = default;

Result<std::unique_ptr<PhotoAnalyzer>> PhotoAnalyzer::Load(const CorpusConfig& config,
                                                           const PipelineOptions& options) {
  auto impl = std::make_unique<Impl>();
  FS_ASSIGN(impl->analyzer, LoadAnalyzer(config, options));
  impl->options = options;
  impl->limits = LimitsFrom(options);
  impl->detector = options.detector;
  return std::unique_ptr<PhotoAnalyzer>(new PhotoAnalyzer(std::move(impl)));
}

Result<PhotoFaces> PhotoAnalyzer::AnalyzeBytes(const std::string& name, std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(impl_->limits.max_bytes))
    return Fail(ErrorCode::kDecode, name + " is larger than the size limit");
  return impl_->Analyze(name, bytes, nullptr);
}

Result<PhotoFaces> PhotoAnalyzer::Analyze(const ProbeImage& photo, const fs::path* chip_dir) {
  FS_ASSIGN(std::string bytes, ReadProbeBytes(photo, static_cast<size_t>(impl_->limits.max_bytes)));
  return impl_->Analyze(photo.name, bytes, chip_dir);
}

Result<PhotoFaces> PhotoAnalyzer::AnalyzeVideo(const std::string& path, const VideoOptions& video) {
  PipelineOptions options = impl_->options;
  options.video = video;
  FS_ASSIGN(VideoFile file, VideoFile::Open(path, video.max_bytes));
  // The quality of each track's stored face needs its chip, from a frame only seen while sampling.
  std::map<std::tuple<int64_t, int64_t, int64_t>, double> sharpness;  // by frame, box x, box y
  auto measure = [&](const RgbImage& frame, int64_t number, const std::vector<Face>& faces) -> Status {
    for (const Face& f : faces) {
      FS_ASSIGN(RgbImage chip, impl_->analyzer->Chip(frame, f));
      sharpness[{number, f.box.x, f.box.y}] = LaplacianVariance(chip);
    }
    return Ok();
  };
  FS_ASSIGN(VideoFaces tracks, facesearch::AnalyzeVideo(*impl_->analyzer, file, options, nullptr, measure));
  PhotoFaces out;
  out.path = path;
  out.sha256 = file.sha256();
  out.width = tracks.width;
  out.height = tracks.height;
  out.video = true;
  out.faces = std::move(tracks.faces);
  for (const Face& f : out.faces)
    out.quality.push_back(AssessFace(f, sharpness[{f.video->frame, f.box.x, f.box.y}], impl_->detector));
  return out;
}

Result<PhotoFaces> PhotoAnalyzer::Impl::Analyze(const std::string& photo, std::string_view bytes,
                                                const fs::path* chip_dir) {
  if (SniffVideo(bytes))
    return Fail(ErrorCode::kInvalidArgument, photo + " is a video: give a video probe as a file path, not on stdin");
  PhotoFaces out;
  out.path = photo;
  out.sha256 = Sha256Hex(bytes);
  auto image = DecodeImage(bytes, limits);
  if (!image) return Fail(ErrorCode::kDecode, "cannot read " + photo + ": " + image.error().message);
  out.width = image->width;
  out.height = image->height;
  FS_ASSIGN(out.faces, analyzer->Analyze(*image));
  for (const Face& face : out.faces) {
    FS_ASSIGN(RgbImage chip, analyzer->Chip(*image, face));
    out.quality.push_back(AssessFace(face, LaplacianVariance(chip), detector));
  }
  if (chip_dir) {
    // A new folder is made private. An existing one keeps its mode: the chips are refused there
    // when other users can list or write it (WritePrivateOutputFile).
    std::error_code ec;
    if (!fs::exists(*chip_dir, ec)) FS_TRY(EnsurePrivateDir(*chip_dir));
    std::string stem = photo == "-" ? "stdin" : fs::path(photo).stem().string();
    for (size_t i = 0; i < out.faces.size(); ++i) {
      fs::path path = *chip_dir / (stem + "_face" + std::to_string(i) + ".png");
      FS_TRY(WriteChip(*analyzer, *image, out.faces[i], path));
      out.chip_paths.push_back(path.string());
    }
  }
  return out;
}

Result<int> ChooseFace(const PhotoFaces& photo, std::optional<int> face) {
  const int n = static_cast<int>(photo.faces.size());
  if (face) {
    if (*face < 0 || *face >= n)
      return Fail(ErrorCode::kNotFound, photo.path + " has " + std::to_string(n) + " face(s); --face " +
                                            std::to_string(*face) + " does not exist (faces count from 0)");
    return *face;
  }
  if (n == 0) return Fail(ErrorCode::kNotFound, "no face found in " + photo.path);
  auto area = [&](int i) { return photo.faces[i].box.w * photo.faces[i].box.h; };
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (area(i) > area(best)) best = i;
  return best;
}

namespace {

// The comparison of two analysed photos. An explicit --face that does not exist is an error; a
// photo with no face at all is an answer.
Result<CompareResult> CompareAnalyzed(PhotoFaces a, PhotoFaces b, const CompareOptions& options) {
  CompareResult r;
  r.a = std::move(a);
  r.b = std::move(b);
  auto choose = [](const PhotoFaces& p, std::optional<int> face) -> Result<int> {
    if (!face && p.faces.empty()) return -1;
    return ChooseFace(p, face);
  };
  FS_ASSIGN(r.face_a, choose(r.a, options.face_a));
  FS_ASSIGN(r.face_b, choose(r.b, options.face_b));
  if (r.face_a >= 0 && r.face_b >= 0) {
    r.distance = EmbeddingDistance(r.a.faces[r.face_a].embedding, r.b.faces[r.face_b].embedding);
    r.same = *r.distance <= options.threshold;
  }
  return r;
}

AuditEvent CompareAuditEvent(const CompareResult& r, const CompareOptions& options) {
  const Json params = {{"threshold", RoundDecimals(options.threshold, 4)}, {"face_a", r.face_a}, {"face_b", r.face_b}};
  const Json results = {{"distance", r.distance ? Json(RoundDecimals(*r.distance, 6)) : Json()}, {"same", r.same}};
  return AuditEvent{"compare", JsonText(params), {r.a.sha256, r.b.sha256}, JsonText(results)};
}

}  // namespace

Result<CompareResult> ComparePhotos(const CorpusConfig& config, const ProbeImage& a, const ProbeImage& b,
                                    const CompareOptions& options) {
  if (a.stream && a.stream == b.stream)
    return Fail(ErrorCode::kInvalidArgument, "only one of the two photos can come from stdin");
  FS_ASSIGN(auto analyzer, PhotoAnalyzer::Load(config, options.pipeline));
  FS_ASSIGN(PhotoFaces photo_a, analyzer->Analyze(a));
  FS_ASSIGN(PhotoFaces photo_b, analyzer->Analyze(b));
  FS_ASSIGN(CompareResult r, CompareAnalyzed(std::move(photo_a), std::move(photo_b), options));
  // A comparison is a search: it is audited in the corpus when there is one (before the result
  // is shown; no record, no result). Without a corpus there is no log to write to.
  if (RequireCorpus(PathsFor(config.corpus_dir)))
    FS_TRY(AppendAudit(config, CompareAuditEvent(r, options)));
  else
    spdlog::info("compare not audited: there is no corpus at {} to hold the record", config.corpus_dir.string());
  return r;
}

Result<PhotoFaces> Corpus::Analyze(const ProbeImage& photo, const PipelineOptions& pipeline) {
  PipelineOptions resolved = pipeline;
  resolved.embedding = resolved.embedding.value_or(EmbeddingMode{});  // as `faces`: not the corpus's
  FS_ASSIGN(Impl::Lease analyzer, impl_->LeaseAnalyzer(resolved));
  return analyzer->Analyze(photo);
}

Result<PhotoFaces> Corpus::AnalyzeAsProbe(const ProbeImage& photo, const PipelineOptions& pipeline) {
  PipelineOptions resolved = pipeline;
  {
    std::lock_guard store_lock(impl_->store_mu);
    FS_ASSIGN(resolved.embedding, impl_->ModeFor(resolved));
  }
  FS_ASSIGN(Impl::Lease analyzer, impl_->LeaseAnalyzer(resolved));
  return analyzer->Analyze(photo);
}

Result<CompareResult> Corpus::Compare(const ProbeImage& a, const ProbeImage& b, const CompareOptions& options,
                                      const AuditContext& audit) {
  PipelineOptions pipeline = options.pipeline;
  {
    std::lock_guard store_lock(impl_->store_mu);
    FS_TRY(CheckCaseRequired(*impl_->store, audit, "compare"));
  }
  // Compare embeds with the pipeline's mode (plain by default), as ComparePhotos does: two photos
  // are compared with each other, not with the corpus.
  pipeline.embedding = pipeline.embedding.value_or(EmbeddingMode{});
  FS_ASSIGN(Impl::Lease analyzer, impl_->LeaseAnalyzer(pipeline));
  FS_ASSIGN(PhotoFaces photo_a, analyzer->Analyze(a));
  FS_ASSIGN(PhotoFaces photo_b, analyzer->Analyze(b));
  FS_ASSIGN(CompareResult r, CompareAnalyzed(std::move(photo_a), std::move(photo_b), options));
  std::lock_guard store_lock(impl_->store_mu);
  FS_TRY(AppendAudit(*impl_->store, audit, CompareAuditEvent(r, options)));
  return r;
}

}  // namespace facesearch
