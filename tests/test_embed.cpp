// Embed anywhere, write once (facesearch/embed.h): base64, the embed file reader against malformed
// and hostile files, `import` as one writer (refusals, tombstones, idempotence), and with the
// models: embed + import give what index gives, and query --embedded answers as the photo does.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "common/base64.h"
#include "engine/corpus.h"
#include "face/models.h"
#include "facesearch/embed.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
using namespace facesearch::test;
namespace fs = std::filesystem;

namespace {

// A face with a recognisable embedding (i/1000 + seed), at a plausible box.
Face SyntheticFace(float seed) {
  Face f;
  f.box = {10, 20, 100, 100};
  for (size_t i = 0; i < f.landmarks.size(); ++i) f.landmarks[i] = {30 + static_cast<int64_t>(i) * 10, 50};
  f.det_score = 0.75;
  for (int i = 0; i < kEmbeddingDim; ++i) f.embedding[i] = static_cast<float>(i) / 1000.0f + seed;
  return f;
}

EmbeddedImage SyntheticImage(const std::string& path, char sha_digit, float seed) {
  EmbeddedImage r;
  r.path = path;
  r.sha256 = std::string(64, sha_digit);
  r.size = 1000;
  r.width = r.height = 400;
  r.faces = {SyntheticFace(seed)};
  r.quality = {AssessFace(r.faces[0], 30.0, DetectorKind::kHog)};
  r.provenance.source = "synthetic";
  return r;
}

std::string EmbedText(const std::vector<EmbeddedImage>& records, const std::string& identity = ModelIdentity(),
                      EmbeddingMode mode = {}) {
  std::string s = FormatEmbedHeader({kEmbedFormatVersion, identity, mode, "hog"}) + "\n";
  for (const auto& r : records) s += FormatEmbedRecord(r) + "\n";
  return s + FormatEmbedEnd(static_cast<int64_t>(records.size())) + "\n";
}

Result<EmbedFile> ReadText(const std::string& text) {
  TempDir dir;
  std::ofstream(dir / "f.jsonl", std::ios::binary) << text;
  return ReadEmbedFile((dir / "f.jsonl").string(), nullptr, 100);
}

// The corpus's faces as (image SHA-256, box, embedding bytes): what two ways of filling a corpus
// must agree on, face ids aside.
std::multiset<std::string> FacesOf(const CorpusDir& c) {
  RunResult r = c.Run({"export"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::multiset<std::string> out;
  for (const Json& f : ParseJsonLines(r.out)) {
    std::string e;
    for (size_t i = 0; i < f["embedding"].size(); ++i) e += std::to_string(f["embedding"][i].num()) + ",";
    const Json& b = f["box"];
    out.insert(f["sha256"].str() + " " + std::to_string(b["x"].num()) + " " + std::to_string(b["y"].num()) + " " +
               std::to_string(b["w"].num()) + " " + std::to_string(b["h"].num()) + " " + e);
  }
  return out;
}

}  // namespace

TEST_CASE("Base64 round-trips every byte value and length, and refuses what is not strict padded base64", "[embed]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    const std::string data = all.substr(0, n) + all.substr(0, n % 3);
    REQUIRE(Base64Decode(Base64Encode(data)) == data);
  }
  CHECK(Base64Encode("fo") == "Zm8=");
  CHECK(Base64Decode("Zm8=") == "fo");
  for (const char* bad : {"Zm8", "Zm8=\n", "Z=8=", "Zm!=", "====", "Zm8=Zm8="})
    CHECK_FALSE(Base64Decode(bad).has_value());
}

TEST_CASE("The embed reader returns every record bit for bit, and refuses a malformed, truncated or hostile file naming the line", "[embed]") {
  const EmbeddedImage image = SyntheticImage("/data/a.jpg", 'a', 0.5f);
  EmbeddedImage failed;
  failed.status = EmbeddedImage::Status::kError;
  failed.path = "/data/broken.jpg";
  failed.reason = "truncated";
  failed.error = "premature end";
  const std::string good = EmbedText({image, failed});

  auto read = ReadText(good);
  REQUIRE(read);
  REQUIRE(read->records.size() == 2);
  CHECK(read->header.model_identity == ModelIdentity());
  const EmbeddedImage& back = read->records[0];
  CHECK(back.faces[0].embedding == image.faces[0].embedding);  // bit for bit
  CHECK(back.faces[0].box.w == 100);
  CHECK(back.faces[0].landmarks == image.faces[0].landmarks);
  CHECK(back.quality[0].sharpness == 30.0);
  CHECK(back.provenance.source == "synthetic");
  CHECK(read->records[1].status == EmbeddedImage::Status::kError);
  CHECK(read->records[1].reason == "truncated");

  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };
  const std::string record_line = FormatEmbedRecord(image);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"empty", ""},
      {"no header", good.substr(good.find('\n') + 1)},
      {"truncated: no end line", good.substr(0, good.rfind("{\"facesearch_embed_end"))},
      {"end line miscounts", replace("\"facesearch_embed_end\":2", "\"facesearch_embed_end\":3")},
      {"data after the end", good + record_line + "\n"},
      {"not JSON", replace(record_line, "{\"status\":")},
      {"short embedding", replace("\"embedding\":\"", "\"embedding\":\"AAAA")},
      {"bad sha256", replace(std::string(64, 'a'), "../../etc/passwd")},
      {"negative width", replace("\"box\":[10,20,100,100]", "\"box\":[10,20,-100,100]")},
      {"huge coordinate", replace("\"box\":[10,20,", "\"box\":[1e300,20,")},
      {"size past int64", replace("\"size\":1000", "\"size\":18446744073709551615")},
      {"four landmarks", replace("[30,50],[40,50],", "[30,50],")},
      {"unknown status", replace("\"status\":\"ok\"", "\"status\":\"fine\"")},
      {"status lies about faces", replace("\"status\":\"ok\"", "\"status\":\"noface\"")},
      {"future format", replace("\"facesearch_embed\":1", "\"facesearch_embed\":2")},
      {"a line over the limit", replace("\"notes\":\"\"", "\"notes\":\"" + std::string(kMaxEmbedLineBytes, 'x') + "\"")},
  };
  for (const auto& [what, text] : bad) {
    INFO(what);
    auto r = ReadText(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::kInvalidArgument);
  }
  // A non-finite float in the embedding (NaN bytes) is refused too.
  std::string nan_bytes(512, '\0');
  for (size_t i = 3; i < nan_bytes.size(); i += 4) nan_bytes[i - 1] = '\xc0', nan_bytes[i] = '\x7f';
  CHECK_FALSE(ReadText(replace(Base64Encode(std::string(reinterpret_cast<const char*>(image.faces[0].embedding.data()), 512)),
                               Base64Encode(nan_bytes))));
}

