// `facesearch cluster`: group the corpus faces into identities.
#include <spdlog/spdlog.h>

#include <iomanip>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/cluster.h"

namespace facesearch::cli {
namespace {

struct ClusterArgs {
  ClusterOptions options;
  OutputFormat format = OutputFormat::kTable;
};

// {"cluster":1,"size":2,"face_ids":[..],"images":[..],"boxes":[..]}: images[i] and boxes[i] belong
// to face_ids[i].
Json ClusterJson(const FaceCluster& c) {
  Json ids = Json::array(), images = Json::array(), boxes = Json::array();
  for (const auto& face : c.faces) {
    ids.push_back(face.face_id);
    images.push_back(face.image_path);
    boxes.push_back(BoxJson(face.box));
  }
  return {{"cluster", c.id}, {"size", c.faces.size()}, {"face_ids", std::move(ids)}, {"images", std::move(images)},
          {"boxes", std::move(boxes)}};
}

void Run(Context& ctx, const ClusterArgs& args) {
  auto report = ClusterCorpus(ctx.Config(), args.options);
  if (!report) return ctx.Report(report.error());
  spdlog::info("{} faces, {} links within distance {}: {} clusters, {} with at least {} faces", report->faces,
               report->edges, report->threshold, report->clusters_total, report->clusters.size(),
               args.options.min_size);
  switch (args.format) {
    case OutputFormat::kJson: {
      Json clusters = Json::array();
      for (const FaceCluster& c : report->clusters) clusters.push_back(ClusterJson(c));
      std::cout << JsonText({{"faces", report->faces},
                             {"edges", report->edges},
                             {"clusters_total", report->clusters_total},
                             {"threshold", report->threshold},
                             {"neighbors", args.options.neighbors},
                             {"min_size", args.options.min_size},
                             {"clusters", std::move(clusters)}})
                << "\n";
      break;
    }
    case OutputFormat::kJsonl:
      for (const FaceCluster& c : report->clusters) std::cout << JsonText(ClusterJson(c)) << '\n';
      break;
    default:
      std::cout << std::left << std::setw(9) << "CLUSTER" << std::setw(7) << "SIZE" << "IMAGES\n";
      for (const FaceCluster& c : report->clusters) {
        std::cout << std::left << std::setw(9) << c.id << std::setw(7) << c.faces.size();
        for (size_t i = 0; i < c.faces.size() && i < 3; ++i) std::cout << (i ? "  " : "") << TerminalText(c.faces[i].image_path);
        if (c.faces.size() > 3) std::cout << "  (+" << c.faces.size() - 3 << " more)";
        std::cout << '\n';
      }
  }
  std::cout.flush();
  ctx.exit_code = report->clusters.empty() ? kExitNoMatch : kExitMatch;
}

}  // namespace

void AddClusterCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ClusterArgs>();
  CLI::App* cmd = app.add_subcommand("cluster", "Group the corpus faces into identities (Chinese whispers)");
  cmd->footer(
      "Links every face to its --neighbors nearest faces within --threshold (found with the corpus\n"
      "index, so memory grows with faces x neighbors, not faces squared) and labels the graph with\n"
      "dlib's Chinese whispers. Clusters are numbered from 1, largest first. A cluster is a guess\n"
      "that its faces show one person: on LFW, at the default threshold, about 3 in 100 face pairs\n"
      "put in one cluster are two people, and a quarter of the same-person pairs end up apart\n"
      "(docs/benchmarks.md). Links chain, so a threshold as loose as query's 0.6 merges strangers.\n"
      "Clustering shows faces, so it is recorded in the audit log like a query.\n"
      "Exit status: 0 at least one cluster of --min-size faces, 1 none, 2 error.\n\n"
      "Examples:\n"
      "  facesearch cluster\n"
      "  facesearch cluster --min-size 5 --format jsonl | jq -r '[.cluster, .size] | @tsv'\n"
      "  facesearch cluster --format jsonl | jq -r 'select(.cluster == 1) | .images[]' | sort -u");
  cmd->add_option("-t,--threshold", args->options.threshold, "Largest distance that links two faces")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("0.4; 0.87 in an sface corpus");
  cmd->add_option("--min-size", args->options.min_size, "Smallest cluster to print")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--neighbors", args->options.neighbors, "Links per face: its nearest faces within the threshold")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("-f,--format", args->format, "Output: table, json or jsonl")
      ->transform(CLI::CheckedTransformer(std::map<std::string, OutputFormat>{{"table", OutputFormat::kTable},
                                                                              {"json", OutputFormat::kJson},
                                                                              {"jsonl", OutputFormat::kJsonl}},
                                          CLI::ignore_case))
      ->default_str("table");
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
