// Small face crops for reports (OpenCV stays in src/image).
#pragma once

#include <cstdint>

#include "facesearch/error.h"
#include "image/decode.h"

namespace facesearch {

// The rectangle x,y,w,h widened by `margin` times its size on every side, clipped to the image,
// then scaled down (never up) so that its longer side is at most max_side. Errors: kInvalidArgument
// when the rectangle lies wholly outside the image, kInternal when OpenCV fails.
Result<RgbImage> CropScaled(const RgbImage& image, int64_t x, int64_t y, int64_t w, int64_t h, double margin,
                            int max_side);

}  // namespace facesearch
