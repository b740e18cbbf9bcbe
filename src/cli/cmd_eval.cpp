// `facesearch eval lfw|calibrate`: accuracy on Labeled Faces in the Wild, and the calibration table.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/eval.h"

namespace facesearch::cli {
namespace {

struct EvalArgs {
  std::string images;
  std::string pairs;
  std::string roc;
  std::string output;
  bool json = false;
};

std::string Fixed3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string Pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v);
  return buf;
}

Status WriteRoc(const std::string& path, const VerificationReport& v) {
  std::ofstream out(path);
  if (!out) return Fail(ErrorCode::kIo, "cannot write " + path);
  out << "threshold,far,tar\n";
  for (const RocPoint& p : v.roc) out << p.threshold << ',' << p.far << ',' << p.tar << '\n';
  return out.flush() ? Ok() : Fail(ErrorCode::kIo, "cannot write " + path);
}

void PrintLfw(const VerificationReport& v, const IdentificationReport& id, bool json) {
  if (json) {
    const Json verification = {{"pairs", v.pairs},
                               {"pairs_missed", v.pairs_missed},
                               {"images_missed", v.images_missed},
                               {"mean_accuracy", v.mean_accuracy},
                               {"std_accuracy", v.std_accuracy},
                               {"mean_accuracy_found_pairs", v.mean_accuracy_found},
                               {"accuracy_at_0_6", v.accuracy_at_06},
                               {"same_person_distance", v.same_person_distance},
                               {"accuracy_at_same_person_distance", v.accuracy_at_same_person},
                               {"tar_at_far_0_1pct", v.tar_at_far_1e3},
                               {"tar_at_far_1pct", v.tar_at_far_1e2}};
    const Json identification = {{"gallery", id.gallery},
                                 {"distractors", id.distractors},
                                 {"mated_probes", id.mated_probes},
                                 {"non_mated_probes", id.non_mated_probes},
                                 {"probes_missed", id.probes_missed},
                                 {"rank1", id.rank1},
                                 {"rank10", id.rank10},
                                 {"fnir_at_fpir_1pct", id.fnir_at_fpir_1e2},
                                 {"threshold_fpir_1pct", id.threshold_fpir_1e2},
                                 {"fnir_at_fpir_0_1pct", id.fnir_at_fpir_1e3},
                                 {"threshold_fpir_0_1pct", id.threshold_fpir_1e3}};
    std::cout << JsonText({{"verification", verification}, {"identification", identification}}) << "\n";
    return;
  }
  std::cout << "LFW verification (View 2, 10 folds, threshold chosen on 9 folds)\n"
            << "  accuracy:                 " << Pct(v.mean_accuracy) << " ± " << Pct(v.std_accuracy)
            << " (pairs with a missing face count as errors)\n"
            << "  pairs with a missing face: " << v.pairs_missed << " of " << v.pairs << " (" << v.images_missed
            << " images without a face)\n"
            << "  accuracy on found pairs:  " << Pct(v.mean_accuracy_found) << "\n"
            << "  accuracy at " << Fixed3(v.same_person_distance) << " (the model's same-person distance): "
            << Pct(v.accuracy_at_same_person) << "\n"
            << "  TAR at FAR 0.1% / 1%:     " << Pct(v.tar_at_far_1e3) << " / " << Pct(v.tar_at_far_1e2) << "\n"
            << "LFW open-set 1:N identification\n"
            << "  gallery:                  " << id.gallery << " faces (" << id.distractors << " distractors)\n"
            << "  probes:                   " << id.mated_probes << " mated, " << id.non_mated_probes
            << " non-mated, " << id.probes_missed << " without a face\n"
            << "  rank-1 / rank-10:         " << Pct(id.rank1) << " / " << Pct(id.rank10) << "\n"
            << "  FNIR at FPIR 1%:          " << Pct(id.fnir_at_fpir_1e2) << " (threshold "
            << Fixed3(id.threshold_fpir_1e2) << ")\n"
            << "  FNIR at FPIR 0.1%:        " << Pct(id.fnir_at_fpir_1e3) << " (threshold "
            << Fixed3(id.threshold_fpir_1e3) << ")\n";
}

