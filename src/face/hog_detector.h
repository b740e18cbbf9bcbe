// dlib's HOG face detector with the upsampling rule of dlib's Python binding. Internal to the dlib
// adapter (includes dlib headers).
//
// Kept in its own translation unit because it is compiled with different floating-point flags
// from dlib_analyzer.cpp: the reference build's HOG boxes are reproduced by a plain x86-64 build,
// its landmarks by an AVX2/FMA build (measured by scripts/check/parity.sh; see CMakeLists.txt).
#pragma once

#include <dlib/image_processing/frontal_face_detector.h>
#include <vector>

#include "face/cnn_detector.h"

namespace facesearch {

// dlib's frontal face detector, deserialised from the decoded copy embedded at build time
// (src/face/gen_hog_detector.cpp) the first time it is asked for; later calls copy it. Equal to
// dlib::get_frontal_face_detector(), without its ~0.25 s decompression per call. Thread-safe.
dlib::frontal_face_detector LoadFrontalFaceDetector();

// pyramid_up `upsample` times, detect with `adjust_threshold` (0: dlib's default; a detection is
// kept when its SVM score exceeds it), map each box back down (run_detector_with_upscale1 in
// dlib's tools/python). Not thread-safe per detector.
std::vector<Detection> DetectHog(dlib::frontal_face_detector& detector,
                                 const dlib::matrix<dlib::rgb_pixel>& img, int upsample,
                                 double adjust_threshold = 0.0);

}  // namespace facesearch
