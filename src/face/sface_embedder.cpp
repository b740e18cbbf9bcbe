// SFace through cv::dnn, as OpenCV's FaceRecognizerSF (modules/objdetect/src/face_recognize.cpp)
// aligns and embeds: getSimilarityTransformMatrix (Umeyama's least-squares similarity from the 5
// landmarks onto the reference points), warpAffine to 112×112 with bilinear interpolation and a
// black border, blobFromImage without mean or scaling in RGB order, one forward pass.
#include "face/sface_embedder.h"

#include <cfloat>
#include <cmath>
#include <string>
#include <utility>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

#include "face/models.h"

namespace facesearch {
namespace {

// SFace's reference points in the 112×112 crop, in YuNet's landmark order.
constexpr float kReference[5][2] = {
    {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {41.5493f, 92.3655f}, {70.7299f, 92.2041f}};

Result<cv::dnn::Net> ParseNet(const std::string& bytes) {
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
    if (net.empty()) return Fail(ErrorCode::kModel, "OpenCV read an empty network from the SFace model");
    return net;
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kModel, std::string("OpenCV cannot load the SFace model: ") + e.what());
  }
}

// FaceRecognizerSF's getSimilarityTransformMatrix: the rotation, uniform scale and translation that
// best map `points` onto kReference (Umeyama 1991), as a 2×3 matrix for warpAffine. Computed in
// the same precision (float means, double moments) so the crops are FaceRecognizerSF's.
cv::Mat SimilarityTransform(const FivePoints& points) {
  float src_mean[2] = {0, 0}, dst_mean[2] = {0, 0};
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 2; ++k) {
      src_mean[k] += points[2 * i + k] / 5;
      dst_mean[k] += kReference[i][k] / 5;
    }
  float src[5][2], dst[5][2];
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 2; ++k) {
      src[i][k] = points[2 * i + k] - src_mean[k];
      dst[i][k] = kReference[i][k] - dst_mean[k];
    }
  double a[2][2] = {{0, 0}, {0, 0}}, variance = 0;
  for (int i = 0; i < 5; ++i) {
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) a[r][c] += static_cast<double>(dst[i][r]) * src[i][c] / 5;
    variance += (static_cast<double>(src[i][0]) * src[i][0] + static_cast<double>(src[i][1]) * src[i][1]) / 5;
  }
  cv::Mat s, u, vt;
  cv::SVD::compute(cv::Mat(2, 2, CV_64F, a), s, u, vt);
  const double s0 = s.at<double>(0), s1 = s.at<double>(1);
  const double tol = std::max(s0, s1) * 2 * FLT_MIN;
  const int rank = (s0 > tol) + (s1 > tol);
  // A reflection is never allowed: the last singular direction is flipped when it would be one.
  double d1 = a[0][0] * a[1][1] - a[0][1] * a[1][0] < 0 ? -1 : 1;
  if (rank == 1) d1 = cv::determinant(u) * cv::determinant(vt) > 0 ? 1 : -1;
  cv::Mat rotation = u * cv::Mat::diag(cv::Mat(cv::Vec2d(1.0, d1))) * vt;
  // Rank 1 keeps its own d1 for the rotation but scales with the original one, as OpenCV does.
  const double scale_d1 = rank == 1 ? (a[0][0] * a[1][1] - a[0][1] * a[1][0] < 0 ? -1 : 1) : d1;
  const double scale = variance > 0 ? (s0 + s1 * scale_d1) / variance : 1.0;
  cv::Mat m(2, 3, CV_64F);
  for (int r = 0; r < 2; ++r) {
    const double rx = rotation.at<double>(r, 0), ry = rotation.at<double>(r, 1);
    m.at<double>(r, 0) = scale * rx;
    m.at<double>(r, 1) = scale * ry;
    m.at<double>(r, 2) = dst_mean[r] - scale * (rx * src_mean[0] + ry * src_mean[1]);
  }
  return m;
}

}  // namespace

struct SfaceEmbedder::Impl {
  std::shared_ptr<const std::string> bytes;  // the verified model, shared by clones
  cv::dnn::Net net;
};

SfaceEmbedder::SfaceEmbedder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SfaceEmbedder::~SfaceEmbedder() = default;

Result<std::unique_ptr<SfaceEmbedder>> SfaceEmbedder::Load(const std::filesystem::path& models_dir) {
  FS_ASSIGN(std::string bytes, ReadVerifiedModel(models_dir, ModelId::kSface));
  auto impl = std::make_unique<Impl>();
  impl->bytes = std::make_shared<const std::string>(std::move(bytes));
  FS_ASSIGN(impl->net, ParseNet(*impl->bytes));
  return std::unique_ptr<SfaceEmbedder>(new SfaceEmbedder(std::move(impl)));
}

Result<std::unique_ptr<SfaceEmbedder>> SfaceEmbedder::Clone() const {
  auto impl = std::make_unique<Impl>();
  impl->bytes = impl_->bytes;
  FS_ASSIGN(impl->net, ParseNet(*impl->bytes));
  return std::unique_ptr<SfaceEmbedder>(new SfaceEmbedder(std::move(impl)));
}

Result<RgbImage> SfaceEmbedder::Align(const RgbImage& image, const FivePoints& points) {
  try {
    const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
    RgbImage out{kSfaceChipSize, kSfaceChipSize, std::vector<uint8_t>(size_t{kSfaceChipSize} * kSfaceChipSize * 3)};
    cv::Mat crop(kSfaceChipSize, kSfaceChipSize, CV_8UC3, out.pixels.data());
    cv::warpAffine(rgb, crop, SimilarityTransform(points), crop.size(), cv::INTER_LINEAR);
    return out;
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kInternal, std::string("aligning a face for SFace failed in OpenCV: ") + e.what());
  }
}

Result<std::vector<Embedding>> SfaceEmbedder::Embed(const std::vector<RgbImage>& crops) {
  std::vector<Embedding> out;
  out.reserve(crops.size());
  try {
    for (const RgbImage& c : crops) {
      const cv::Mat rgb(c.height, c.width, CV_8UC3, const_cast<uint8_t*>(c.pixels.data()));
      impl_->net.setInput(cv::dnn::blobFromImage(rgb, 1.0, cv::Size(kSfaceChipSize, kSfaceChipSize)));
      cv::Mat feature = impl_->net.forward();
      if (feature.type() != CV_32F || feature.total() != static_cast<size_t>(kEmbeddingDim))
        return Fail(ErrorCode::kInternal, "the SFace model gave " + std::to_string(feature.total()) +
                                              " values, expected " + std::to_string(kEmbeddingDim));
      const float* f = feature.ptr<float>();
      double norm = 0;
      for (int k = 0; k < kEmbeddingDim; ++k) norm += static_cast<double>(f[k]) * f[k];
      norm = std::sqrt(norm);
      if (!(norm > 0)) return Fail(ErrorCode::kInternal, "the SFace model gave a zero feature vector");
      Embedding e;
      for (int k = 0; k < kEmbeddingDim; ++k) e[k] = static_cast<float>(f[k] / norm);
      out.push_back(e);
    }
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kInternal, std::string("SFace embedding failed in OpenCV: ") + e.what());
  }
  return out;
}

}  // namespace facesearch
