// XMP sidecars with MWG face regions (the Metadata Working Group's mwg-rs schema, which digiKam,
// Lightroom and Picasa read and write), for `export --xmp DIR`.
#pragma once

#include <string>
#include <vector>

#include "facesearch/types.h"

namespace facesearch::cli {

// One XMP packet holding a Face region per face of one image: its box, clipped to the image and
// normalised (centre x, y and w, h as fractions of AppliedToDimensions: the decoded image, EXIF
// orientation applied), typed Face, unnamed (facesearch does not know who it is), described as
// "facesearch face ID". Needs the image's dimensions (faces[0].image_width/height > 0).
std::string MwgRegionsXmp(const std::vector<FaceRecord>& faces);

}  // namespace facesearch::cli
