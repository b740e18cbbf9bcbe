#include "face/hog_detector.h"

#include "face/dlib_convert.h"

namespace facesearch {

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
  for (const auto& d : dets) out.push_back({ToBox(d.rect), d.detection_confidence});
  return out;
}

}  // namespace facesearch
