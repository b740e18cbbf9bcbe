// Near-duplicate images and EXIF (issue #20): the perceptual hash and its grouping, the EXIF read
// of well-formed, rotated, GPS-tagged and malformed files (EXIF blocks written byte by byte here),
// and, end to end through the real binary, copies folded in query output, `info --duplicates`,
// EXIF fields in every format, XMP sidecars, and GPS erased by forget down to the bytes on disk.
#include <sqlite3.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "common/fs.h"
#include "image/decode.h"
#include "image/exif.h"
#include "image/phash.h"
#include "store/store.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// ---- an EXIF block (little-endian TIFF) written byte by byte ------------------------------------

std::string Le16(uint32_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF)}; }
std::string Le32(uint32_t v) { return Le16(v & 0xFFFF) + Le16(v >> 16); }

struct Entry {
  uint16_t tag, type;
  uint32_t count;
  std::string data;  // little-endian value bytes
};
Entry Ascii(uint16_t tag, const std::string& s) { return {tag, 2, static_cast<uint32_t>(s.size() + 1), s + '\0'}; }
Entry Short(uint16_t tag, uint16_t v) { return {tag, 3, 1, Le16(v)}; }
Entry Long(uint16_t tag, uint32_t v) { return {tag, 4, 1, Le32(v)}; }
Entry Rationals(uint16_t tag, std::vector<std::pair<uint32_t, uint32_t>> qs) {
  std::string d;
  for (auto [n, q] : qs) d += Le32(n) + Le32(q);
  return {tag, 5, static_cast<uint32_t>(qs.size()), d};
}

size_t IfdSize(const std::vector<Entry>& es) {
  size_t n = 2 + 12 * es.size() + 4;
  for (const Entry& e : es) n += e.data.size() > 4 ? e.data.size() + (e.data.size() & 1) : 0;
  return n;
}

// An IFD placed at offset `at` of the TIFF block, its out-of-line values right after it.
std::string Ifd(const std::vector<Entry>& es, uint32_t at) {
  std::string head = Le16(static_cast<uint32_t>(es.size())), tail;
  const uint32_t values_at = at + static_cast<uint32_t>(2 + 12 * es.size() + 4);
  for (const Entry& e : es) {
    head += Le16(e.tag) + Le16(e.type) + Le32(e.count);
    if (e.data.size() <= 4) {
      head += e.data + std::string(4 - e.data.size(), '\0');
    } else {
      head += Le32(values_at + static_cast<uint32_t>(tail.size()));
      tail += e.data + std::string(e.data.size() & 1, '\0');
    }
  }
  return head + Le32(0) + tail;
}

struct ExifSpec {
  std::string make, model, taken;  // taken: EXIF's "YYYY:MM:DD HH:MM:SS" (or anything, to break it)
  uint16_t orientation = 0;        // 0: no tag
  std::optional<Entry> latitude;   // GPSLatitude (tag 2), with "N"
  std::optional<Entry> longitude;  // GPSLongitude (tag 4), with "W"
};

// A camera make with a capture time or an orientation tag, without GPS.
ExifSpec Camera(const std::string& make, const std::string& taken, uint16_t orientation = 0) {
  ExifSpec s;
  s.make = make;
  s.taken = taken;
  s.orientation = orientation;
  return s;
}

// "II*\0", IFD0 (Make, Model, Orientation, pointers), the Exif IFD (DateTimeOriginal), the GPS IFD.
std::string ExifBlock(const ExifSpec& s) {
  std::vector<Entry> ifd0, exif, gps;
  if (!s.make.empty()) ifd0.push_back(Ascii(0x010F, s.make));
  if (!s.model.empty()) ifd0.push_back(Ascii(0x0110, s.model));
  if (s.orientation) ifd0.push_back(Short(0x0112, s.orientation));
  if (!s.taken.empty()) exif.push_back(Ascii(0x9003, s.taken));
  if (s.latitude) gps = {Ascii(1, "N"), *s.latitude, Ascii(3, "W"), *s.longitude};
  // Pointers are inline LONGs, so IFD0's size does not depend on their values.
  const size_t n0 = ifd0.size() + !exif.empty() + !gps.empty();
  const uint32_t exif_at = 8 + static_cast<uint32_t>(IfdSize(ifd0) + 12 * (n0 - ifd0.size()));
  const uint32_t gps_at = exif_at + static_cast<uint32_t>(exif.empty() ? 0 : IfdSize(exif));
  if (!exif.empty()) ifd0.push_back(Long(0x8769, exif_at));
  if (!gps.empty()) ifd0.push_back(Long(0x8825, gps_at));
  std::string block = std::string("II*\0", 4) + Le32(8) + Ifd(ifd0, 8);
  if (!exif.empty()) block += Ifd(exif, exif_at);
  if (!gps.empty()) block += Ifd(gps, gps_at);
  return block;
}

