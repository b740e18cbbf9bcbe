// Subjects without models: the store's subject tables (real SQLite files), their audit records and
// erasure, and the co-appearance rule of `query --together` on hand-made outcomes.
#include <catch2/catch.hpp>

#include "cli/format.h"
#include "common/sha256.h"
#include "facesearch/eval.h"
#include "facesearch/engine.h"
#include "facesearch/subject.h"
#include "store/store.h"
#include "json.h"
#include "support.h"

using namespace facesearch;
namespace fs = std::filesystem;

namespace {

Embedding Vector(float value) {
  Embedding e{};
  e.fill(value);
  return e;
}

SubjectReference Reference(const std::string& source, float value, std::optional<int64_t> face_id = std::nullopt) {
  SubjectReference r;
  r.embedding = Vector(value);
  r.source = source;
  r.photo_sha256 = Sha256Hex(source);
  r.face_id = face_id;
  r.box = {1, 2, 30, 40};
  return r;
}

AuditRecord Record(const std::string& user, const std::string& case_id) {
  AuditRecord r;
  r.user = user;
  r.action = "subject";
  r.params = "{}";
  r.case_id = case_id;
  r.results = "null";
  return r;
}

struct SubjectStore {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  int64_t face_id = 0;  // one corpus face, of image a.jpg
  SubjectStore() {
    auto opened = Store::Open(dir / "corpus.sqlite", "models:test");
    REQUIRE(opened);
    store = std::move(*opened);
    ImageRecord image;
    image.sha256 = Sha256Hex("a.jpg");
    image.path = "/photos/a.jpg";
    Face face;
    face.embedding = Vector(0.5f);
    auto ids = store->AddImage(image, {face});
    REQUIRE(ids);
    face_id = ids->front();
  }
  std::vector<AuditRecord> Audit() {
    std::vector<AuditRecord> records;
    REQUIRE(store->ForEachAudit({}, [&](const AuditRecord& r) { records.push_back(r); }));
    return records;
  }
};

Match MatchOf(int64_t face_id, const std::string& image, float distance) {
  Match m;
  m.face_id = face_id;
  m.image_path = "/photos/" + image;
  m.image_sha256 = Sha256Hex(image);
  m.distance = distance;
  return m;
}

ProbeOutcome OutcomeWith(const std::string& probe, std::vector<Match> matches) {
  ProbeOutcome o;
  o.photo = probe;
  o.result.probes.push_back(ProbeFace{0, {}, {}, std::move(matches)});
  return o;
}

}  // namespace

TEST_CASE("A subject's references keep who added them, when, for which case and their audit record", "[subject]") {
  SubjectStore s;
  auto added = s.store->AddSubjectReferences("suspect A", false, {Reference("cctv1.jpg", 0.1f)}, Record("ana", "C-1"));
  REQUIRE(added);
  auto appended = s.store->AddSubjectReferences("suspect A", true, {Reference("face-id", 0.3f, s.face_id)},
                                                Record("ben", "C-2"));
  REQUIRE(appended);
  REQUIRE(appended->references.size() == 2);
  const std::vector<AuditRecord> audit = s.Audit();
  REQUIRE(audit.size() == 2);
  const SubjectReference& first = appended->references[0];
  const SubjectReference& second = appended->references[1];
  CHECK(first.added_by == "ana");
  CHECK(first.case_id == "C-1");
  CHECK(first.audit_seq == audit[0].seq);
  CHECK(first.added_at == audit[0].at);
  CHECK(first.source == "cctv1.jpg");
  CHECK_FALSE(first.face_id);
  CHECK(first.embedding == Vector(0.1f));
  CHECK(second.added_by == "ben");
  CHECK(second.audit_seq == audit[1].seq);
  CHECK(second.face_id == s.face_id);
  CHECK(appended->created_by == "ana");
  CHECK(audit[1].results == "{\"subject_id\":" + std::to_string(appended->id) + ",\"references\":1}");
  CHECK(SubjectTemplate(*appended) == Vector(0.2f));
}

