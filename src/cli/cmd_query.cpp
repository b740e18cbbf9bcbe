// `facesearch query PHOTO`
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "cli/cli.h"
#include "cli/format.h"
#include "cli/html_report.h"
#include "common/json.h"
#include "facesearch/eval.h"
#include "facesearch/subject.h"

namespace facesearch::cli {
namespace {

struct QueryArgs {
  std::vector<std::string> photos;
  std::string from_file;  // a list of probe paths; "-" for stdin
  bool null_separated = false;
  int face = -1;
  QueryOptions options;
  double max_fmr = 0;  // set: the threshold comes from the calibration table
  bool threshold_given = false;  // -t/--threshold on the command line (else: the scaled default)
  OutputFormat format = OutputFormat::kTable;
  bool paths_only = false;
  std::string fields_list;           // --fields a,b,c
  std::vector<std::string> fields;  // its csv/tsv columns
  std::string html;  // --html FILE
  std::string embedded;  // --embedded FILE: probes from an embed file instead of photos
  int64_t total_faces = 0;  // --total-faces N: size the default threshold for N faces
  std::vector<std::string> subjects;  // --subject NAME...
  bool together = false;              // --together
};

// Appends the probe paths listed in `file` (newline- or NUL-separated).
Status ReadProbeList(const std::string& file, bool null_separated, std::vector<std::string>& photos) {
  std::ifstream in;
  if (file != "-") {
    in.open(file);
    if (!in) return Fail(ErrorCode::kNotFound, "cannot open probe list " + file);
  }
  std::istream& src = file == "-" ? std::cin : in;
  for (std::string line; std::getline(src, line, null_separated ? '\0' : '\n');) {
    if (!null_separated && !line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) photos.push_back(line);
  }
  return Ok();
}

// --paths-only: each matching image once, in rank order of first appearance. One per line, a
// name holding a line break would reach `xargs -d '\n'` or `while read` as two names (a crafted
// one naming any other file): such a name is refused there, and -0 prints it. Returns whether
// every path was printed.
bool WritePaths(const std::vector<std::string>& paths, bool null_separated) {
  std::set<std::string> seen;
  bool all = true;
  for (const std::string& path : paths) {
    if (!seen.insert(path).second) continue;
    if (!null_separated && path.find('\n') != std::string::npos) {
      spdlog::error("not printing the matching image {}: its name holds a line break; use -0 and xargs -0 "
                    "to receive it", path);
      all = false;
      continue;
    }
    std::cout << path << (null_separated ? '\0' : '\n');
  }
  return all;
}

bool WritePaths(const std::vector<ProbeOutcome>& outcomes, bool null_separated) {
  std::vector<std::string> paths;
  for (const ProbeOutcome& o : outcomes)
    for (const ProbeFace& p : o.result.probes)
      for (const Match& m : p.matches) paths.push_back(m.image_path);
  return WritePaths(paths, null_separated);
}

bool WritePaths(const std::vector<TogetherImage>& images, bool null_separated) {
  std::vector<std::string> paths;
  for (const TogetherImage& image : images) paths.push_back(image.image_path);
  return WritePaths(paths, null_separated);
}

// The same query on a `facesearch serve` (--server): the probes are uploaded, the server answers
// in the chosen format with the exit status.
void RunRemote(Context& ctx, QueryArgs& args) {
  if (args.paths_only || !args.html.empty() || !args.subjects.empty() || args.together)
    return ctx.Report(Error{ErrorCode::kInvalidArgument, "--paths-only, --html, --subject and "
                                                         "--together are not available with --server"});
  if (!args.from_file.empty())
    if (Status s = ReadProbeList(args.from_file, args.null_separated, args.photos); !s) return ctx.Report(s.error());
  if (!args.embedded.empty() && !args.photos.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "--embedded FILE gives the probes: leave out PHOTO... and --from-file"});
  if (args.photos.empty() && args.embedded.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument, "no probe given (PHOTO..., --from-file or --embedded FILE)"});
  server::ClientRequest request{"POST", "/v1/query", {}, {}};
  auto& p = request.params;
  p.emplace_back("top_k", std::to_string(args.options.top_k));
  if (args.threshold_given) p.emplace_back("threshold", fmt::format("{}", args.options.threshold));
  if (args.max_fmr > 0) p.emplace_back("max_fmr", fmt::format("{}", args.max_fmr));
  if (args.total_faces > 0) p.emplace_back("total_faces", std::to_string(args.total_faces));
  if (args.options.all_faces) p.emplace_back("all_faces", "true");
  if (!args.options.collapse_copies) p.emplace_back("no_collapse", "true");
  if (args.face >= 0) p.emplace_back("face", std::to_string(args.face));
  p.emplace_back("format", OutputFormatName(args.format));
  if (!args.fields_list.empty()) p.emplace_back("fields", args.fields_list);
  for (const std::string& photo : args.photos) {
    auto part = PhotoPart("image", photo, args.options.pipeline.max_file_bytes);
    if (!part) return ctx.Report(part.error());
    request.parts.push_back(std::move(*part));
  }
  if (!args.embedded.empty()) {  // the embed file, as it is: the server reads and checks it
    auto part = PhotoPart("embedded", args.embedded, args.options.pipeline.max_file_bytes);
    if (!part) return ctx.Report(part.error());
    part->content_type = "application/x-ndjson";
    request.parts.push_back(std::move(*part));
  }
  RunOnServer(ctx, std::move(request));
}