// `jpeg` with `tiff` as its EXIF APP1 segment, right after the start-of-image marker.
std::string WithExif(const std::string& jpeg, const std::string& tiff) {
  const size_t len = tiff.size() + 8;
  std::string app1 = std::string("\xFF\xE1", 2) + static_cast<char>(len >> 8) + static_cast<char>(len & 0xFF) +
                     std::string("Exif\0\0", 6) + tiff;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

// The San Francisco position the tests tag: 37°46'29.64" N, 122°25'9.84" W.
Entry TestLatitude() { return Rationals(2, {{37, 1}, {46, 1}, {296400, 10000}}); }
Entry TestLongitude() { return Rationals(4, {{122, 1}, {25, 1}, {98400, 10000}}); }
constexpr double kTestLat = 37.7749, kTestLon = -122.4194;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void Spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

cv::Mat Bgr(const fs::path& p) { return cv::imread(p.string(), cv::IMREAD_COLOR); }
std::string Jpeg(const cv::Mat& bgr, int quality) {
  std::vector<uchar> buf;
  REQUIRE(cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, quality}));
  return std::string(buf.begin(), buf.end());
}
cv::Mat Half(const cv::Mat& m) {
  cv::Mat out;
  cv::resize(m, out, cv::Size(m.cols / 2, m.rows / 2), 0, 0, cv::INTER_AREA);
  return out;
}
uint64_t HashOf(const std::string& bytes) {
  auto image = DecodeImage(bytes, {});
  REQUIRE(image);
  return PerceptualHash(*image);
}

}  // namespace

TEST_CASE("ReadExif returns the capture time, camera and GPS position of a JPEG's EXIF, and nothing for a photo without",
          "[media]") {
  const std::string plain = Jpeg(Bgr(TestImage("obama.jpg")), 90);
  const ExifRead none = ReadExif(plain);
  CHECK(none.metadata.empty());
  CHECK(none.problem.empty());

  ExifSpec spec{"FacesearchTestCam", "Model 7", "2021:06:05 14:03:22", 0, TestLatitude(), TestLongitude()};
  const ExifRead r = ReadExif(WithExif(plain, ExifBlock(spec)));
  INFO(r.problem);
  CHECK(r.problem.empty());
  CHECK(r.metadata.camera_make == "FacesearchTestCam");
  CHECK(r.metadata.camera_model == "Model 7");
  CHECK(r.metadata.taken_at == "2021-06-05T14:03:22");
  REQUIRE(r.metadata.latitude);
  CHECK(*r.metadata.latitude == Approx(kTestLat).margin(1e-6));
  CHECK(*r.metadata.longitude == Approx(kTestLon).margin(1e-6));

  // EXIF's "unknown" time is no time and no problem; control characters never reach the output.
  const ExifRead unknown = ReadExif(WithExif(plain, ExifBlock(Camera("Cam\x1B[31m", "0000:00:00 00:00:00"))));
  CHECK(unknown.problem.empty());
  CHECK(unknown.metadata.taken_at.empty());
  CHECK(unknown.metadata.camera_make == "Cam[31m");
}

