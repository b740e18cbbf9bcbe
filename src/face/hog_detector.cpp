#include "face/hog_detector.h"

#include <span>
#include <spanstream>
#include <stdexcept>

#include "face/dlib_convert.h"

namespace facesearch {
namespace generated {
extern const unsigned char kFrontalFaceDetector[];
extern const std::size_t kFrontalFaceDetectorSize;
}  // namespace generated

dlib::frontal_face_detector LoadFrontalFaceDetector() {
  static const dlib::frontal_face_detector detector = [] {
    std::ispanstream in(std::span<const char>(reinterpret_cast<const char*>(generated::kFrontalFaceDetector),
                                              generated::kFrontalFaceDetectorSize));
    dlib::frontal_face_detector d;
    dlib::deserialize(d, in);  // throws dlib::serialization_error only if the build embedded garbage
    return d;
  }();
  return detector;
}

std::vector<Detection> DetectHog(dlib::frontal_face_detector& detector,
                                 const dlib::matrix<dlib::rgb_pixel>& img, int upsample,
                                 double adjust_threshold) {
  std::vector<dlib::rect_detection> dets;
  if (upsample <= 0) {
    detector(img, dets, adjust_threshold);
  } else {
    dlib::pyramid_down<2> pyr;
    dlib::array2d<dlib::rgb_pixel> up;
    dlib::pyramid_up(img, up, pyr);
    for (int level = 1; level < upsample; ++level) dlib::pyramid_up(up, pyr);
    detector(up, dets, adjust_threshold);
    for (auto& d : dets) d.rect = pyr.rect_down(d.rect, static_cast<unsigned>(upsample));
  }
  std::vector<Detection> out;
  out.reserve(dets.size());
  for (const auto& d : dets) out.push_back({ToBox(d.rect), d.detection_confidence, std::nullopt});
  return out;
}

}  // namespace facesearch