// The threshold from --max-fmr, --threshold as given, or the default sized by the corpus (by
// --total-faces for one shard of many), on `calibration`'s table. A corpus that cannot be read
// keeps the model's same-person distance: the query reports the real error.
Status ChooseThreshold(Context& ctx, const QueryArgs& args, const Calibration& calibration, QueryOptions& options) {
  const int64_t faces = args.max_fmr > 0 || args.threshold_given ? 0
                        : args.total_faces > 0                   ? args.total_faces
                                                                 : CorpusFaceCount(ctx.Config()).value_or(0);
  std::string note;
  FS_ASSIGN(options.threshold,
            ChooseQueryThreshold(calibration, args.threshold_given ? std::optional(args.options.threshold) : std::nullopt,
                                 args.max_fmr, faces, &note));
  if (!note.empty()) spdlog::info("{}", note);
  return Ok();
}

// Each --subject, searched with its own threshold: the distance to a subject's template has its
// own calibration (by number of references).
Result<std::vector<ProbeOutcome>> QuerySubjectArgs(Context& ctx, const QueryArgs& args, const Calibration& calibration) {
  std::vector<std::pair<std::string, QueryOptions>> subjects;
  for (const std::string& name : args.subjects) {
    FS_ASSIGN(Subject subject, GetSubject(ctx.Config(), name));
    QueryOptions options = args.options;  // its threshold: as given, or the default to scale
    const Calibration own = calibration.ForReferences(static_cast<int>(subject.references.size()));
    FS_TRY(ChooseThreshold(ctx, args, own, options));
    subjects.emplace_back(name, options);
  }
  return QuerySubjects(ctx.Config(), subjects);
}

// --together: the images in which every probe and subject appears, one row per image and probe.
void WriteTogether(const std::vector<TogetherImage>& images, const std::vector<ProbeOutcome>& outcomes,
                   const Calibration& calibration, OutputFormat format) {
  std::vector<Calibration> cals;
  for (const ProbeOutcome& o : outcomes)
    cals.push_back(o.result.subject.empty() ? calibration : calibration.ForReferences(o.result.references));
  WriteTogetherResults(std::cout, images, outcomes, cals, format);
}

