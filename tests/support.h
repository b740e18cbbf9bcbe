// Shared test helpers: temporary directories, fetched assets, and running the real binary.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "image/decode.h"
#include "json.h"

namespace facesearch::test {

// A fresh private (0700) directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Directory holding the face_recognition 1.3.0 test images (scripts/fetch-test-images.sh):
// $FACESEARCH_TEST_IMAGES, else ${XDG_CACHE_HOME:-~/.cache}/facesearch/test-images.
// Fails the current test (Catch2 FAIL) with the fetch command when the directory is missing.
std::filesystem::path TestImage(const std::string& name);
// That test image decoded as the pipeline decodes it (EXIF-oriented RGB); fails the test when it
// cannot be read or decoded.
RgbImage DecodeTestImage(const std::string& name);

// Reports that the current test cannot run here because `prerequisite` is missing (`why` says what
// that leaves untested and how to get it); the caller returns right after. On a developer's machine
// it warns "SKIPPED: ..." and the test passes; under CI (CI=true) it fails the test, so that a CI
// machine without the prerequisite cannot pass a test that never ran.
void SkipOrFailInCi(const std::string& prerequisite, const std::string& why);

// SQL that drops what schema v10 (optouts.request_id) and v9 (kept clusters) added, for tests that
// turn a corpus back into an older version's: run it before dropping the subjects tables, which
// the v9 tables reference.
inline constexpr const char* kDropOptoutRequestsV10Sql = "ALTER TABLE optouts DROP COLUMN request_id; ";
inline constexpr const char* kDropClustersV9Sql =
    "ALTER TABLE optouts DROP COLUMN request_id; "
    "DROP TABLE face_apart; DROP TABLE face_labels; DROP TABLE cluster_faces; DROP TABLE clusters; ";

// Directory of the dlib models (scripts/fetch-models.sh), resolved like the binary does.
std::filesystem::path ModelsDir();

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the facesearch binary built by this tree with `args` (no shell involved), feeding `input`
// on stdin. FACESEARCH_CORPUS/FACESEARCH_MODELS are inherited from the environment unless args
// set --corpus/--models.
RunResult RunFacesearch(const std::vector<std::string>& args, const std::string& input = "");

// RunFacesearch with "--models MODELS" (the test models) first: for commands that need no corpus.
RunResult RunWithModels(std::vector<std::string> args, const std::string& input = "");

// Runs any program (args[0], looked up in PATH) like RunFacesearch. Safe to call from several
// threads at once (to run commands concurrently).
RunResult RunProgram(const std::vector<std::string>& args, const std::string& input = "");

// The path of the facesearch binary under test.
std::string FacesearchBinary();

// Copies a fetched test image into `dir` (optionally under a new name) and returns the new path.
std::filesystem::path CopyTestImage(const std::string& name, const std::filesystem::path& dir,
                                    const std::string& new_name = "");

// Runs SQL on a database file through a second sqlite3 connection, as someone editing the file
// directly would; the test fails when SQLite refuses it. Call while no Store writes to the file.
void ExecSql(const std::filesystem::path& db, const std::string& sql);

// A corpus in a fresh temporary directory (photos/ beside corpus/), driven through the real binary
// with the test models. Test files derive from it to add their own helpers.
struct CorpusDir {
  TempDir dir;
  std::filesystem::path photos = dir / "photos";
  std::filesystem::path corpus = dir / "corpus";

  // "--corpus CORPUS --models MODELS" followed by `rest`.
  std::vector<std::string> Args(std::vector<std::string> rest) const;
  RunResult Run(std::vector<std::string> rest, const std::string& input = "") const;
  // Run, requiring `want_exit`, and the JSON it printed on stdout.
  Json RunJson(std::vector<std::string> rest, int want_exit = 0) const;
  // Copies the named test images into photos/ and indexes the folder; the test fails unless the
  // index exits 0.
  void Index(std::initializer_list<const char*> names);
  std::filesystem::path db() const { return corpus / "corpus.sqlite"; }
  std::filesystem::path index_file() const { return corpus / "index" / "faces.faiss"; }
};

}  // namespace facesearch::test
