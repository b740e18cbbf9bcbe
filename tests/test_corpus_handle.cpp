// The corpus handle (facesearch/corpus.h): opened once, asked many times, from several threads,
// while other writers (IndexPaths, Forget: connections of their own) add and erase faces. The faces
// are drawn and analyzed by the fake analyzer (tests/fake_analyzer.h): these tests are about the
// handle, not the models, so they run in the fast tier.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "fake_analyzer.h"
#include "facesearch/corpus.h"
#include "facesearch/privacy.h"
#include "support.h"

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// Drawn photos: two of person 1 and one of person 2 to index, probes of each and one without a face.
constexpr int kPerson1 = 1, kPerson2 = 2;
struct HandleCorpus {
  TempDir dir;
  fs::path photos = dir / "photos";
  fs::path probes = dir / "probes";

  HandleCorpus() {
    WriteFaceImage(probes / "person1.png", {{.x = 60, .y = 40, .person = kPerson1, .shade = 40}});
    WriteFaceImage(probes / "person2.png", {{.x = 200, .y = 90, .person = kPerson2, .shade = 40}});
    WriteFaceImage(probes / "noface.png", {});
  }
  CorpusConfig Config() const {
    CorpusConfig config;
    config.corpus_dir = dir / "corpus";
    return WithFakeAnalyzer(config);
  }
  // Draws the named photos ("person1a.png", "person1b.png", "person2.png") into `folder` and
  // indexes it, as a writer of its own.
  void Index(std::initializer_list<const char*> names, const fs::path& folder) const {
    for (std::string name : names) {
      const int person = name.starts_with("person1") ? kPerson1 : kPerson2;
      WriteFaceImage(folder / name, {{.x = 100, .y = 60, .person = person, .shade = name.ends_with("b.png") ? 20 : 0}});
    }
    auto summary = IndexPaths(Config(), {folder.string()}, {});
    INFO((summary ? "" : summary.error().message));
    REQUIRE(summary);
    REQUIRE(summary->errors == 0);
  }
  void Index(std::initializer_list<const char*> names) const { Index(names, photos); }
  std::unique_ptr<facesearch::Corpus> Open() const {
    auto opened = facesearch::Corpus::Open(Config());
    INFO((opened ? "" : opened.error().message));
    REQUIRE(opened);
    return std::move(*opened);
  }
};

// What an answer is made of: per probe face, the matched face ids and their distances.
using Answer = std::vector<std::vector<std::pair<int64_t, float>>>;
Answer MatchesOf(const ProbeOutcome& o) {  // no Catch assertion: threads call it
  Answer a;
  for (const ProbeFace& p : o.result.probes) {
    auto& faces = a.emplace_back();
    for (const Match& m : p.matches) faces.emplace_back(m.face_id, m.distance);
  }
  return a;
}
Answer AnswerOf(const ProbeOutcome& o) {
  INFO(o.photo << ": " << (o.error ? o.error->message : ""));
  REQUIRE(!o.error);
  return MatchesOf(o);
}

// The drawn photos of one person differ only in shade, so their perceptual hashes make them copies
// of one picture, which a query collapses into one match by default: these tests count every face.
QueryOptions EveryMatch() {
  QueryOptions options;
  options.collapse_copies = false;
  return options;
}

Answer Ask(facesearch::Corpus& corpus, const fs::path& photo, const QueryOptions& options = EveryMatch()) {
  auto outcome = corpus.Query(ProbeImage::File(photo.string()), options);
  INFO((outcome ? "" : outcome.error().message));
  REQUIRE(outcome);
  return AnswerOf(*outcome);
}

std::set<std::string> MatchedFiles(facesearch::Corpus& corpus, const fs::path& photo) {
  auto outcome = corpus.Query(ProbeImage::File(photo.string()), EveryMatch());
  REQUIRE(outcome);
  REQUIRE(!outcome->error);
  std::set<std::string> files;
  for (const ProbeFace& p : outcome->result.probes)
    for (const Match& m : p.matches) files.insert(fs::path(m.image_path).filename().string());
  return files;
}

}  // namespace

