// dlib's MMOD CNN face detector; the network as declared in dlib's
// examples/dnn_mmod_face_detection_ex.cpp, used the way dlib's Python cnn_face_detection_model_v1
// uses it.
#include "face/cnn_detector.h"

#include <dlib/dnn.h>
#include <dlib/image_transforms.h>

#include "face/dlib_convert.h"

namespace facesearch {
namespace {

template <long num_filters, typename SUBNET>
using con5d = dlib::con<num_filters, 5, 5, 2, 2, SUBNET>;
template <long num_filters, typename SUBNET>
using con5 = dlib::con<num_filters, 5, 5, 1, 1, SUBNET>;
template <typename SUBNET>
using downsampler = dlib::relu<dlib::affine<
    con5d<32, dlib::relu<dlib::affine<con5d<32, dlib::relu<dlib::affine<con5d<16, SUBNET>>>>>>>>>;
template <typename SUBNET>
using rcon5 = dlib::relu<dlib::affine<con5<45, SUBNET>>>;
using MmodNet = dlib::loss_mmod<dlib::con<
    1, 9, 9, 1, 1,
    rcon5<rcon5<rcon5<downsampler<dlib::input_rgb_image_pyramid<dlib::pyramid_down<6>>>>>>>>;

}  // namespace

struct CnnDetector::Impl {
  MmodNet net;
};

CnnDetector::CnnDetector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CnnDetector::~CnnDetector() = default;

Result<std::unique_ptr<CnnDetector>> CnnDetector::Load(const std::filesystem::path& model_file) {
  auto impl = std::make_unique<Impl>();
  try {
    dlib::deserialize(model_file.string()) >> impl->net;
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kModel, "cannot load " + model_file.string() + ": " + e.what());
  }
  return std::unique_ptr<CnnDetector>(new CnnDetector(std::move(impl)));
}

std::unique_ptr<CnnDetector> CnnDetector::Clone() const {
  return std::unique_ptr<CnnDetector>(new CnnDetector(std::make_unique<Impl>(*impl_)));
}

std::vector<Detection> CnnDetector::Detect(const RgbImage& image, int upsample) {
  dlib::matrix<dlib::rgb_pixel> img = ToDlib(image);
  dlib::pyramid_down<2> pyr;
  for (int level = 0; level < upsample; ++level) dlib::pyramid_up(img, pyr);
  std::vector<Detection> out;
  for (const dlib::mmod_rect& d : impl_->net(img)) {
    dlib::rectangle r = pyr.rect_down(d.rect, static_cast<unsigned>(std::max(upsample, 0)));
    out.push_back({ToBox(r), d.detection_confidence, std::nullopt});
  }
  return out;
}

}  // namespace facesearch
