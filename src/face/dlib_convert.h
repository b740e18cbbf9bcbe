// Conversions between facesearch value types and dlib's. Include only from dlib adapter files.
#pragma once

#include <dlib/geometry/rectangle.h>
#include <dlib/matrix.h>
#include <dlib/pixel.h>

#include "facesearch/types.h"
#include "image/decode.h"

namespace facesearch {

inline dlib::matrix<dlib::rgb_pixel> ToDlib(const RgbImage& image) {
  dlib::matrix<dlib::rgb_pixel> m(image.height, image.width);
  const uint8_t* p = image.pixels.data();
  for (long r = 0; r < m.nr(); ++r)
    for (long c = 0; c < m.nc(); ++c, p += 3) m(r, c) = dlib::rgb_pixel(p[0], p[1], p[2]);
  return m;
}

// Box uses dlib's inclusive rectangle convention: w = right - left + 1.
inline Box ToBox(const dlib::rectangle& r) {
  return Box{r.left(), r.top(), static_cast<int64_t>(r.width()), static_cast<int64_t>(r.height())};
}

inline dlib::rectangle ToRect(const Box& b) {
  return dlib::rectangle(b.x, b.y, b.x + b.w - 1, b.y + b.h - 1);
}

}  // namespace facesearch
