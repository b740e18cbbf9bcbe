// YuNet through cv::dnn, decoded as OpenCV >= 4.8's FaceDetectorYNImpl does
// (modules/objdetect/src/face_detect.cpp): the image is padded at the bottom and right to a multiple
// of 32, fed as a BGR float blob without mean or scaling, and each of the strides 8, 16 and 32 gives
// per-cell outputs cls_S, obj_S (1 value), bbox_S (4) and kps_S (10), decoded against the cell's
// prior (column, row) × stride. Faces below the score threshold are dropped before NMS, which runs
// on integer-truncated boxes exactly as there (and not at all for a single face).
#include "face/yunet_detector.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>

#include "face/models.h"

namespace facesearch {
namespace {

constexpr int kDivisor = 32;
constexpr std::array<int, 3> kStrides = {8, 16, 32};

int PadTo(int n) { return ((n - 1) / kDivisor + 1) * kDivisor; }

Result<cv::dnn::Net> ParseNet(const std::string& bytes) {
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
    if (net.empty()) return Fail(ErrorCode::kModel, "OpenCV read an empty network from the YuNet model");
    return net;
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kModel, std::string("OpenCV cannot load the YuNet model: ") + e.what());
  }
}

// The outputs of one stride, as flat float arrays of rows × cols cells.
struct StrideOutputs {
  const float* cls;
  const float* obj;
  const float* bbox;
  const float* kps;
};

void DecodeStride(const StrideOutputs& o, int stride, int rows, int cols, float score_threshold,
                  std::vector<YunetFace>& faces) {
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const size_t idx = static_cast<size_t>(r) * cols + c;
      const float cls = std::clamp(o.cls[idx], 0.f, 1.f);
      const float obj = std::clamp(o.obj[idx], 0.f, 1.f);
      const float score = std::sqrt(cls * obj);
      if (score < score_threshold) continue;
      const float* b = o.bbox + idx * 4;
      const float cx = (c + b[0]) * stride;
      const float cy = (r + b[1]) * stride;
      const float w = std::exp(b[2]) * stride;
      const float h = std::exp(b[3]) * stride;
      YunetFace f;
      f.x = cx - w / 2.f;
      f.y = cy - h / 2.f;
      f.w = w;
      f.h = h;
      const float* k = o.kps + idx * 10;
      for (int n = 0; n < 5; ++n) {
        f.landmarks[2 * n] = (k[2 * n] + c) * stride;
        f.landmarks[2 * n + 1] = (k[2 * n + 1] + r) * stride;
      }
      f.score = score;
      faces.push_back(f);
    }
  }
}

std::vector<YunetFace> Nms(std::vector<YunetFace> faces, const YunetOptions& options) {
  if (faces.size() <= 1) return faces;
  std::vector<cv::Rect2i> boxes;
  std::vector<float> scores;
  for (const YunetFace& f : faces) {
    boxes.emplace_back(int(f.x), int(f.y), int(f.w), int(f.h));
    scores.push_back(f.score);
  }
  std::vector<int> keep;
  cv::dnn::NMSBoxes(boxes, scores, options.score_threshold, options.nms_threshold, keep, 1.f, options.top_k);
  std::vector<YunetFace> out;
  out.reserve(keep.size());
  for (int i : keep) out.push_back(faces[static_cast<size_t>(i)]);
  return out;
}

}  // namespace

struct YunetDetector::Impl {
  std::shared_ptr<const std::string> bytes;  // the verified model, shared by clones
  cv::dnn::Net net;
};

YunetDetector::YunetDetector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
YunetDetector::~YunetDetector() = default;

Result<std::unique_ptr<YunetDetector>> YunetDetector::Load(const std::filesystem::path& models_dir) {
  FS_ASSIGN(std::string bytes, ReadVerifiedModel(models_dir, ModelId::kYunet));
  auto impl = std::make_unique<Impl>();
  impl->bytes = std::make_shared<const std::string>(std::move(bytes));
  FS_ASSIGN(impl->net, ParseNet(*impl->bytes));
  return std::unique_ptr<YunetDetector>(new YunetDetector(std::move(impl)));
}

Result<std::unique_ptr<YunetDetector>> YunetDetector::Clone() const {
  auto impl = std::make_unique<Impl>();
  impl->bytes = impl_->bytes;
  FS_ASSIGN(impl->net, ParseNet(*impl->bytes));
  return std::unique_ptr<YunetDetector>(new YunetDetector(std::move(impl)));
}

Result<std::vector<YunetFace>> YunetDetector::Detect(const RgbImage& image, const YunetOptions& options) {
  if (image.width <= 0 || image.height <= 0) return std::vector<YunetFace>{};
  const int pad_w = PadTo(image.width), pad_h = PadTo(image.height);
  try {
    const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
    cv::Mat bgr, padded;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    cv::copyMakeBorder(bgr, padded, 0, pad_h - image.height, 0, pad_w - image.width, cv::BORDER_CONSTANT, 0);
    impl_->net.setInput(cv::dnn::blobFromImage(padded));
    static const std::vector<cv::String> kOutputs = {"cls_8",  "cls_16",  "cls_32",  "obj_8",
                                                     "obj_16", "obj_32",  "bbox_8",  "bbox_16",
                                                     "bbox_32", "kps_8",  "kps_16",  "kps_32"};
    std::vector<cv::Mat> blobs;
    impl_->net.forward(blobs, kOutputs);
    if (blobs.size() != kOutputs.size())
      return Fail(ErrorCode::kInternal, "the YuNet model gave " + std::to_string(blobs.size()) + " outputs, expected 12");
    std::vector<YunetFace> faces;
    for (size_t i = 0; i < kStrides.size(); ++i) {
      const int stride = kStrides[i];
      const int cols = pad_w / stride, rows = pad_h / stride;
      const size_t cells = static_cast<size_t>(rows) * cols;
      const std::array<size_t, 4> widths = {1, 1, 4, 10};  // cls, obj, bbox, kps per cell
      StrideOutputs o{};
      const float** slots[4] = {&o.cls, &o.obj, &o.bbox, &o.kps};
      for (size_t k = 0; k < 4; ++k) {
        const cv::Mat& m = blobs[i + kStrides.size() * k];
        if (m.type() != CV_32F || m.total() != cells * widths[k])
          return Fail(ErrorCode::kInternal, "the YuNet output " + kOutputs[i + kStrides.size() * k] +
                                                " does not have the expected shape for a " +
                                                std::to_string(pad_w) + "x" + std::to_string(pad_h) + " input");
        *slots[k] = m.ptr<float>();
      }
      DecodeStride(o, stride, rows, cols, options.score_threshold, faces);
    }
    return Nms(std::move(faces), options);
  } catch (const cv::Exception& e) {
    return Fail(ErrorCode::kInternal, std::string("YuNet detection failed in OpenCV: ") + e.what());
  }
}

}  // namespace facesearch
