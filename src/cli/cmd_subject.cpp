// `facesearch subject add|list|show|rename|remove`: named people with several reference faces.
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/subject.h"

namespace facesearch::cli {
namespace {

struct SubjectArgs {
  std::string action;
  std::string name;
  std::string new_name;  // rename
  SubjectAddRequest request;
  OutputFormat format = OutputFormat::kTable;
};

Json ReferenceJson(const SubjectReference& r) {
  return {{"id", r.id},
          {"source", r.source},
          {"photo_sha256", r.photo_sha256},
          {"face_id", OrNull(r.face_id)},
          {"box", BoxJson(r.box)},
          {"added_at", r.added_at},
          {"added_by", r.added_by},
          {"case", r.case_id},
          {"audit_seq", r.audit_seq}};
}

// Never the embeddings: they are biometric data, kept only for searching.
Json SubjectJson(const Subject& s) {
  Json refs = Json::array(), excluded = Json::array();
  for (const SubjectReference& r : s.references) refs.push_back(ReferenceJson(r));
  for (const SubjectExclusion& e : s.exclusions)
    excluded.push_back({{"face_id", e.face_id},
                        {"added_at", e.added_at},
                        {"added_by", e.added_by},
                        {"case", e.case_id},
                        {"audit_seq", e.audit_seq}});
  return {{"name", s.name},
          {"id", s.id},
          {"created_at", s.created_at},
          {"created_by", s.created_by},
          {"case", s.case_id},
          {"references", std::move(refs)},
          {"not_this_person", std::move(excluded)}};
}

// csv/tsv: one row per reference (a subject without any: one row with empty reference cells).
void WriteDelimited(std::ostream& out, const std::vector<Subject>& subjects, OutputFormat format) {
  const bool csv = format == OutputFormat::kCsv;
  auto cell = [&](const std::string& s, bool text = true) { return csv ? CsvField(s, text) : TsvField(s, text); };
  const char sep = csv ? ',' : '\t';
  out << "subject" << sep << "reference" << sep << "source" << sep << "photo_sha256" << sep << "face_id" << sep
      << "added_at" << sep << "added_by" << sep << "case" << sep << "audit_seq\n";
  for (const Subject& s : subjects) {
    if (s.references.empty()) out << cell(s.name) << std::string(8, sep) << "\n";
    for (const SubjectReference& r : s.references)
      out << cell(s.name) << sep << r.id << sep << cell(r.source) << sep << r.photo_sha256 << sep
          << (r.face_id ? std::to_string(*r.face_id) : "") << sep << cell(r.added_at) << sep << cell(r.added_by)
          << sep << cell(r.case_id) << sep << r.audit_seq << "\n";
  }
}

void WriteTable(std::ostream& out, const std::vector<Subject>& subjects, bool with_references) {
  for (const Subject& s : subjects) {
    out << TerminalText(s.name) << "  " << s.references.size() << " reference(s), created " << TerminalText(s.created_at)
        << " by " << TerminalText(s.created_by) << (s.case_id.empty() ? "" : " case " + TerminalText(s.case_id)) << "\n";
    if (!with_references) continue;
    for (const SubjectReference& r : s.references)
      out << "  #" << r.id << "  " << TerminalText(r.source) << (r.face_id ? "" : " (face " + JsonText(BoxJson(r.box)) + ")")
          << "\n      added " << TerminalText(r.added_at) << " by " << TerminalText(r.added_by)
          << (r.case_id.empty() ? "" : " case " + TerminalText(r.case_id)) << ", audit record " << r.audit_seq
          << ", photo sha256 " << r.photo_sha256.substr(0, 16) << "\n";
    for (const SubjectExclusion& e : s.exclusions)
      out << "  not this person: face " << e.face_id << ", marked " << TerminalText(e.added_at) << " by "
          << TerminalText(e.added_by) << (e.case_id.empty() ? "" : " case " + TerminalText(e.case_id))
          << ", audit record " << e.audit_seq << "\n";
  }
}

void Write(const std::vector<Subject>& subjects, OutputFormat format, bool with_references) {
  switch (format) {
    case OutputFormat::kJson: {
      Json all = Json::array();
      for (const Subject& s : subjects) all.push_back(SubjectJson(s));
      std::cout << JsonText(with_references ? SubjectJson(subjects.front()) : all) << "\n";
      break;
    }
    case OutputFormat::kJsonl:
      for (const Subject& s : subjects) std::cout << JsonText(SubjectJson(s)) << "\n";
      break;
    case OutputFormat::kCsv:
    case OutputFormat::kTsv:
      WriteDelimited(std::cout, subjects, format);
      break;
    case OutputFormat::kTable:
      WriteTable(std::cout, subjects, with_references);
      break;
  }
}

void Run(Context& ctx, SubjectArgs& args) {
  const bool needs_name = args.action != "list";
  if (needs_name && args.name.empty())
    return ctx.Report({ErrorCode::kInvalidArgument, "subject " + args.action + " needs a NAME"});
  if (args.action == "add") {
    args.request.name = args.name;
    auto subject = AddSubject(ctx.Config(), args.request);
    if (!subject) return ctx.Report(subject.error());
    if (args.format == OutputFormat::kTable)
      std::cout << "subject '" << TerminalText(subject->name) << "' has " << subject->references.size()
                << " reference(s)\n";
    else
      Write({*subject}, args.format, true);
  } else if (args.action == "list") {
    auto subjects = ListSubjects(ctx.Config());
    if (!subjects) return ctx.Report(subjects.error());
    Write(*subjects, args.format, false);
    ctx.exit_code = subjects->empty() ? kExitNoMatch : kExitMatch;
  } else if (args.action == "show") {
    auto subject = GetSubject(ctx.Config(), args.name);
    if (!subject) return ctx.Report(subject.error());
    Write({*subject}, args.format, true);
  } else if (args.action == "exclude") {
    if (Status s = ExcludeFromSubject(ctx.Config(), args.name, args.request.face_ids); !s) return ctx.Report(s.error());
    std::cout << args.request.face_ids.size() << " face(s) marked not '" << TerminalText(args.name)
              << "': its searches, exports and erasures leave them out\n";
  } else if (args.action == "rename") {
    if (args.new_name.empty()) return ctx.Report({ErrorCode::kInvalidArgument, "subject rename needs NAME NEW-NAME"});
    if (Status s = RenameSubject(ctx.Config(), args.name, args.new_name); !s) return ctx.Report(s.error());
    std::cout << "subject '" << TerminalText(args.name) << "' is now '" << TerminalText(args.new_name) << "'\n";
  } else {
    if (Status s = RemoveSubject(ctx.Config(), args.name); !s) return ctx.Report(s.error());
    std::cout << "subject '" << TerminalText(args.name) << "' and its references removed; corpus faces stay "
              << "(`facesearch forget --subject` erases those too)\n";
  }
}

}  // namespace

void AddSubjectCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<SubjectArgs>();
  CLI::App* cmd = app.add_subcommand("subject", "Name a person with several reference photos, to search for at once");
  cmd->footer(
      "add NAME takes the largest face of each --photo and each corpus face --face-id N (the ids\n"
      "query and export print) as the subject's references; --append adds to an existing subject.\n"
      "`query --subject NAME` then searches with the mean of the references' embeddings, which on\n"
      "LFW finds more of a person than any one photo (docs/benchmarks.md, \"Subjects\"), with\n"
      "false-match rates measured for that many references. Each change is an audit record with\n"
      "the user and --case; show lists every reference with who added it, when, and its record.\n"
      "The references' embeddings are biometric data: never printed; remove erases them, and\n"
      "`forget --subject NAME` erases the subject's faces in the corpus as well. A face covered\n"
      "by an opt-out is never a reference. exclude NAME --face-id N records \"not this person\":\n"
      "the subject's searches, exports and erasures leave that face out.\n\n"
      "Examples:\n"
      "  facesearch --case 2025-017 subject add 'suspect A' --photo cctv1.jpg --photo cctv2.jpg\n"
      "  facesearch subject add 'suspect A' --append --face-id 4711\n"
      "  facesearch subject list\n"
      "  facesearch subject show 'suspect A' --format json\n"
      "  facesearch --case 2025-017 subject exclude 'suspect A' --face-id 812   # not this person\n"
      "  facesearch --case 2025-017 query --subject 'suspect A'\n"
      "  facesearch subject rename 'suspect A' 'J. Doe'\n"
      "  facesearch subject remove 'J. Doe'");
  cmd->add_option("action", args->action, "add, list, show, exclude, rename or remove")
      ->required()
      ->check(CLI::IsMember({"add", "list", "show", "exclude", "rename", "remove"}));
  cmd->add_option("name", args->name, "The subject's name (rename: its current name)");
  cmd->add_option("new_name", args->new_name, "rename: the new name");
  cmd->add_option("--photo", args->request.photos, "add: a reference photo (its largest face); repeat for more")
      ->allow_extra_args(false);
  cmd->add_option("--face-id", args->request.face_ids,
                  "add: a corpus face as a reference; exclude: a face that is not this person; repeat for more")
      ->check(CLI::PositiveNumber)
      ->allow_extra_args(false);
  cmd->add_flag("--append", args->request.append, "add: extend an existing subject instead of creating one");
  AddFormatOption(*cmd, args->format);
  AddPipelineOptions(*cmd, args->request.pipeline);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