TEST_CASE("ReadExif of malformed EXIF keeps what it can, says why in plain words, and never crashes", "[media]") {
  const std::string plain = Jpeg(Bgr(TestImage("biden.jpg")), 90);
  SECTION("a capture time that is not EXIF's format") {
    const ExifRead r = ReadExif(WithExif(plain, ExifBlock(Camera("Cam", "yesterday at noon!!"))));
    CHECK(r.metadata.taken_at.empty());
    CHECK(r.metadata.camera_make == "Cam");
    CHECK_THAT(r.problem, Catch::Contains("capture time 'yesterday at noon!!' is not EXIF's YYYY:MM:DD HH:MM:SS"));
  }
  SECTION("a GPS position with a zero denominator, or out of range") {
    ExifSpec zero{"Cam", "", "", 0, Rationals(2, {{37, 0}, {46, 1}, {0, 1}}), TestLongitude()};
    const ExifRead r = ReadExif(WithExif(plain, ExifBlock(zero)));
    CHECK_FALSE(r.metadata.latitude);
    CHECK_FALSE(r.metadata.longitude);  // half a position is none
    CHECK_THAT(r.problem, Catch::Contains("zero denominator"));
    ExifSpec far{"Cam", "", "", 0, Rationals(2, {{137, 1}, {0, 1}, {0, 1}}), TestLongitude()};
    CHECK_THAT(ReadExif(WithExif(plain, ExifBlock(far))).problem, Catch::Contains("out of range"));
  }
  SECTION("IFDs that point past the block, and a block cut short: libexif's own complaint") {
    std::string block = ExifBlock({"Cam", "Model", "2020:01:01 00:00:00", 0, TestLatitude(), TestLongitude()});
    std::string bad_offset = block;
    bad_offset.replace(4, 4, Le32(0x7FFFFFF0));  // IFD0 far past the end
    const ExifRead r = ReadExif(WithExif(plain, bad_offset));
    CHECK(r.metadata.empty());
    CHECK_FALSE(r.problem.empty());
    for (size_t cut = 8; cut < block.size(); cut += 7) ReadExif(WithExif(plain, block.substr(0, cut)));
    // A segment length that runs past the file: no EXIF found, no read past the buffer.
    std::string truncated = WithExif(plain, block).substr(0, 40);
    CHECK(ReadExif(truncated).metadata.empty());
  }
}

TEST_CASE("A rotated photo's orientation tag is applied, so it hashes like the same picture turned in its pixels",
          "[media]") {
  const cv::Mat bgr = Bgr(TestImage("obama.jpg"));
  cv::Mat turned;
  cv::rotate(bgr, turned, cv::ROTATE_90_CLOCKWISE);
  // Orientation 6: the stored pixels are to be turned 90° clockwise for display.
  const std::string tagged = WithExif(Jpeg(bgr, 95), ExifBlock(Camera("Cam", "", 6)));
  auto decoded = DecodeImage(tagged, {});
  REQUIRE(decoded);
  CHECK(decoded->width == bgr.rows);
  CHECK(decoded->height == bgr.cols);
  CHECK(NearDuplicates(PerceptualHash(*decoded), HashOf(Jpeg(turned, 95))));
  CHECK_FALSE(NearDuplicates(PerceptualHash(*decoded), HashOf(Jpeg(bgr, 95))));
}

TEST_CASE("PerceptualHash finds resized and recompressed copies of a picture and tells different photos apart",
          "[media]") {
  const cv::Mat obama = Bgr(TestImage("obama.jpg"));
  const uint64_t original = HashOf(Jpeg(obama, 95));
  CHECK(NearDuplicates(original, HashOf(Jpeg(Half(obama), 90))));
  CHECK(NearDuplicates(original, HashOf(Jpeg(obama, 40))));
  for (const char* other : {"obama2.jpg", "obama3.jpg", "biden.jpg"}) {
    INFO(other);
    CHECK_FALSE(NearDuplicates(original, HashOf(Slurp(TestImage(other)))));
  }
  // Grouping is transitive and ignores the order of the hashes; equal hashes are one picture.
  const uint64_t a = 0x0123456789ABCDEFull;
  const uint64_t b = a ^ ((uint64_t{1} << kNearDuplicateBits) - 1);       // kNearDuplicateBits bits off a
  const uint64_t c = b ^ (((uint64_t{1} << kNearDuplicateBits) - 1) << 40);  // and as many off b
  const uint64_t far = ~a;
  auto groups = GroupNearDuplicates({far, c, a, b, a});
  REQUIRE(groups.size() == 1);
  CHECK(groups[0] == std::vector<size_t>{1, 2, 3, 4});
  CHECK(GroupNearDuplicates({a, a ^ ((uint64_t{1} << (kNearDuplicateBits + 1)) - 1)}).empty());
}