void RunLfw(Context& ctx, const EvalArgs& a) {
  auto v = EvalLfwVerification(ctx.Config(), a.images, a.pairs);
  if (!v) return ctx.Report(v.error());
  auto id = EvalLfwIdentification(ctx.Config(), a.images);
  if (!id) return ctx.Report(id.error());
  if (!a.roc.empty())
    if (Status s = WriteRoc(a.roc, *v); !s) return ctx.Report(s.error());
  PrintLfw(*v, *id, a.json);
  ctx.exit_code = kExitMatch;
}

void RunCalibrate(Context& ctx, const EvalArgs& a) {
  auto table = BuildLfwCalibration(ctx.Config(), a.images);
  if (!table) return ctx.Report(table.error());
  auto mode = ResolvedEmbeddingMode(ctx.Config(), PipelineOptions{});
  if (!mode) return ctx.Report(mode.error());
  std::ofstream file;
  if (!a.output.empty()) {
    file.open(a.output);
    if (!file) return ctx.Report(Error{ErrorCode::kIo, "cannot write " + a.output});
  }
  std::ostream& out = a.output.empty() ? std::cout : file;
  out << "# facesearch calibration: " << (mode->model == EmbeddingModel::kSface ? "SFace" : "dlib ResNet")
      << " distances on LFW, one face per image, embedding mode " << EmbeddingModeName(*mode) << ".\n"
      << "# " << table->genuine_pairs << " same-person pairs, " << table->impostor_pairs
      << " different-person pairs. fmr = share of different-person pairs at or below the distance;\n"
      << "# fnmr = share of same-person pairs above it. Regenerate: facesearch eval calibrate (docs/benchmarks.md).\n"
      << "distance\tfmr\tfnmr\n";
  for (const CalibrationRow& r : table->rows) {
    char line[96];
    std::snprintf(line, sizeof line, "%.2f\t%.6g\t%.6g\n", r.distance, r.fmr, r.fnmr);
    out << line;
  }
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddEvalCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Measure accuracy on LFW and build the confidence calibration");
  cmd->require_subcommand(1);
  cmd->footer("Both subcommands read embeddings from a corpus that indexed the LFW images, so they\n"
              "measure exactly what `query` searches.\n\n"
              "Examples:\n"
              "  facesearch --corpus /tmp/lfw index lfw/images\n"
              "  facesearch --corpus /tmp/lfw eval lfw --images lfw/images --pairs lfw/pairs.txt --roc roc.csv\n"
              "  facesearch --corpus /tmp/lfw eval calibrate --images lfw/images --output data/calibration.tsv");
  CLI::App* lfw = cmd->add_subcommand("lfw", "LFW verification (10-fold View 2) and open-set 1:N identification");
  lfw->add_option("--images", args->images, "LFW images/ directory (Name/Name_NNNN.jpg)")->required();
  lfw->add_option("--pairs", args->pairs, "LFW View 2 pairs.txt")->required();
  lfw->add_option("--roc", args->roc, "Write the ROC curve (threshold,far,tar) as CSV to this file");
  lfw->add_flag("--json", args->json, "Print the figures as JSON");
  lfw->footer("Examples:\n  facesearch --corpus /tmp/lfw eval lfw --images lfw/images --pairs lfw/pairs.txt --json");
  lfw->callback([&ctx, args] { RunLfw(ctx, *args); });
  CLI::App* cal = cmd->add_subcommand("calibrate", "Tabulate false-match and false-non-match rates per distance");
  cal->add_option("--images", args->images, "LFW images/ directory")->required();
  cal->add_option("-o,--output", args->output, "Write the table here (default: stdout)");
  cal->footer(
      "The table holds for faces embedded with the corpus's --embedding mode. A build compiles in one\n"
      "table per measured mode: data/calibration.tsv (plain) and data/calibration-flip.tsv (flip).\n\n"
      "Examples:\n  facesearch --corpus /tmp/lfw eval calibrate --images lfw/images -o data/calibration.tsv\n"
      "  facesearch --corpus /tmp/lfw-flip eval calibrate --images lfw/images -o data/calibration-flip.tsv");
  cal->callback([&ctx, args] { RunCalibrate(ctx, *args); });
}

}  // namespace facesearch::cli
