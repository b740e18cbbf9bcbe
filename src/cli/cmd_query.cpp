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
#include "facesearch/eval.h"

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
bool WritePaths(const std::vector<ProbeOutcome>& outcomes, bool null_separated) {
  std::set<std::string> seen;
  bool all = true;
  for (const ProbeOutcome& o : outcomes)
    for (const ProbeFace& p : o.result.probes)
      for (const Match& m : p.matches) {
        if (!seen.insert(m.image_path).second) continue;
        if (!null_separated && m.image_path.find('\n') != std::string::npos) {
          spdlog::error("not printing the matching image {}: its name holds a line break; use -0 and xargs -0 "
                        "to receive it", m.image_path);
          all = false;
          continue;
        }
        std::cout << m.image_path << (null_separated ? '\0' : '\n');
      }
  return all;
}

// The default threshold follows the corpus size (Calibration::DefaultThreshold) and says why when
// it is below 0.6. A corpus that cannot be read keeps 0.6: the query reports the real error.
void ScaleDefaultThreshold(Context& ctx, const Calibration& calibration, QueryOptions& options) {
  auto faces = CorpusFaceCount(ctx.Config());
  if (!faces) return;
  const float scaled = calibration.DefaultThreshold(*faces);
  if (scaled >= options.threshold) return;
  spdlog::info("threshold {:.2f} instead of {:.2f}: in a corpus of {} faces the default keeps the strangers "
               "expected among the matches to about {:g} (at {:.2f}: about {:.0f}); --threshold or --max-fmr "
               "set another", scaled, options.threshold, *faces, kDefaultExpectedStrangers, options.threshold,
               calibration.Fmr(options.threshold) * static_cast<double>(*faces));
  options.threshold = scaled;
}

void Run(Context& ctx, QueryArgs& args) {
  // The false-match rates come from the table measured with the corpus's embedding mode.
  auto mode = ResolvedEmbeddingMode(ctx.Config(), args.options.pipeline);
  if (!mode) return ctx.Report(mode.error());
  const Calibration calibration = Calibration::For(*mode);
  if (!calibration.exact())
    spdlog::warn("no calibration was measured for '{}' embeddings: false-match rates and --max-fmr use the {} "
                 "table ({}) and are approximate", EmbeddingModeName(*mode), calibration.mode(), calibration.source());
  if (args.max_fmr > 0) {
    args.options.threshold = calibration.ThresholdForFmr(args.max_fmr);
    if (args.options.threshold <= 0)
      return ctx.Report(Error{ErrorCode::kInvalidArgument,
                              "--max-fmr is below what the calibration table can resolve; use 1e-6 or more"});
    spdlog::debug("--max-fmr {} gives threshold {}", args.max_fmr, args.options.threshold);
  } else if (!args.threshold_given) {
    ScaleDefaultThreshold(ctx, calibration, args.options);
  }
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
  if (args.photos.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument, "no probe photo given (PHOTO... or --from-file)"});
  // The report crops the probe's faces, so a probe on stdin is kept for it.
  std::string stdin_probe;
  std::istringstream stdin_copy;
  std::streambuf* cin_buf = std::cin.rdbuf();
  if (!args.html.empty() && std::find(args.photos.begin(), args.photos.end(), "-") != args.photos.end()) {
    // At most one byte past the size limit: the query then refuses it as it would unbuffered.
    const auto limit = static_cast<size_t>(args.options.pipeline.max_file_bytes) + 1;
    char buf[1 << 16];
    while (stdin_probe.size() < limit && (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0))
      stdin_probe.append(buf, static_cast<size_t>(std::cin.gcount()));
    stdin_copy.str(stdin_probe);
    std::cin.rdbuf(stdin_copy.rdbuf());
  }
  auto outcomes = QueryPhotos(ctx.Config(), args.photos, args.options);
  std::cin.rdbuf(cin_buf);
  if (!outcomes) return ctx.Report(outcomes.error());

  bool any_match = false, any_error = false;
  for (const ProbeOutcome& o : *outcomes) {
    if (o.error) {
      any_error = true;
      spdlog::error("{}", o.error->message);
    } else if (o.result.faces_detected == 0) {
      spdlog::warn("no face found in {}; try --upsample 2 or --detector cnn for small or turned faces", o.photo);
    } else if (!o.result.any_match()) {
      spdlog::info("no face in the corpus is within distance {} of {}", args.options.threshold, o.photo);
    }
    any_match = any_match || (!o.error && o.result.any_match());
    // json/jsonl carry the quality in their records; the other formats get a warning line.
    if (!o.error && args.format != OutputFormat::kJson && args.format != OutputFormat::kJsonl)
      for (const ProbeFace& p : o.result.probes)
        if (p.quality.low()) {
          std::string issues;
          for (const std::string& i : p.quality.issues) issues += (issues.empty() ? "" : ", ") + i;
          spdlog::warn("low-quality probe: face {} of {} is {} (size {} px, sharpness {:.0f}); its distances "
                       "are less reliable than the calibration assumes",
                       p.index, o.photo, issues, p.quality.size, p.quality.sharpness);
        }
  }
  if (args.paths_only) any_error = !WritePaths(*outcomes, args.null_separated) || any_error;
  else WriteQueryResults(std::cout, *outcomes, args.options, calibration, args.format, args.fields);
  std::cout.flush();
  ctx.exit_code = any_error ? kExitError : any_match ? kExitMatch : kExitNoMatch;
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
      "say why with --case ID and --purpose TEXT.\n\n"
      "Examples:\n"
      "  facesearch query probe.jpg\n"
      "  facesearch --case 2025-017 --purpose 'robbery, Main St' query probe.jpg\n"
      "  facesearch query --max-fmr 1e-4 probe.jpg        # only strong or very strong matches\n"
      "  facesearch query --all-faces --format csv group.jpg > leads.csv\n"
      "  facesearch query --format tsv --fields image,distance,confidence p.jpg | sort -t$'\\t' -k2n\n"
      "  facesearch query --html report.html a.jpg b.jpg  # probe faces beside their matches\n"
      "  facesearch query clip.mp4                       # a video: every track searched (--face N: one)\n"
      "  facesearch query -0 --paths-only a.jpg b.jpg | xargs -0 cp -t leads/ --\n"
      "  find probes/ -name '*.jpg' -print0 | facesearch query --from-file - -0 --format tsv\n"
      "  curl -s https://example.org/p.jpg | facesearch query --format jsonl - | jq -r .image\n"
      "  facesearch query -q probe.jpg >/dev/null && echo 'seen before'");
  cmd->add_option("photos", args->photos, "Probe image or video files, or - to read one image from stdin");
  cmd->add_option("--from-file", args->from_file, "Also read probe paths from this file (- for stdin)");
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
  cmd->add_option("--face", args->face, "Search with the probe's face N (0-based, as `facesearch faces` numbers them)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(all_faces);
  cmd->add_option("-f,--format", args->format, "Output: table, json, jsonl, csv or tsv")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable},
                                              {"json", OutputFormat::kJson},
                                              {"jsonl", OutputFormat::kJsonl},
                                              {"csv", OutputFormat::kCsv},
                                              {"tsv", OutputFormat::kTsv}},
          CLI::ignore_case))
      ->default_str("table");
  AddPipelineOptions(*cmd, args->options.pipeline);
  AddVideoOptions(*cmd, args->options.pipeline.video);
  cmd->callback([&ctx, args, threshold] {
    args->threshold_given = threshold->count() > 0;
    Run(ctx, *args);
  });
}

}  // namespace facesearch::cli