namespace {

// A corpus holding obama.jpg with two copies (half size; JPEG quality 40), biden.jpg carrying
// camera and GPS EXIF, and obama2.jpg carrying malformed EXIF.
struct MediaCorpus : CorpusDir {
  MediaCorpus() {
    fs::create_directories(photos);
    const cv::Mat obama = Bgr(TestImage("obama.jpg"));
    CopyTestImage("obama.jpg", photos);
    Spit(photos / "obama_half.jpg", Jpeg(Half(obama), 90));
    Spit(photos / "obama_q40.jpg", Jpeg(obama, 40));
    ExifSpec gps{"FacesearchTestCam", "GPS Model", "2021:06:05 14:03:22", 0, TestLatitude(), TestLongitude()};
    Spit(photos / "biden_gps.jpg", WithExif(Slurp(TestImage("biden.jpg")), ExifBlock(gps)));
    Spit(photos / "obama2_bad_exif.jpg", WithExif(Slurp(TestImage("obama2.jpg")), ExifBlock(Camera("Cam", "not a time"))));
  }
  RunResult MustRun(std::vector<std::string> args) const {
    RunResult r = Run(std::move(args));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r;
  }
};

// The 8 bytes SQLite stores for a REAL (big-endian IEEE 754).
std::string RealBytes(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  std::string out;
  for (int i = 7; i >= 0; --i) out += static_cast<char>((bits >> (8 * i)) & 0xFF);
  return out;
}

bool AnyFileContains(const fs::path& dir, const std::string& needle) {
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() && Slurp(entry.path()).find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("Copies of one picture fold into one match unless --no-collapse, info lists them, and EXIF comes with every match",
          "[media][e2e]") {
  MediaCorpus c;
  RunResult indexed = c.MustRun({"index", c.photos.string()});
  CHECK_THAT(indexed.err, Catch::Contains("obama2_bad_exif.jpg: EXIF not (all) read: capture time 'not a time'"));
  const std::string probe = TestImage("obama3.jpg").string();

  std::vector<Json> folded = ParseJsonLines(c.MustRun({"query", "--format", "jsonl", probe}).out);
  std::map<std::string, const Json*> by_name;
  for (const Json& m : folded) by_name[fs::path(m["image"].str()).filename().string()] = &m;
  REQUIRE(by_name.size() == folded.size());
  REQUIRE(by_name.size() == 2);  // the nearest of the three copies, and obama2
  const std::string kept = by_name.count("obama.jpg") ? "obama.jpg" : by_name.count("obama_half.jpg") ? "obama_half.jpg" : "obama_q40.jpg";
  CHECK((*by_name[kept])["copies"].num() == 2);
  CHECK((*by_name[kept])["copy_of"].is_null());
  CHECK((*by_name["obama2_bad_exif.jpg"])["copies"].num() == 0);
  CHECK((*by_name["obama2_bad_exif.jpg"])["taken_at"].is_null());
  CHECK_THAT(c.MustRun({"query", probe}).out, Catch::Contains(kept + " (+2 copies)"));

  std::vector<Json> all = ParseJsonLines(c.MustRun({"query", "--no-collapse", "--format", "jsonl", probe}).out);
  REQUIRE(all.size() == 4);
  int copies_marked = 0;
  for (const Json& m : all)
    if (!m["copy_of"].is_null()) {
      ++copies_marked;
      CHECK(m["copy_of"].num() == (*by_name[kept])["face_id"].num());
    }
  CHECK(copies_marked == 2);

  Json dups = ParseJson(c.MustRun({"info", "--duplicates", "--format", "json"}).out);
  CHECK(dups["duplicate_groups"].num() == 1);
  CHECK(dups["images_hashed"].num() == 5);
  CHECK(dups["images_unhashed"].num() == 0);
  REQUIRE(dups["groups"][0]["images"].size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK_THAT(dups["groups"][0]["images"][i].str(), Catch::Contains("obama"));

  // EXIF in json, csv and the table; the malformed one's reason stays in the export.
  Json biden = ParseJsonLines(c.MustRun({"query", "--format", "jsonl", TestImage("biden.jpg").string()}).out).at(0);
  CHECK(biden["taken_at"].str() == "2021-06-05T14:03:22");
  CHECK(biden["camera_make"].str() == "FacesearchTestCam");
  CHECK(biden["camera_model"].str() == "GPS Model");
  CHECK(biden["gps_lat"].num() == Approx(kTestLat).margin(1e-6));
  CHECK(biden["gps_lon"].num() == Approx(kTestLon).margin(1e-6));
  const std::string csv = c.MustRun({"query", "--format", "csv", TestImage("biden.jpg").string()}).out;
  CHECK_THAT(csv, Catch::StartsWith("probe,probe_face,rank,face_id,distance,fmr,confidence,image,x,y,w,h,page_url,"
                                    "source,captured_at,licence,notes,taken_at,camera_make,camera_model,gps_lat,"
                                    "gps_lon,copies,copy_of,video_first,video_last,video_frame\n"));
  CHECK_THAT(csv, Catch::Contains(",2021-06-05T14:03:22,FacesearchTestCam,GPS Model,37.774900,-122.419400,0,,,,\n"));
  CHECK_THAT(c.MustRun({"query", TestImage("biden.jpg").string()}).out,
             Catch::Contains("taken 2021-06-05T14:03:22; camera FacesearchTestCam GPS Model; GPS 37.774900,-122.419400"));
  bool reason_exported = false;
  for (const Json& line : ParseJsonLines(c.MustRun({"export"}).out))
    if (fs::path(line["image"].str()).filename() == "obama2_bad_exif.jpg")
      reason_exported = line["exif_problem"].str().find("not a time") != std::string::npos;
  CHECK(reason_exported);
}

TEST_CASE("GPS and camera EXIF are erased with the image by forget, down to the bytes of every corpus file, and XMP sidecars are private and audited",
          "[media][e2e]") {
  MediaCorpus c;
  c.MustRun({"index", c.photos.string()});
  const std::string lat = RealBytes(ReadExif(Slurp(c.photos / "biden_gps.jpg")).metadata.latitude.value());
  REQUIRE(AnyFileContains(c.corpus, "FacesearchTestCam"));  // the scan below can see them
  REQUIRE(AnyFileContains(c.corpus, lat));

  TempDir out;
  const fs::path sidecars = out / "sidecars";
  c.MustRun({"export", "--xmp", sidecars.string()});
  const std::string xmp = Slurp(sidecars / "biden_gps.jpg.xmp");
  CHECK_THAT(xmp, Catch::Contains("<mwg-rs:Type>Face</mwg-rs:Type>"));
  CHECK_THAT(xmp, Catch::Contains("stDim:unit=\"pixel\""));
  CHECK_THAT(xmp, Catch::Contains("stArea:unit=\"normalized\""));
  CHECK(xmp.find("37.77") == std::string::npos);  // no GPS in a sidecar
  struct stat st {};
  REQUIRE(::stat((sidecars / "biden_gps.jpg.xmp").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(sidecars.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(fs::exists(sidecars / "obama_half.jpg.xmp"));
  Json audit = ParseJsonLines(c.MustRun({"audit", "--format", "jsonl"}).out).back();
  CHECK(audit["action"].str() == "export");
  CHECK(audit["params"]["xmp"].boolean());

  c.MustRun({"forget", "--image", (c.photos / "biden_gps.jpg").string()});
  CHECK_FALSE(AnyFileContains(c.corpus, "FacesearchTestCam"));
  CHECK_FALSE(AnyFileContains(c.corpus, "GPS Model"));
  CHECK_FALSE(AnyFileContains(c.corpus, lat));
}

TEST_CASE("A corpus from before the hashes opens, and indexing its folder again backfills hashes and EXIF without detecting faces again",
          "[media][e2e]") {
  MediaCorpus c;
  c.MustRun({"index", c.photos.string()});
  {  // back to schema 6, as the previous version wrote it
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(c.db().c_str(), &db) == SQLITE_OK);
    std::string sql = kDropClustersV9Sql;
    for (const char* column : {"phash", "exif_taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon", "exif_problem"})
      sql += std::string("ALTER TABLE images DROP COLUMN ") + column + ";";
    sql += "ALTER TABLE images DROP COLUMN duration_s; ALTER TABLE faces DROP COLUMN video_frame; "
           "ALTER TABLE faces DROP COLUMN video_at_s; ALTER TABLE faces DROP COLUMN video_first_s; "
           "ALTER TABLE faces DROP COLUMN video_last_s; "
           "PRAGMA user_version = 6; UPDATE meta SET value = '6' WHERE key = 'schema_version';";
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    sqlite3_close(db);
    REQUIRE(rc == SQLITE_OK);
  }
  Json before = ParseJson(c.MustRun({"info", "--duplicates", "--format", "json"}).out);
  CHECK(before["images_hashed"].num() == 0);
  CHECK(before["images_unhashed"].num() == 5);

  Json again = ParseJson(c.MustRun({"index", "--json", c.photos.string()}).out);
  CHECK(again["duplicates"].num() == 5);  // known content: no face detected again
  CHECK(again["added"].num() == 0);
  CHECK(ParseJson(c.MustRun({"info", "--json"}).out)["schema_version"].num() == facesearch::kSchemaVersion);
  Json after = ParseJson(c.MustRun({"info", "--duplicates", "--format", "json"}).out);
  CHECK(after["images_hashed"].num() == 5);
  CHECK(after["images_unhashed"].num() == 0);
  CHECK(after["duplicate_groups"].num() == 1);
  Json biden = ParseJsonLines(c.MustRun({"query", "--format", "jsonl", TestImage("biden.jpg").string()}).out).at(0);
  CHECK(biden["camera_make"].str() == "FacesearchTestCam");
}
