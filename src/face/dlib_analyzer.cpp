// The dlib adapter: HOG (or CNN, or YuNet through OpenCV) detection, 5-point (or 68-point) landmarks, face chips and the ResNet embedder,
// arranged exactly as dlib's Python bindings (and so the `face_recognition` package) arrange them,
// so that embeddings agree with the reference implementation (scripts/check/parity.sh measures it).
// With the SFace model (EmbeddingModel::kSface) the faces are YuNet's, aligned on its own 5
// landmarks and embedded by SfaceEmbedder; dlib's predictor and ResNet are then not loaded.
//
// Compiled with AVX2/FMA contraction when FACESEARCH_DLIB_AVX2 is on (see CMakeLists.txt): the
// shape predictor then rounds landmarks exactly as the reference build does. HOG detection lives in
// hog_detector.cpp, compiled without them, for the same reason.
#include <dlib/dnn.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <span>
#include <spanstream>
#include <stdexcept>

#include "common/cpu_time.h"
#include "face/analyzer.h"
#include "face/cnn_detector.h"
#include "face/dlib_convert.h"
#include "face/hog_detector.h"
#include "face/models.h"
#include "face/sface_embedder.h"
#include "face/yunet_detector.h"

namespace facesearch {
namespace {

// The network of dlib_face_recognition_resnet_model_v1.dat, as declared in dlib's
// examples/dnn_face_recognition_ex.cpp. The layer list must match the file exactly.
template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual = dlib::add_prev1<block<N, BN, 1, dlib::tag1<SUBNET>>>;

template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual_down = dlib::add_prev2<
    dlib::avg_pool<2, 2, 2, 2, dlib::skip1<dlib::tag2<block<N, BN, 2, dlib::tag1<SUBNET>>>>>>;

template <int N, template <typename> class BN, int stride, typename SUBNET>
using block =
    BN<dlib::con<N, 3, 3, 1, 1, dlib::relu<BN<dlib::con<N, 3, 3, stride, stride, SUBNET>>>>>;

template <int N, typename SUBNET>
using ares = dlib::relu<residual<block, N, dlib::affine, SUBNET>>;
template <int N, typename SUBNET>
using ares_down = dlib::relu<residual_down<block, N, dlib::affine, SUBNET>>;

template <typename SUBNET> using alevel0 = ares_down<256, SUBNET>;
template <typename SUBNET> using alevel1 = ares<256, ares<256, ares_down<256, SUBNET>>>;
template <typename SUBNET> using alevel2 = ares<128, ares<128, ares_down<128, SUBNET>>>;
template <typename SUBNET> using alevel3 = ares<64, ares<64, ares<64, ares_down<64, SUBNET>>>>;
template <typename SUBNET> using alevel4 = ares<32, ares<32, ares<32, SUBNET>>>;

using EmbedderNet = dlib::loss_metric<dlib::fc_no_bias<
    128, dlib::avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<dlib::max_pool<
             3, 3, 2, 2,
             dlib::relu<dlib::affine<dlib::con<32, 7, 7, 2, 2,
                                               dlib::input_rgb_image_sized<150>>>>>>>>>>>>>;

constexpr int kChipSize = 150;

// YuNet's sub-pixel box as an integer Box covering the same pixels: the corners are rounded, so a
// box [x, x + w) holds the columns round(x) .. round(x + w) - 1, the inclusive rectangle dlib's
// detectors report.
Box ToBox(const YunetFace& f) {
  const int64_t x0 = std::llround(f.x), y0 = std::llround(f.y);
  const int64_t x1 = std::llround(f.x + f.w), y1 = std::llround(f.y + f.h);
  return Box{x0, y0, std::max<int64_t>(1, x1 - x0), std::max<int64_t>(1, y1 - y0)};
}

// Adds the wall and thread-CPU seconds since construction to the sinks when it goes out of scope.
class StageTimer {
 public:
  StageTimer(double& wall, double& cpu)
      : wall_(wall), cpu_(cpu), start_(std::chrono::steady_clock::now()), cpu_start_(ThreadCpuSeconds()) {}
  ~StageTimer() {
    wall_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    cpu_ += ThreadCpuSeconds() - cpu_start_;
  }
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  double& wall_;
  double& cpu_;
  std::chrono::steady_clock::time_point start_;
  double cpu_start_;
};

class DlibAnalyzer final : public FaceAnalyzer {
 public:
  // sp5 / sp68: the landmark models options.embedding.alignment needs (the other one is empty).
  DlibAnalyzer(const AnalyzerOptions& options, dlib::shape_predictor sp5, dlib::shape_predictor sp68,
               EmbedderNet net, std::unique_ptr<CnnDetector> cnn, Result<std::unique_ptr<YunetDetector>> yunet,
               Result<std::unique_ptr<SfaceEmbedder>> sface)
      : options_(options),
        hog_(LoadFrontalFaceDetector()),  // a copy per analyzer (worker)
        sp5_(std::move(sp5)),
        sp68_(std::move(sp68)),
        net_(std::move(net)),
        cnn_(std::move(cnn)),
        yunet_(std::move(yunet)),
        sface_(std::move(sface)) {}

