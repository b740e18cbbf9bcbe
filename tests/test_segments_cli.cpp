// The segmented index file through the real binary (issue #16): `index` appends a delta chunk that
// queries search, `compact` folds it in, `forget` scrubs before it commits, and a kill -9 at each
// step of index and forget (FACESEARCH_TEST_CRASH_AT, src/common/crash_point.h) leaves a corpus
// that opens, answers, verifies and completes the command on a rerun.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "json.h"
#include "support.h"

using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

struct Corpus : CorpusDir {
  // File names of the probe's matches (default threshold), nearest first.
  std::vector<std::string> Matches(const std::string& probe) const {
    Json q = RunJson({"query", "--format", "json", TestImage(probe).string()});
    std::vector<std::string> names;
    const Json& m = q["results"][0]["matches"];
    for (size_t i = 0; i < m.size(); ++i) names.push_back(fs::path(m[i]["image"].str()).filename().string());
    return names;
  }
  // The 512 bytes stored for the face of `image` (exported floats as little-endian float32).
  std::string EmbeddingOf(const std::string& image) const {
    for (const Json& line : ParseJsonLines(Run({"export"}).out)) {
      if (fs::path(line["image"].str()).filename() != image) continue;
      std::string bytes;
      for (size_t i = 0; i < line["embedding"].size(); ++i) {
        const float f = static_cast<float>(line["embedding"][i].num());
        bytes.append(reinterpret_cast<const char*>(&f), sizeof f);
      }
      return bytes;
    }
    FAIL("no face of " << image << " in the export");
    return "";
  }
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ino_t Inode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

// Runs `args` with the crash hook set to `step`; the process must die by SIGKILL there.
void RunKilledAt(const Corpus& c, const std::string& step, std::vector<std::string> args) {
  ::setenv("FACESEARCH_TEST_CRASH_AT", step.c_str(), 1);
  RunResult r = c.Run(std::move(args));
  ::unsetenv("FACESEARCH_TEST_CRASH_AT");
  INFO(r.err);
  REQUIRE(r.exit_code == 128 + SIGKILL);
}

}  // namespace

TEST_CASE("index appends new faces as a delta chunk that queries find, and compact folds it in",
          "[segments][e2e]") {
  Corpus c;
  c.Index({"obama.jpg", "biden.jpg"});
  const auto before = static_cast<int64_t>(fs::file_size(c.index_file()));
  c.Index({"obama2.jpg"});
  // One chunk of one face: a 64-byte header, the id, 128 floats and one block checksum, padded to
  // 64 bytes. Nothing else of the file was rewritten.
  CHECK(static_cast<int64_t>(fs::file_size(c.index_file())) - before == 640);
  CHECK(c.Matches("obama3.jpg") == std::vector<std::string>{"obama.jpg", "obama2.jpg"});
  CHECK(c.Run({"verify"}).exit_code == 0);

  Json compacted = c.RunJson({"compact", "--json"});
  CHECK(compacted["delta_rows_before"].num() == 1);
  CHECK(compacted["faces"].num() == 3);
  CHECK(compacted["retrained"].boolean());  // 3 faces: far below the size that keeps training
  CHECK(compacted["bytes_after"].num() == static_cast<double>(fs::file_size(c.index_file())));
  CHECK(c.Matches("obama3.jpg") == std::vector<std::string>{"obama.jpg", "obama2.jpg"});
  CHECK(c.RunJson({"info", "--json"})["index_state"].str() == "fresh");
  CHECK(c.Run({"verify"}).exit_code == 0);
}

TEST_CASE("A kill -9 at each step of index and forget leaves a corpus that answers, verifies and completes",
          "[segments][e2e][slow]") {
  Corpus base;
  base.Index({"obama.jpg", "biden.jpg"});
  // IVF-PQ (trained on these few faces), so that a forget scrubs its FAISS section in place too.
  REQUIRE(base.Run({"reindex", "--index", "ivfpq"}).exit_code == 0);
  CopyTestImage("obama2.jpg", base.photos);
  struct Step {
    const char* name;
    bool forget;  // else: index obama2.jpg
  };
  for (const Step step : {Step{"index-saved", false}, Step{"index-scrubbed", true},
                          Step{"erasure-committed", true}, Step{"index-saved", true}}) {
    INFO((step.forget ? "forget, killed at " : "index, killed at ") << step.name);
    Corpus c;
    fs::copy(base.dir.path(), c.dir.path(), fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    const std::string obama2 = (c.photos / "obama2.jpg").string();
    std::string erased;
    if (step.forget) {
      REQUIRE(c.Run({"index", obama2}).exit_code == 0);
      REQUIRE(c.Run({"compact"}).exit_code == 0);  // the face in the main segment and its IVF lists
      erased = c.EmbeddingOf("obama2.jpg");
      REQUIRE(Slurp(c.index_file()).find(erased) != std::string::npos);
      const ino_t inode = Inode(c.index_file());
      RunKilledAt(c, step.name, {"forget", "--image", obama2});
      // Killed before anything but the scrub: the file was changed in place, not replaced.
      if (std::strcmp(step.name, "index-scrubbed") == 0) CHECK(Inode(c.index_file()) == inode);
    } else {
      RunKilledAt(c, step.name, {"index", obama2});
    }
    // Scrubbed before the erasure commits: no kill leaves the face in an index file.
    if (step.forget) CHECK(Slurp(c.index_file()).find(erased) == std::string::npos);
    // A kill leaves the file behind its record or saved past it, never damaged: `info` judges the
    // header of a file newer than its record as verify does, and does not call it corrupt.
    CHECK(c.RunJson({"info", "--json"})["index_state"].str() != "corrupt");
    const std::vector<std::string> matches = c.Matches("obama3.jpg");
    CHECK(matches.front() == "obama.jpg");  // the face that was never touched
    CHECK(c.Run({"verify"}).exit_code == 0);

    // The command run again completes; a forget whose erasure had committed finds nothing left.
    const bool committed = step.forget && std::strcmp(step.name, "index-scrubbed") != 0;
    RunResult again = c.Run(step.forget ? std::vector<std::string>{"forget", "--image", obama2}
                                        : std::vector<std::string>{"index", obama2});
    INFO(again.err);
    if (committed) CHECK_THAT(again.err, Catch::Contains("is not in the corpus"));
    else CHECK(again.exit_code == 0);
    CHECK(c.Run({"verify"}).exit_code == 0);
    // A forget that finds nothing left writes nothing, and searches never train an IVF-PQ index
    // that a kill left to be rebuilt: the next writer does.
    if (committed) REQUIRE(c.Run({"compact"}).exit_code == 0);
    CHECK(c.RunJson({"info", "--json"})["index_state"].str() == "fresh");
    CHECK(c.Matches("obama3.jpg") == (step.forget ? std::vector<std::string>{"obama.jpg"}
                                                  : std::vector<std::string>{"obama.jpg", "obama2.jpg"}));
    if (step.forget) {
      for (const auto& entry : fs::recursive_directory_iterator(c.corpus))
        if (entry.is_regular_file()) CHECK(Slurp(entry.path()).find(erased) == std::string::npos);
    }
  }
}
