// Image-quality measures for face chips.
#pragma once

#include "image/decode.h"

namespace facesearch {

// Variance of the Laplacian (3x3 kernel) of the image's grey levels: low for blurred or
// featureless images, high for sharp ones. 0 for an empty image.
double LaplacianVariance(const RgbImage& image);

}  // namespace facesearch