void Run(Context& ctx, QueryArgs& args) {
  if (!ctx.server.empty()) return RunRemote(ctx, args);
  // The false-match rates come from the table measured with the corpus's embedding mode.
  auto mode = ResolvedEmbeddingMode(ctx.Config(), args.options.pipeline);
  if (!mode) return ctx.Report(mode.error());
  const Calibration calibration = Calibration::For(*mode);
  if (!calibration.exact())
    spdlog::warn("no calibration was measured for '{}' embeddings: false-match rates and --max-fmr use the {} "
                 "table ({}) and are approximate", EmbeddingModeName(*mode), calibration.mode(), calibration.source());
  if (args.face >= 0) args.options.face = args.face;
  for (size_t start = 0; !args.fields_list.empty() && start <= args.fields_list.size();) {
    const size_t comma = std::min(args.fields_list.find(',', start), args.fields_list.size());
    args.fields.push_back(args.fields_list.substr(start, comma - start));
    start = comma + 1;
  }
  if (Status s = CheckFields(args.fields); !s) return ctx.Report(s.error());
  if (!args.fields.empty() && args.format != OutputFormat::kCsv && args.format != OutputFormat::kTsv)
    return ctx.Report(Error{ErrorCode::kInvalidArgument, "--fields chooses csv/tsv columns: add --format csv or tsv"});
  if (!args.from_file.empty())
    if (Status s = ReadProbeList(args.from_file, args.null_separated, args.photos); !s) return ctx.Report(s.error());
  if (!args.embedded.empty() && (!args.photos.empty() || !args.subjects.empty() || !args.html.empty()))
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "--embedded FILE gives the probes: leave out PHOTO..., --from-file, --subject and --html"});
  if (args.photos.empty() && args.subjects.empty() && args.embedded.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "no probe given (PHOTO..., --from-file, --subject NAME or --embedded FILE)"});
  if (args.together && args.photos.size() + args.subjects.size() < 2)
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "--together needs two or more probes (photos or --subject), to find images of them together"});
  if (!args.html.empty() && args.together)
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "--html reports each probe's matches, not co-appearance: leave it out with --together"});
  // The report crops the probe's faces, so a probe on stdin is kept for it.
  std::string stdin_probe;
  std::istringstream stdin_copy;
  const bool keep_stdin =
      !args.html.empty() && std::find(args.photos.begin(), args.photos.end(), "-") != args.photos.end();
  if (keep_stdin) {
    // At most one byte past the size limit: the query then refuses it as it would unbuffered.
    const auto limit = static_cast<size_t>(args.options.pipeline.max_file_bytes) + 1;
    char buf[1 << 16];
    while (stdin_probe.size() < limit && (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0))
      stdin_probe.append(buf, static_cast<size_t>(std::cin.gcount()));
    stdin_copy.str(stdin_probe);
  }
  // Subjects first: an unknown name fails the command before any photo is searched.
  auto subject_outcomes = QuerySubjectArgs(ctx, args, calibration);
  if (!subject_outcomes) return ctx.Report(subject_outcomes.error());
  if (Status s = ChooseThreshold(ctx, args, calibration, args.options); !s) return ctx.Report(s.error());
  std::vector<ProbeImage> probes;
  for (const std::string& photo : args.photos)
    probes.push_back(PhotoArg(photo, keep_stdin ? static_cast<std::istream&>(stdin_copy) : std::cin));
  auto outcomes = !args.embedded.empty()
                      ? QueryEmbedded(ctx.Config(), args.embedded, args.embedded == "-" ? &std::cin : nullptr,
                                      args.options)
                  : args.photos.empty() ? Result<std::vector<ProbeOutcome>>{}
                                        : QueryPhotos(ctx.Config(), probes, args.options);
  if (!outcomes) return ctx.Report(outcomes.error());
  std::move(subject_outcomes->begin(), subject_outcomes->end(), std::back_inserter(*outcomes));

  for (const LogLine& line : QueryMessages(*outcomes, args.format)) spdlog::log(line.level, "{}", line.text);
  bool paths_refused = false, together_none = false;
  if (args.together) {
    const std::vector<TogetherImage> images = FindTogether(*outcomes);
    if (args.paths_only) paths_refused = !WritePaths(images, args.null_separated);
    else WriteTogether(images, *outcomes, calibration, args.format);
    together_none = images.empty();
  } else if (args.paths_only) {
    paths_refused = !WritePaths(*outcomes, args.null_separated);
  } else {
    WriteQueryResults(std::cout, *outcomes, args.options, calibration, args.format, args.fields);
  }
  std::cout.flush();
  // --together answers whether the probes appear together: no such image is "no match".
  const int code = QueryExitCode(*outcomes);
  ctx.exit_code = paths_refused ? kExitError : together_none && code == kExitMatch ? kExitNoMatch : code;
  if (!args.html.empty()) {
    HtmlReportContext report{ctx.case_id, ctx.purpose, stdin_probe.empty() ? nullptr : &stdin_probe, &calibration};
    if (Status s = WriteHtmlReport(args.html, *outcomes, args.options, report); !s) return ctx.Report(s.error());
    spdlog::info("report written to {}", args.html);
  }
}

}  // namespace

void AddQueryCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<QueryArgs>();
  CLI::App* cmd = app.add_subcommand("query", "Find the corpus faces that match the face in a photo");
  cmd->footer(
      "Matches are faces whose distance to the probe is at most --threshold, nearest first. Each\n"
      "carries its FMR: the share of different-person pairs that come this close on LFW, and a band\n"
      "(very strong <= 1e-5 < strong <= 1e-4 < moderate <= 1e-3 < weak <= 1e-2 < very weak). In a\n"
      "corpus of N faces about FMR x N strangers are expected within the threshold: a match is a\n"
      "lead for a person to check, not an identification. So the default threshold shrinks as the\n"
      "corpus grows, keeping FMR x N at about 1 (stderr says when it is below 0.6).\n"
      "Several probes (PHOTO..., --from-file) share one model load; every row names its probe, and\n"
      "--format json prints an array of per-probe objects. --face N picks one face of each probe.\n"
      "A match in a video shows the time range its face was seen in (video.first, video.last).\n"
      "Exit status: 0 at least one match, 1 no match (or no face in the probe), 2 error (including\n"
      "any probe that could not be read; the other probes are still searched and printed).\n"
      "Every query is recorded in the audit log before results are shown (`facesearch audit`);\n"
      "say why with --case ID and --purpose TEXT.\n"
      "Matches in copies of one picture (resized, recompressed: near-duplicate images) show as one\n"
      "row, the nearest, with '(+2 copies)'; --no-collapse lists every copy, marked 'copy of face N'.\n"
      "Each match also carries its image's EXIF capture time, camera and GPS position when known.\n\n"
      "Examples:\n"
      "  facesearch query probe.jpg\n"
      "  facesearch --case 2025-017 --purpose 'robbery, Main St' query probe.jpg\n"
      "  facesearch query --max-fmr 1e-4 probe.jpg        # only strong or very strong matches\n"
      "  facesearch query --all-faces --format csv group.jpg > leads.csv\n"
      "  facesearch query --format tsv --fields image,distance,confidence p.jpg | sort -t$'\\t' -k2n\n"
      "  facesearch query --html report.html a.jpg b.jpg  # probe faces beside their matches\n"
      "  facesearch query clip.mp4                       # a video: every track searched (--face N: one)\n"
      "  facesearch query -0 --paths-only a.jpg b.jpg | xargs -0 cp -t leads/ --\n"
      "  facesearch query --no-collapse --format csv --fields image,copy_of,taken_at p.jpg\n"
      "  find probes/ -name '*.jpg' -print0 | facesearch query --from-file - -0 --format tsv\n"
      "  curl -s https://example.org/p.jpg | facesearch query --format jsonl - | jq -r .image\n"
      "  facesearch query -q probe.jpg >/dev/null && echo 'seen before'\n"
      "  facesearch embed probe.jpg | facesearch query --embedded - -f json   # probe embedded elsewhere\n"
      "  facesearch query --embedded p.jsonl --total-faces 3000000000 -f json  # one shard of many\n"
      "  facesearch --case 2025-017 query --subject 'suspect A'   # all its reference photos at once\n"
      "  facesearch query --together --subject 'suspect A' b.jpg  # images where both appear");
  cmd->add_option("photos", args->photos, "Probe image or video files, or - to read one image from stdin");
  cmd->add_option("--subject", args->subjects,
                  "Search with a subject's references at once (`facesearch subject`), ranked by the distance "
                  "to their mean; repeat for several, mix with photos")
      ->allow_extra_args(false);  // one name per --subject: the photos after it stay probes
  cmd->add_flag("--together", args->together,
                "Print only the images in which every probe (photo or --subject) matches, each by a "
                "different face (co-appearance); raise --top-k in large corpora");
  cmd->add_option("--from-file", args->from_file, "Also read probe paths from this file (- for stdin)");
  cmd->add_option("--embedded", args->embedded,
                  "Search with the faces of an embed file's records (`facesearch embed`; - for stdin) instead "
                  "of photos: the same matches and distances as the photos give")
      ->type_name("FILE");
  cmd->add_option("--total-faces", args->total_faces,
                  "Size the default threshold for this many faces instead of the corpus's count: the corpus "
                  "is one shard of a larger one (docs/scale.md)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("-0,--null", args->null_separated,
                "--from-file lists and --paths-only output are NUL-separated (find -print0, xargs -0); "
                "without it --paths-only refuses (exit 2) a name that holds a line break");
  cmd->add_flag("--paths-only", args->paths_only,
                "Print only the matching image paths, each once (add -0 for a pipeline: xargs -0)");
  cmd->add_option("--fields", args->fields_list,
                  "csv/tsv columns to print, in order, e.g. --fields image,distance,confidence "
                  "(also sha256, probe_low_quality; default: see docs/output.md)");
  cmd->add_option("--html", args->html,
                  "Also write a self-contained HTML report (face crops inlined, mode 0600) to this file");
  cmd->add_option("-k,--top-k", args->options.top_k, "Most matches to return per probe face")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  CLI::Option* threshold =
      cmd->add_option("-t,--threshold", args->options.threshold,
                      "Largest distance that counts as a match (lower is stricter). Default: dlib's 0.6, "
                      "lowered in corpora of more than ~160 faces so that about 1 stranger is expected "
                      "among the matches (0.54 at 1,000 faces, 0.41 at 100,000)")
          ->check(CLI::Range(0.0, 2.0));
  cmd->add_option("--max-fmr", args->max_fmr,
                  "Instead of --threshold: the largest false-match rate to accept, e.g. 1e-3 "
                  "(from the LFW calibration measured with the corpus's embedding mode)")
      ->check(CLI::Range(1e-9, 1.0))
      ->excludes(threshold);
  CLI::Option* all_faces = cmd->add_flag("--all-faces", args->options.all_faces,
                                         "Search with every face in the probe (default: the largest face only)");
  cmd->add_flag_callback("--no-collapse", [args] { args->options.collapse_copies = false; },
                "List every copy of a picture as its own match (default: near-duplicate images fold "
                "into the nearest, which counts them in 'copies')");
  cmd->add_option("--face", args->face, "Search with the probe's face N (0-based, as `facesearch faces` numbers them)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(all_faces);
  AddFormatOption(*cmd, args->format);
  AddPipelineOptions(*cmd, args->options.pipeline);
  AddServerOptions(*cmd, ctx);
  AddVideoOptions(*cmd, args->options.pipeline.video);
  cmd->callback([&ctx, args, threshold] {
    args->threshold_given = threshold->count() > 0;
    Run(ctx, *args);
  });
}

}  // namespace facesearch::cli
