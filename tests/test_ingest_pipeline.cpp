// The ingest pipeline in-process, with the fake analyzer (tests/fake_analyzer.h): what happens to
// each input (its outcome and reason code) without the models, so it runs in the fast tier.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>

#include "fake_analyzer.h"
#include "support.h"

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// Indexes `folder` with the fake analyzer; returns the reason code of each failed file by name.
std::map<std::string, std::string> ReasonsOf(const CorpusConfig& config, const fs::path& folder,
                                             const PipelineOptions& pipeline, IndexSummary& summary) {
  std::map<std::string, std::string> reasons;
  IndexOptions options;
  options.pipeline = pipeline;
  options.jobs = 2;
  options.on_file = [&](const FileOutcome& o) {
    if (o.result == FileResult::kError) reasons[fs::path(o.path).filename().string()] = o.reason;
  };
  auto ran = IndexPaths(config, {folder.string()}, options);
  INFO((ran ? "" : ran.error().message));
  REQUIRE(ran);
  summary = *ran;
  return reasons;
}

}  // namespace

TEST_CASE("Each failed input's reason comes from its error's type, whatever its path says, and the next run retries it",
          "[ingest][hostile]") {
  TempDir dir;
  CorpusConfig config;
  config.corpus_dir = dir / "corpus";
  config = WithFakeAnalyzer(config);
  // A folder whose name reads like the messages of other reasons.
  const fs::path photos = dir / "pixel limit, not a regular file, truncated";
  WriteFaceImage(photos / "face.png", {{.person = 3}});
  WriteFaceImage(photos / "noface.png", {});
  std::ofstream(photos / "corrupt.jpg") << "definitely not a jpeg";
  std::ofstream(photos / "empty.jpg").close();
  std::vector<uchar> jpeg;
  REQUIRE(cv::imencode(".jpg", cv::Mat(300, 400, CV_8UC3, cv::Scalar(10, 200, 30)), jpeg));
  std::ofstream(photos / "truncated.jpg", std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()),
                                                                 static_cast<std::streamsize>(jpeg.size() / 2));
  REQUIRE(cv::imwrite((photos / "huge.png").string(), cv::Mat(2000, 2000, CV_8UC3, cv::Scalar(9, 9, 9))));
  WriteFaceImage(photos / "big.bmp", {{.person = 4}});  // uncompressed: 360 kB
  REQUIRE(::mkfifo((photos / "larger than.jpg").c_str(), 0600) == 0);

  PipelineOptions capped;
  capped.max_pixels = 3'500'000;
  capped.max_file_bytes = 200'000;
  IndexSummary first;
  const auto reasons = ReasonsOf(config, photos, capped, first);
  CHECK(reasons == std::map<std::string, std::string>{{"big.bmp", "too_large"},
                                                      {"corrupt.jpg", "not_image"},
                                                      {"empty.jpg", "empty"},
                                                      {"huge.png", "pixel_cap"},
                                                      {"larger than.jpg", "not_regular_file"},
                                                      {"truncated.jpg", "truncated"}});
  CHECK(first.added == 1);
  CHECK(first.noface == 1);
  CHECK(first.faces == 1);

  // Without the caps, the content that failed for them is read and analyzed, not "already indexed".
  IndexSummary second;
  const auto still = ReasonsOf(config, photos, PipelineOptions{}, second);
  CHECK(still.size() == 4);
  CHECK_FALSE(still.contains("big.bmp"));
  CHECK_FALSE(still.contains("huge.png"));
  CHECK(second.added == 1);  // big.bmp's face
  CHECK(second.noface == 1);  // huge.png
  CHECK(second.duplicates == 2);
}