TEST_CASE("Subject changes that cannot apply fail with the right code and change nothing, not even the audit log",
          "[subject]") {
  SubjectStore s;
  REQUIRE(s.store->AddSubjectReferences("A", false, {Reference("a.jpg", 0.1f)}, Record("ana", "")));
  auto duplicate = s.store->AddSubjectReferences("A", false, {Reference("b.jpg", 0.2f)}, Record("ana", ""));
  REQUIRE_FALSE(duplicate);
  CHECK(duplicate.error().code == ErrorCode::kInvalidArgument);
  auto unknown = s.store->AddSubjectReferences("B", true, {Reference("b.jpg", 0.2f)}, Record("ana", ""));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::kNotFound);
  REQUIRE(s.store->AddSubjectReferences("C", false, {Reference("c.jpg", 0.3f)}, Record("ana", "")));
  auto taken = s.store->RenameSubject("A", "C", Record("ana", ""));
  REQUIRE_FALSE(taken);
  CHECK(taken.error().code == ErrorCode::kInvalidArgument);
  CHECK(s.store->RenameSubject("nobody", "D", Record("ana", "")).error().code == ErrorCode::kNotFound);
  CHECK(s.store->RemoveSubject("nobody", Record("ana", "")).error().code == ErrorCode::kNotFound);
  CHECK(s.Audit().size() == 2);
  auto all = s.store->Subjects();
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].name == "A");
  CHECK((*all)[0].references.size() == 1);
}

TEST_CASE("Removing a subject, or erasing the face a reference came from, erases the reference and marks the scrub",
          "[subject]") {
  SubjectStore s;
  REQUIRE(s.store->AddSubjectReferences("A", false, {Reference("a.jpg", 0.1f), Reference("face", 0.5f, s.face_id)},
                                        Record("ana", "")));
  REQUIRE(s.store->AddSubjectReferences("B", false, {Reference("b.jpg", 0.2f)}, Record("ana", "")));
  REQUIRE(s.store->Erase({}, {s.face_id}, "forget", [](const EraseCounts&) { return Record("ana", ""); }));
  auto a = s.store->Subjects("A");
  REQUIRE(a);
  REQUIRE(a->size() == 1);
  CHECK(a->front().references.size() == 1);  // the face's reference went with it
  CHECK(a->front().references.front().source == "a.jpg");
  REQUIRE(s.store->FinishScrub());
  REQUIRE(s.store->RemoveSubject("B", Record("ana", "C-9")));
  CHECK(s.store->ScrubPending().value());
  CHECK(s.store->Subjects("B").value().empty());
  REQUIRE(s.store->Erase({}, {}, "forget", [](const EraseCounts&) { return Record("ana", ""); }, a->front().id));
  CHECK(s.store->Subjects().value().empty());
  CHECK(s.Audit().back().action == "subject");
}

TEST_CASE("'Not this person' is recorded with its audit record, refused for a reference or an unknown face, and goes "
          "with the face",
          "[subject]") {
  SubjectStore s;
  REQUIRE(s.store->AddSubjectReferences("A", false, {Reference("a.jpg", 0.1f)}, Record("ana", "")));
  REQUIRE(s.store->AddSubjectReferences("B", false, {Reference("face", 0.5f, s.face_id)}, Record("ana", "")));
  CHECK(s.store->ExcludeFromSubject("B", {s.face_id}, Record("ana", "")).error().code == ErrorCode::kInvalidArgument);
  CHECK(s.store->ExcludeFromSubject("A", {s.face_id + 99}, Record("ana", "")).error().code == ErrorCode::kNotFound);
  CHECK(s.store->ExcludeFromSubject("C", {s.face_id}, Record("ana", "")).error().code == ErrorCode::kNotFound);
  CHECK(s.Audit().size() == 2);
  REQUIRE(s.store->ExcludeFromSubject("A", {s.face_id}, Record("ben", "C-3")));
  Subject a = s.store->Subjects("A").value().front();
  REQUIRE(a.exclusions.size() == 1);
  CHECK(a.Excludes(s.face_id));
  CHECK(a.exclusions[0].added_by == "ben");
  CHECK(a.exclusions[0].audit_seq == s.Audit().back().seq);
  REQUIRE(s.store->Erase({}, {s.face_id}, "forget", [](const EraseCounts&) { return Record("ana", ""); }));
  CHECK(s.store->Subjects("A").value().front().exclusions.empty());
}

TEST_CASE("Subject names are refused when empty, too long, with control characters or a leading dash", "[subject]") {
  CHECK(CheckSubjectName("J. Doe (2025-017)"));
  CHECK_FALSE(CheckSubjectName(""));
  CHECK_FALSE(CheckSubjectName(std::string(101, 'a')));
  CHECK_FALSE(CheckSubjectName("a\nb"));
  CHECK_FALSE(CheckSubjectName("--photo"));
}

