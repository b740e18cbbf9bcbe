#include "cli/xmp.h"

#include <algorithm>
#include <cstdio>

namespace facesearch::cli {
namespace {

std::string Fraction(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", std::clamp(v, 0.0, 1.0));
  return buf;
}

std::string Region(const FaceRecord& f) {
  const double w = f.image_width, h = f.image_height;
  const double x0 = std::clamp<double>(f.face.box.x, 0, w), y0 = std::clamp<double>(f.face.box.y, 0, h);
  const double x1 = std::clamp<double>(f.face.box.x + f.face.box.w, 0, w);
  const double y1 = std::clamp<double>(f.face.box.y + f.face.box.h, 0, h);
  return "     <rdf:li rdf:parseType=\"Resource\">\n"
         "      <mwg-rs:Type>Face</mwg-rs:Type>\n"
         "      <mwg-rs:Description>facesearch face " + std::to_string(f.face_id) + "</mwg-rs:Description>\n"
         "      <mwg-rs:Area stArea:x=\"" + Fraction((x0 + x1) / 2 / w) + "\" stArea:y=\"" + Fraction((y0 + y1) / 2 / h) +
         "\" stArea:w=\"" + Fraction((x1 - x0) / w) + "\" stArea:h=\"" + Fraction((y1 - y0) / h) +
         "\" stArea:unit=\"normalized\"/>\n"
         "     </rdf:li>\n";
}

}  // namespace

std::string MwgRegionsXmp(const std::vector<FaceRecord>& faces) {
  std::string regions;
  for (const FaceRecord& f : faces) regions += Region(f);
  const FaceRecord& first = faces.front();
  return "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
         "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
         " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
         "  <rdf:Description rdf:about=\"\"\n"
         "    xmlns:mwg-rs=\"http://www.metadataworkinggroup.com/schemas/regions/\"\n"
         "    xmlns:stDim=\"http://ns.adobe.com/xap/1.0/sType/Dimensions#\"\n"
         "    xmlns:stArea=\"http://ns.adobe.com/xmp/sType/Area#\">\n"
         "   <mwg-rs:Regions rdf:parseType=\"Resource\">\n"
         "    <mwg-rs:AppliedToDimensions stDim:w=\"" + std::to_string(first.image_width) + "\" stDim:h=\"" +
         std::to_string(first.image_height) + "\" stDim:unit=\"pixel\"/>\n"
         "    <mwg-rs:RegionList>\n"
         "     <rdf:Bag>\n" + regions +
         "     </rdf:Bag>\n"
         "    </mwg-rs:RegionList>\n"
         "   </mwg-rs:Regions>\n"
         "  </rdf:Description>\n"
         " </rdf:RDF>\n"
         "</x:xmpmeta>\n"
         "<?xpacket end=\"w\"?>\n";
}

}  // namespace facesearch::cli