TEST_CASE("import refuses another model identity, another embedding mode or a damaged file before writing, is idempotent, and honours tombstones, and export --embed-file moves a bucket's faces and tombstones to another corpus", "[embed]") {
  CorpusDir c;
  fs::create_directories(c.dir / "in");
  auto write = [&](const std::string& name, const std::string& text) {
    const fs::path p = c.dir / "in" / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  };
  const std::string good = write("good.jsonl", EmbedText({SyntheticImage("/data/a.jpg", 'a', 0.1f),
                                                         SyntheticImage("/data/b.jpg", 'b', 0.2f)}));

  RunResult other_model = c.Run({"import", write("m.jsonl", EmbedText({}, "some_other_model@1234"))});
  CHECK(other_model.exit_code == 2);
  CHECK_THAT(other_model.err, Catch::Contains("other models"));
  CHECK_FALSE(fs::exists(c.db()));  // refused before the corpus was made

  RunResult first = c.Run({"import", "--json", good});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(ParseJson(first.out)["added"].num() == 2);
  CHECK(ParseJson(first.out)["faces"].num() == 2);
  RunResult again = c.Run({"import", "--json", good});
  REQUIRE(again.exit_code == 0);
  CHECK(ParseJson(again.out)["added"].num() == 0);
  CHECK(ParseJson(again.out)["duplicates"].num() == 2);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 2);

  EmbeddingMode flip;
  flip.flip = true;
  RunResult other_mode = c.Run({"import", write("f.jsonl", EmbedText({SyntheticImage("/data/c.jpg", 'c', 0.3f)},
                                                                       ModelIdentity(), flip))});
  CHECK(other_mode.exit_code == 2);
  CHECK_THAT(other_mode.err, Catch::Contains("'flip'"));
  std::string damaged = EmbedText({SyntheticImage("/data/d.jpg", 'd', 0.4f), SyntheticImage("/data/e.jpg", 'e', 0.5f)});
  damaged.resize(damaged.rfind("{\"status\""));  // cut inside the file: the first record is fine
  RunResult truncated = c.Run({"import", write("t.jsonl", damaged)});
  CHECK(truncated.exit_code == 2);
  CHECK_THAT(truncated.err, Catch::Contains("line"));
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 2);  // nothing of d.jpg went in

  // Erased content stays out when the file is imported again, as `index` keeps it out.
  REQUIRE(c.Run({"forget", "--face-id", "1"}).exit_code == 0);
  RunResult after_forget = c.Run({"import", "--json", good});
  REQUIRE(after_forget.exit_code == 0);
  CHECK(ParseJson(after_forget.out)["erased"].num() == 1);
  CHECK(ParseJson(c.Run({"info", "--json"}).out)["faces"].num() == 1);

  // Buckets of 2: int(sha256[:8], 16) % 2 puts "aaaa..." and "cccc..." in bucket 0, "bbbb..." and
  // "dddd..." in 1. Bucket 0 of this corpus is c.jpg's face and a.jpg's tombstone.
  REQUIRE(c.Run({"import", write("cd.jsonl", EmbedText({SyntheticImage("/data/c.jpg", 'c', 0.3f),
                                                          SyntheticImage("/data/d.jpg", 'd', 0.4f)}))}).exit_code == 0);
  const std::string moved = (c.dir / "bucket0.jsonl").string();  // a private folder: biometric data
  RunResult exported = c.Run({"export", "--embed-file", "--bucket-count", "2", "--bucket", "0", "-o", moved});
  INFO(exported.err);
  REQUIRE(exported.exit_code == 0);
  CHECK_THAT(exported.err, Catch::Contains("1 image(s), 1 face(s) and 1 tombstone(s)"));
  auto file = ReadEmbedFile(moved, nullptr, 100);
  REQUIRE(file);
  CHECK(file->header.model_identity == ModelIdentity());
  REQUIRE(file->records.size() == 2);
  CHECK(file->records[0].faces[0].embedding == SyntheticFace(0.3f).embedding);  // bit for bit
  CHECK(file->records[0].path == "/data/c.jpg");
  CHECK(file->records[1].status == EmbeddedImage::Status::kErased);
  CHECK(file->records[1].sha256 == std::string(64, 'a'));
  CorpusDir other;
  RunResult moved_in = other.Run({"import", "--json", moved});
  INFO(moved_in.err);
  REQUIRE(moved_in.exit_code == 0);
  CHECK(ParseJson(moved_in.out)["files"].num() == 1);
  std::multiset<std::string> bucket0;
  for (const std::string& f : FacesOf(c))
    if (f[0] == 'c') bucket0.insert(f);
  CHECK(FacesOf(other) == bucket0);
  RunResult again_there = other.Run({"import", "--json", good});  // a.jpg's erasure moved with its bucket
  REQUIRE(again_there.exit_code == 0);
  CHECK(ParseJson(again_there.out)["erased"].num() == 1);
  CHECK(ParseJson(again_there.out)["added"].num() == 1);
  // Import never erases: a tombstone for content the corpus holds refuses the file.
  RunResult erasing = c.Run({"import", write("erase-b.jsonl", R"({"facesearch_embed":1,"model_identity":")" +
                                                                   ModelIdentity() + R"(","embedding_mode":"plain","detector":"hog"}
{"status":"erased","sha256":")" + std::string(64, 'b') + R"(","reason":"x","erased_at":"2026-01-01T00:00:00Z"}
{"facesearch_embed_end":1}
)")});
  CHECK(erasing.exit_code == 2);
  CHECK_THAT(erasing.err, Catch::Contains("import does not erase"));
  CHECK(c.Run({"export", "--embed-file", "--bucket-count", "2", "--bucket", "1-2"}).exit_code == 2);  // past the count
}