TEST_CASE("together keeps the images where every probe matches, each by a different face", "[subject]") {
  // Both probes match face 1 of group.jpg best; only the second also matches face 2 there.
  const ProbeOutcome a = OutcomeWith("a.jpg", {MatchOf(1, "group.jpg", 0.30f), MatchOf(5, "solo.jpg", 0.20f)});
  const ProbeOutcome b = OutcomeWith("b.jpg", {MatchOf(1, "group.jpg", 0.40f), MatchOf(2, "group.jpg", 0.45f),
                                               MatchOf(3, "pair.jpg", 0.50f)});
  const ProbeOutcome c = OutcomeWith("c.jpg", {MatchOf(4, "pair.jpg", 0.10f)});
  std::vector<TogetherImage> together = FindTogether({a, b});
  REQUIRE(together.size() == 1);
  CHECK(together[0].image_path == "/photos/group.jpg");
  CHECK(together[0].matches[0].face_id == 1);
  CHECK(together[0].matches[1].face_id == 2);
  CHECK(together[0].worst_distance == 0.45f);
  // One face can never stand for two people.
  CHECK(FindTogether({OutcomeWith("a.jpg", {MatchOf(1, "group.jpg", 0.3f)}),
                      OutcomeWith("b.jpg", {MatchOf(1, "group.jpg", 0.4f)})}).empty());
  CHECK(FindTogether({a, b, c}).empty());
  ProbeOutcome failed = b;
  failed.error = Error{ErrorCode::kDecode, "cannot read"};
  CHECK(FindTogether({a, failed}).empty());
}

TEST_CASE("together output names each probe in every format, with the calibration of a subject's number of references",
          "[subject][format]") {
  ProbeOutcome a = OutcomeWith("a.jpg", {MatchOf(1, "group.jpg", 0.30f)});
  ProbeOutcome s = OutcomeWith("subject:=HYPERLINK(\"x\")", {MatchOf(2, "group.jpg", 0.20f)});
  s.result.subject = "=HYPERLINK(\"x\")";
  s.result.references = 3;
  const std::vector<ProbeOutcome> outcomes{a, s};
  const std::vector<TogetherImage> images = FindTogether(outcomes);
  const Calibration plain = Calibration::For(EmbeddingMode{});
  const std::vector<Calibration> cals{plain, plain.ForReferences(3)};
  CHECK(cals[1].mode() == "plain refs=3");
  CHECK(cals[1].exact());
  CHECK_FALSE(plain.ForReferences(9).exact());
  auto render = [&](cli::OutputFormat format) {
    std::ostringstream out;
    cli::WriteTogetherResults(out, images, outcomes, cals, format);
    return out.str();
  };
  const test::Json json = test::ParseJson(render(cli::OutputFormat::kJson));
  REQUIRE(json["together"].size() == 1);
  CHECK(json["probes"][1].str() == s.photo);
  CHECK(json["together"][0]["matches"][1]["probe"].str() == s.photo);
  CHECK(json["together"][0]["matches"][1]["fmr"].num() == Approx(cals[1].Fmr(0.20f)).epsilon(0.05));
  CHECK(test::ParseJsonLines(render(cli::OutputFormat::kJsonl)).size() == 1);
  const std::string csv = render(cli::OutputFormat::kCsv);
  CHECK(csv.find(",\"subject:=HYPERLINK(\"\"x\"\")\",2,") != std::string::npos);
  CHECK(render(cli::OutputFormat::kTable).find("1 image(s) with all 2 probes") != std::string::npos);
}

TEST_CASE("forget and export --subject default to the distance where the subject's references have one photo's "
          "false-match rate at the same-person distance",
          "[subject]") {
  const Calibration photo = Calibration::For(EmbeddingMode{});
  CHECK(frontend::SubjectThreshold(photo, 1) == photo.same_person_distance());
  for (int references : {2, 3, 5}) {
    INFO(references << " references");
    const float t = frontend::SubjectThreshold(photo, references);
    // Distances to a template of several faces are shorter, strangers' too: the same risk sits lower.
    CHECK(t < photo.same_person_distance());
    CHECK(t > 0.3f);
    CHECK(photo.ForReferences(references).Fmr(t) <= photo.Fmr(photo.same_person_distance()) * 1.0001);
  }
}