  Result<std::vector<Face>> Analyze(const RgbImage& image) override {
    try {
      return AnalyzeOrThrow(image);
    } catch (const std::exception& e) {
      return Fail(ErrorCode::kInternal, std::string("dlib failed on this image: ") + e.what());
    }
  }

  Result<std::vector<Face>> AnalyzeBoxes(const RgbImage& image, const std::vector<Box>& boxes) override {
    try {
      std::vector<Detection> dets;
      if (sface()) return Fail(ErrorCode::kInvalidArgument, "SFace aligns faces on YuNet's landmarks: it cannot embed a bare box");
      for (const Box& b : boxes) dets.push_back(Detection{b, 0.0, std::nullopt});
      return Describe(ToDlib(image), dets);
    } catch (const std::exception& e) {
      return Fail(ErrorCode::kInternal, std::string("dlib failed on this image: ") + e.what());
    }
  }

  Result<RgbImage> Chip(const RgbImage& image, const Face& face) override {
    if (sface()) {
      FivePoints points;
      for (size_t k = 0; k < face.landmarks.size(); ++k) {
        points[2 * k] = static_cast<float>(face.landmarks[k].x);
        points[2 * k + 1] = static_cast<float>(face.landmarks[k].y);
      }
      return SfaceEmbedder::Align(image, points);
    }
    try {
      std::vector<dlib::point> parts;
      for (const Point& p : face.landmarks) parts.emplace_back(p.x, p.y);
      dlib::full_object_detection shape(ToRect(face.box), parts);
      dlib::matrix<dlib::rgb_pixel> chip;
      dlib::extract_image_chip(ToDlib(image), dlib::get_face_chip_details(shape, kChipSize, options_.chip_padding),
                               chip);
      RgbImage out{static_cast<int>(chip.nc()), static_cast<int>(chip.nr()), {}};
      out.pixels.reserve(static_cast<size_t>(out.width) * out.height * 3);
      for (long r = 0; r < chip.nr(); ++r)
        for (long c = 0; c < chip.nc(); ++c) {
          const dlib::rgb_pixel& px = chip(r, c);
          out.pixels.insert(out.pixels.end(), {px.red, px.green, px.blue});
        }
      return out;
    } catch (const std::exception& e) {
      return Fail(ErrorCode::kInternal, std::string("dlib failed to extract a face chip: ") + e.what());
    }
  }

  std::unique_ptr<FaceAnalyzer> Clone() const override {
    // A YuNet clone parses the bytes the first analyzer verified and parsed: should it still fail,
    // the clone reports it on its first detection (Clone() cannot fail).
    return std::make_unique<DlibAnalyzer>(options_, sp5_, sp68_, net_, cnn_ ? cnn_->Clone() : nullptr,
                                          CloneOf(yunet_), CloneOf(sface_));
  }

  AnalyzerSeconds Seconds() const override { return seconds_; }

 private:
  bool sface() const { return options_.embedding.model == EmbeddingModel::kSface; }

  // A clone of an OpenCV model (null, or the error of the first clone, stays so).
  template <typename Model>
  static Result<std::unique_ptr<Model>> CloneOf(const Result<std::unique_ptr<Model>>& model) {
    if (!model) return std::unexpected(model.error());
    if (!*model) return std::unique_ptr<Model>();
    return (*model)->Clone();
  }

  unsigned long batch_size() const { return static_cast<unsigned long>(std::max(1, options_.embed_batch)); }