TEST_CASE("embed then import fills a corpus exactly as index does, opt-outs included, and query --embedded answers as the photo does", "[embed][e2e]") {
  CorpusDir indexed, imported;
  fs::create_directories(indexed.photos);
  for (const char* name : {"obama.jpg", "biden.jpg", "obama2.jpg"}) CopyTestImage(name, indexed.photos);
  const std::string missing = (indexed.photos / "gone.jpg").string();
  const std::string embed_file = (indexed.dir / "batch.jsonl").string();

  RunResult embed = indexed.Run({"embed", "-o", embed_file, indexed.photos.string(), missing});
  INFO(embed.err);
  REQUIRE(embed.exit_code == 0);
  CHECK((fs::status(embed_file).permissions() & fs::perms::group_all) == fs::perms::none);  // biometric: 0600
  fs::create_directories(indexed.dir / "empty");
  for (const CorpusDir* c : {&indexed, &imported}) {  // an opt-out needs a corpus to live in
    REQUIRE(c->Run({"index", (indexed.dir / "empty").string()}).exit_code == 0);
    REQUIRE(c->Run({"optout", "add", TestImage("biden.jpg").string()}).exit_code == 0);
  }
  RunResult index = indexed.Run({"index", "--json", indexed.photos.string(), missing});
  RunResult import = imported.Run({"import", "--json", embed_file});
  INFO(index.err << import.err);
  REQUIRE(index.exit_code == 0);
  REQUIRE(import.exit_code == 0);
  for (const char* key : {"added", "noface", "errors", "faces", "optout_faces"})
    CHECK(ParseJson(import.out)[key].num() == ParseJson(index.out)[key].num());
  CHECK(ParseJson(import.out)["optout_faces"].num() == 1);
  CHECK(FacesOf(imported) == FacesOf(indexed));

  const std::string probe = TestImage("obama3.jpg").string();
  RunResult by_photo = imported.Run({"query", "-f", "json", probe});
  RunResult probe_embed = imported.Run({"embed", probe});
  REQUIRE(probe_embed.exit_code == 0);
  RunResult by_embedding = imported.Run({"query", "-f", "json", "--embedded", "-"}, probe_embed.out);
  INFO(by_embedding.err);
  REQUIRE(by_photo.exit_code == 0);
  REQUIRE(by_embedding.exit_code == 0);
  CHECK(by_embedding.out == by_photo.out);  // same faces, same distances to the last bit, same quality
  const Json answer = ParseJson(by_embedding.out);
  CHECK(answer["results"][0]["matches"].size() == 2);
  CHECK(answer["results"][0]["matches"][0]["distance_exact"].num() > 0.3);
}