TEST_CASE("Queries through one Corpus handle, file or bytes, answer what separate QueryPhotos calls answer",
          "[corpus-handle]") {
  HandleCorpus c;
  c.Index({"person1a.png", "person1b.png", "person2.png"});
  const std::vector<fs::path> probes = {c.probes / "person1.png", c.probes / "person2.png",
                                        c.probes / "noface.png"};
  QueryOptions all = EveryMatch();
  all.all_faces = true;
  auto corpus = c.Open();
  for (int round = 0; round < 2; ++round)
    for (const fs::path& probe : probes) {
      auto separate = QueryPhotos(c.Config(), {ProbeImage::File(probe.string())}, all);
      REQUIRE(separate);
      REQUIRE(separate->size() == 1);
      CHECK(Ask(*corpus, probe, all) == AnswerOf(separate->front()));
    }
  auto bytes = facesearch::Corpus::Open(c.Config());
  REQUIRE(bytes);
  std::ifstream in(probes[0], std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto from_bytes = (*bytes)->Query(ProbeImage::Bytes("-", data), all);
  REQUIRE(from_bytes);
  CHECK(from_bytes->result.probe_path == "-");
  CHECK(from_bytes->result.corpus_faces == 3);
  CHECK(AnswerOf(*from_bytes) == Ask(*corpus, probes[0], all));
}

TEST_CASE("A face another writer indexes while a Corpus handle is open is found by the handle's next query",
          "[corpus-handle]") {
  HandleCorpus c;
  c.Index({"person2.png"});
  auto corpus = c.Open();
  const fs::path probe = c.probes / "person1.png";
  CHECK(MatchedFiles(*corpus, probe).empty());
  c.Index({"person1a.png"}, c.dir / "more");
  CHECK(MatchedFiles(*corpus, probe) == std::set<std::string>{"person1a.png"});
  CHECK(corpus->face_count() == 2);
}

TEST_CASE("A face another writer erases while a Corpus handle is open is gone from the handle's next answer",
          "[corpus-handle]") {
  HandleCorpus c;
  c.Index({"person1a.png", "person1b.png", "person2.png"});
  auto corpus = c.Open();
  const fs::path probe = c.probes / "person1.png";
  REQUIRE(MatchedFiles(*corpus, probe) == std::set<std::string>{"person1a.png", "person1b.png"});
  ForgetRequest erase;
  erase.images = {(c.photos / "person1a.png").string()};
  auto erased = Forget(c.Config(), erase);
  INFO((erased ? "" : erased.error().message));
  REQUIRE(erased);
  CHECK(MatchedFiles(*corpus, probe) == std::set<std::string>{"person1b.png"});
  CHECK(corpus->face_count() == 2);
}

TEST_CASE("Two threads querying one Corpus handle at once each get the answers of a single thread",
          "[corpus-handle]") {
  HandleCorpus c;
  c.Index({"person1a.png", "person1b.png", "person2.png"});
  auto corpus = c.Open();
  const std::vector<fs::path> probes = {c.probes / "person1.png", c.probes / "person2.png"};
  std::vector<Answer> expected;
  for (const fs::path& p : probes) expected.push_back(Ask(*corpus, p));
  REQUIRE(expected[0].size() == 1);
  REQUIRE(expected[0][0].size() == 2);
  // Catch's assertions are not thread-safe: the threads record, the test checks afterwards.
  constexpr int kRounds = 3;
  std::vector<std::vector<Answer>> got(probes.size());
  std::vector<std::string> errors(probes.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < probes.size(); ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        auto o = corpus->Query(ProbeImage::File(probes[t].string()), EveryMatch());
        if (!o || o->error) {
          errors[t] = o ? o->error->message : o.error().message;
          return;
        }
        got[t].push_back(MatchesOf(*o));
      }
    });
  for (std::thread& t : threads) t.join();
  for (size_t t = 0; t < probes.size(); ++t) {
    INFO(probes[t] << ": " << errors[t]);
    REQUIRE(got[t].size() == kRounds);
    for (const Answer& a : got[t]) CHECK(a == expected[t]);
  }
}