  std::vector<Detection> Detect(const RgbImage& image, const dlib::matrix<dlib::rgb_pixel>& img,
                                const DetectPass& pass) {
    if (pass.detector == DetectorKind::kCnn) return cnn_->Detect(image, pass.upsample);
    if (pass.detector == DetectorKind::kYunet) return DetectYunet(image, pass.min_score);
    return DetectHog(hog_, img, pass.upsample, pass.adjust_threshold);
  }

  // Throws on failure, as dlib does: Analyze reports it as kInternal.
  std::vector<Detection> DetectYunet(const RgbImage& image, double min_score) {
    if (!yunet_) throw std::runtime_error(yunet_.error().message);
    YunetOptions options;
    options.score_threshold = static_cast<float>(min_score);
    auto faces = (*yunet_)->Detect(image, options);
    if (!faces) throw std::runtime_error(faces.error().message);
    std::vector<Detection> out;
    out.reserve(faces->size());
    for (const YunetFace& f : *faces) out.push_back({ToBox(f), f.score, f.landmarks});
    return out;
  }

  // The first pass, then the retries while nothing is found. With options_.detect_max_side, a
  // larger image is searched on a copy scaled down to that side and the boxes are scaled back to
  // `image`'s coordinates.
  std::vector<Detection> DetectFaces(const RgbImage& image, const dlib::matrix<dlib::rgb_pixel>& img) {
    const int side = std::max(image.width, image.height);
    const bool reduce = options_.detect_max_side > 0 && side > options_.detect_max_side;
    RgbImage small;
    dlib::matrix<dlib::rgb_pixel> small_dlib;
    if (reduce) {
      small = ResizeToMaxSide(image, options_.detect_max_side);
      small_dlib = ToDlib(small);
    }
    const RgbImage& at = reduce ? small : image;
    const dlib::matrix<dlib::rgb_pixel>& at_dlib = reduce ? small_dlib : img;
    std::vector<Detection> dets = Detect(at, at_dlib, {options_.detector, options_.upsample, 0.0, options_.min_score});
    for (size_t p = 0; dets.empty() && p < options_.retry.size(); ++p) dets = Detect(at, at_dlib, options_.retry[p]);
    if (reduce) {
      const double sx = static_cast<double>(image.width) / small.width;
      const double sy = static_cast<double>(image.height) / small.height;
      for (Detection& d : dets) {
        const double x0 = d.box.x * sx, y0 = d.box.y * sy;
        const double x1 = (d.box.x + d.box.w) * sx, y1 = (d.box.y + d.box.h) * sy;
        if (d.points)
          for (size_t k = 0; k < d.points->size(); k += 2) {
            (*d.points)[k] = static_cast<float>((*d.points)[k] * sx);
            (*d.points)[k + 1] = static_cast<float>((*d.points)[k + 1] * sy);
          }
        d.box.x = std::llround(x0);
        d.box.y = std::llround(y0);
        d.box.w = std::max<int64_t>(1, std::llround(x1) - d.box.x);
        d.box.h = std::max<int64_t>(1, std::llround(y1) - d.box.y);
      }
    }
    return dets;
  }

  // The descriptor of each chip under options_.embedding. Plain is one batch through the network,
  // exactly as dlib's Python binding computes it; flip and jitter average several forward passes.
  std::vector<dlib::matrix<float, 0, 1>> Embed(std::vector<dlib::matrix<dlib::rgb_pixel>>& batch) {
    const EmbeddingMode& mode = options_.embedding;
    if (!mode.flip && mode.jitter < 2) return net_(batch, batch_size());
    std::vector<dlib::matrix<float, 0, 1>> out;
    out.reserve(batch.size());
    for (const auto& chip : batch) {
      std::vector<dlib::matrix<dlib::rgb_pixel>> copies;
      if (mode.flip) {
        copies.push_back(chip);
        copies.emplace_back();
        dlib::flip_image_left_right(chip, copies.back());
      } else {
        dlib::rand rnd(0);  // seeded per face: the same chip always gives the same descriptor
        for (int j = 0; j < mode.jitter; ++j) copies.push_back(dlib::jitter_image(chip, rnd));
      }
      std::vector<dlib::matrix<float, 0, 1>> descriptors = net_(copies, batch_size());
      dlib::matrix<float, 0, 1> mean = descriptors[0];
      for (size_t j = 1; j < descriptors.size(); ++j) mean += descriptors[j];
      out.push_back(mean / static_cast<float>(descriptors.size()));
    }
    return out;
  }

  std::vector<Face> AnalyzeOrThrow(const RgbImage& image) {
    dlib::matrix<dlib::rgb_pixel> img;
    std::vector<Detection> dets;
    {
      StageTimer timer(seconds_.detect, seconds_.detect_cpu);
      img = ToDlib(image);
      dets = DetectFaces(image, img);
    }
    if (options_.min_face > 0)
      std::erase_if(dets, [&](const Detection& d) { return std::min(d.box.w, d.box.h) < options_.min_face; });
    return sface() ? DescribeSface(image, dets) : Describe(img, dets);
  }

  // SFace: each face aligned on YuNet's landmarks (stored, rounded, as the face's landmarks, in
  // YuNet's order) and embedded by SfaceEmbedder. Throws on failure, as dlib does.
  std::vector<Face> DescribeSface(const RgbImage& image, const std::vector<Detection>& dets) {
    if (!sface_) throw std::runtime_error(sface_.error().message);
    std::vector<Face> faces(dets.size());
    std::vector<RgbImage> crops;
    std::optional<StageTimer> timer(std::in_place, seconds_.landmarks, seconds_.landmarks_cpu);
    for (size_t i = 0; i < dets.size(); ++i) {
      if (!dets[i].points) throw std::runtime_error("SFace needs YuNet's landmarks, and this face has none");
      const FivePoints& p = *dets[i].points;
      faces[i].box = dets[i].box;
      faces[i].det_score = dets[i].score;
      for (size_t k = 0; k < faces[i].landmarks.size(); ++k)
        faces[i].landmarks[k] = Point{std::llround(p[2 * k]), std::llround(p[2 * k + 1])};
      auto crop = SfaceEmbedder::Align(image, p);
      if (!crop) throw std::runtime_error(crop.error().message);
      crops.push_back(std::move(*crop));
    }
    timer.emplace(seconds_.embed, seconds_.embed_cpu);
    auto embeddings = (*sface_)->Embed(crops);
    if (!embeddings) throw std::runtime_error(embeddings.error().message);
    for (size_t i = 0; i < faces.size(); ++i) faces[i].embedding = (*embeddings)[i];
    return faces;
  }

  // Landmarks, aligned chips and embeddings of the faces at `dets`. With both alignments, each
  // face's descriptor is the mean of its 5-point chip's and its 68-point chip's.
  std::vector<Face> Describe(const dlib::matrix<dlib::rgb_pixel>& img, const std::vector<Detection>& dets) {
    std::vector<Face> faces(dets.size());
    if (dets.empty()) return faces;

    const Alignment alignment = options_.embedding.alignment;
    std::vector<dlib::chip_details> chips_at;
    std::optional<StageTimer> timer(std::in_place, seconds_.landmarks, seconds_.landmarks_cpu);
    for (size_t i = 0; i < dets.size(); ++i) {
      faces[i].box = dets[i].box;
      faces[i].det_score = dets[i].score;
      if (alignment != Alignment::k68) {
        dlib::full_object_detection shape = sp5_(img, ToRect(dets[i].box));
        for (unsigned long k = 0; k < shape.num_parts() && k < faces[i].landmarks.size(); ++k)
          faces[i].landmarks[k] = Point{shape.part(k).x(), shape.part(k).y()};
        chips_at.push_back(dlib::get_face_chip_details(shape, kChipSize, options_.chip_padding));
      }
    }
    if (alignment != Alignment::k5) {
      for (size_t i = 0; i < dets.size(); ++i) {
        dlib::full_object_detection shape = sp68_(img, ToRect(dets[i].box));
        if (alignment == Alignment::k68) {
          // Stored as the 5-point model's points (outer and inner corner of each eye, nose base),
          // so that Chip() and the database keep one landmark layout.
          constexpr unsigned long kAs5[5] = {45, 42, 36, 39, 33};
          for (size_t k = 0; k < 5; ++k)
            faces[i].landmarks[k] = Point{shape.part(kAs5[k]).x(), shape.part(kAs5[k]).y()};
        }
        chips_at.push_back(dlib::get_face_chip_details(shape, kChipSize, options_.chip_padding));
      }
    }
    // Each alignment's chips are extracted and embedded as a group of their own: a face's
    // descriptor depends a little (up to ~0.02) on the other chips handled in the same call, so
    // mixing the groups would make the both-alignment mean differ from its two single-alignment
    // descriptors.
    timer.emplace(seconds_.embed, seconds_.embed_cpu);
    std::vector<dlib::matrix<float, 0, 1>> descriptors;
    for (size_t start = 0; start < chips_at.size(); start += faces.size()) {
      std::vector<dlib::chip_details> group(chips_at.begin() + static_cast<long>(start),
                                            chips_at.begin() + static_cast<long>(start + faces.size()));
      dlib::array<dlib::matrix<dlib::rgb_pixel>> chips;
      dlib::extract_image_chips(img, group, chips);
      std::vector<dlib::matrix<dlib::rgb_pixel>> batch(chips.begin(), chips.end());
      for (auto& d : Embed(batch)) descriptors.push_back(std::move(d));
    }
    timer.reset();
    for (size_t i = 0; i < faces.size(); ++i) {
      dlib::matrix<float, 0, 1> d = descriptors[i];
      if (alignment == Alignment::kBoth) d = (d + descriptors[i + faces.size()]) / 2.0f;
      for (int k = 0; k < kEmbeddingDim; ++k) faces[i].embedding[k] = d(k);
    }
    return faces;
  }

  AnalyzerOptions options_;
  dlib::frontal_face_detector hog_;
  dlib::shape_predictor sp5_, sp68_;
  EmbedderNet net_;
  std::unique_ptr<CnnDetector> cnn_;
  Result<std::unique_ptr<YunetDetector>> yunet_;  // null when no pass uses YuNet
  Result<std::unique_ptr<SfaceEmbedder>> sface_;  // null unless the model is SFace
  AnalyzerSeconds seconds_;
};

}  // namespace

Result<std::unique_ptr<FaceAnalyzer>> LoadDlibAnalyzer(const std::filesystem::path& models_dir,
                                                       const AnalyzerOptions& options) {
  const Alignment alignment = options.embedding.alignment;
  const bool sface = options.embedding.model == EmbeddingModel::kSface;
  // Each file is read once: its pin is checked on the bytes that are then deserialised.
  std::optional<std::string> sp5_bytes, sp68_bytes, net_bytes;
  if (!sface && alignment != Alignment::k68) {
    FS_ASSIGN(sp5_bytes, ReadVerifiedModel(models_dir, ModelId::kShape5));
  }
  if (!sface && alignment != Alignment::k5) {
    FS_ASSIGN(sp68_bytes, ReadVerifiedModel(models_dir, ModelId::kShape68));
  }
  if (!sface) {
    FS_ASSIGN(net_bytes, ReadVerifiedModel(models_dir, ModelId::kResnet));
  }
  auto uses = [&](DetectorKind kind) {
    return options.detector == kind || std::any_of(options.retry.begin(), options.retry.end(),
                                                   [kind](const DetectPass& p) { return p.detector == kind; });
  };
  std::unique_ptr<CnnDetector> cnn;
  if (uses(DetectorKind::kCnn)) {
    FS_ASSIGN(auto cnn_path, VerifiedModelPath(models_dir, ModelId::kCnnDetector));
    FS_ASSIGN(cnn, CnnDetector::Load(cnn_path));
  }
  std::unique_ptr<YunetDetector> yunet;  // read and verified once; clones share its bytes
  if (uses(DetectorKind::kYunet)) {
    FS_ASSIGN(yunet, YunetDetector::Load(models_dir));
  }
  std::unique_ptr<SfaceEmbedder> sface_embedder;
  if (sface) {
    if (options.detector != DetectorKind::kYunet)
      return Fail(ErrorCode::kInvalidArgument, "the SFace model aligns faces on YuNet's landmarks: detect with yunet");
    FS_ASSIGN(sface_embedder, SfaceEmbedder::Load(models_dir));
  }
  dlib::shape_predictor sp5, sp68;
  EmbedderNet net;
  try {
    auto from_bytes = [](const std::string& bytes, auto& model) {
      std::ispanstream in(std::span<const char>(bytes.data(), bytes.size()));  // no copy
      dlib::deserialize(model, in);
    };
    if (sp5_bytes) from_bytes(*sp5_bytes, sp5);
    if (sp68_bytes) from_bytes(*sp68_bytes, sp68);
    if (net_bytes) from_bytes(*net_bytes, net);
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kModel, std::string("cannot load dlib model: ") + e.what());
  }
  return std::make_unique<DlibAnalyzer>(options, std::move(sp5), std::move(sp68), std::move(net), std::move(cnn),
                                        std::move(yunet), std::move(sface_embedder));
}

}  // namespace facesearch
