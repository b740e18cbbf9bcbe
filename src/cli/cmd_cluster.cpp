// `facesearch cluster`: group the corpus faces into identities; keep the groups (--save, --update)
// and review them: list, show, label, merge, split, different.
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
  std::string action;  // empty: cluster (and --save / --update)
  std::vector<int64_t> ids;
  std::vector<int64_t> face_ids;
  std::optional<int64_t> other_cluster;  // different --cluster
  std::string subject;
  bool update = false;
  ClusterOptions options;
  OutputFormat format = OutputFormat::kTable;
};

Json SubjectJson(const std::optional<ClusterLabel>& label) { return label ? Json(label->subject) : Json(nullptr); }

Json DecisionJson(const Decision& d) {
  return {{"at", d.at}, {"by", d.by}, {"case", d.case_id}, {"audit_seq", d.audit_seq}};
}

// {"cluster":1,"size":2,"subject":null,"face_ids":[..],"images":[..],"boxes":[..]}: images[i] and
// boxes[i] belong to face_ids[i].
Json ClusterJson(const FaceCluster& c) {
  Json ids = Json::array(), images = Json::array(), boxes = Json::array();
  for (const ClusterFace& face : c.faces) {
    ids.push_back(face.face_id);
    images.push_back(face.image_path);
    boxes.push_back(BoxJson(face.box));
  }
  return {{"cluster", c.id},          {"size", c.faces.size()},   {"subject", SubjectJson(c.label)},
          {"face_ids", std::move(ids)}, {"images", std::move(images)}, {"boxes", std::move(boxes)}};
}

// Lists of clusters: one row per face in csv/tsv.
// json: `head`'s fields, then "clusters".
void WriteClusters(const std::vector<FaceCluster>& clusters, OutputFormat format, Json head = Json::object()) {
  switch (format) {
    case OutputFormat::kJson: {
      Json list = Json::array();
      for (const FaceCluster& c : clusters) list.push_back(ClusterJson(c));
      head["clusters"] = std::move(list);
      std::cout << JsonText(head) << "\n";
      break;
    }
    case OutputFormat::kJsonl:
      for (const FaceCluster& c : clusters) std::cout << JsonText(ClusterJson(c)) << '\n';
      break;
    case OutputFormat::kCsv:
    case OutputFormat::kTsv: {
      const bool csv = format == OutputFormat::kCsv;
      auto cell = [&](const std::string& s) { return csv ? CsvField(s) : TsvField(s); };
      const char sep = csv ? ',' : '\t';
      std::cout << "cluster" << sep << "size" << sep << "subject" << sep << "face_id" << sep << "image" << sep << "x"
                << sep << "y" << sep << "w" << sep << "h\n";
      for (const FaceCluster& c : clusters)
        for (const ClusterFace& f : c.faces)
          std::cout << c.id << sep << c.faces.size() << sep << cell(c.label ? c.label->subject : "") << sep
                    << f.face_id << sep << cell(f.image_path) << sep << f.box.x << sep << f.box.y << sep << f.box.w
                    << sep << f.box.h << "\n";
      break;
    }
    case OutputFormat::kTable:
      std::cout << std::left << std::setw(9) << "CLUSTER" << std::setw(7) << "SIZE" << std::setw(16) << "SUBJECT"
                << "IMAGES\n";
      for (const FaceCluster& c : clusters) {
        std::cout << std::left << std::setw(9) << c.id << std::setw(7) << c.faces.size() << std::setw(16)
                  << (c.label ? TerminalText(c.label->subject) : "-");
        for (size_t i = 0; i < c.faces.size() && i < 3; ++i) std::cout << (i ? "  " : "") << TerminalText(c.faces[i].image_path);
        if (c.faces.size() > 3) std::cout << "  (+" << c.faces.size() - 3 << " more)";
        std::cout << '\n';
      }
  }
}

// One face of `cluster show`, with its provenance and how it got into the cluster; no embedding.
Json ShownFaceJson(int64_t cluster, const ClusterFace& f, const FaceRecord& r) {
  Json face = {{"cluster", cluster},        {"face_id", r.face_id}, {"image_id", r.image_id},
               {"image", r.image_path},     {"sha256", r.image_sha256}, {"box", BoxJson(r.face.box)}};
  AddProvenance(face, r.provenance);
  AddPhoto(face, r.photo);
  face["video"] = VideoJson(r.face.video);
  face["label"] = SubjectJson(f.label);
  face["how"] = f.member ? Json(f.member->how) : Json(nullptr);
  face["placed"] = f.member ? DecisionJson(f.member->decided) : Json(nullptr);
  return face;
}

void WriteShown(const ClusterDetail& d, OutputFormat format) {
  const FaceCluster& c = d.cluster;
  switch (format) {
    case OutputFormat::kJson: {
      Json faces = Json::array();
      for (size_t i = 0; i < c.faces.size(); ++i) faces.push_back(ShownFaceJson(c.id, c.faces[i], d.records[i]));
      std::cout << JsonText({{"cluster", c.id},
                             {"size", c.faces.size()},
                             {"subject", SubjectJson(c.label)},
                             {"label", c.label ? DecisionJson(c.label->decided) : Json(nullptr)},
                             {"created", DecisionJson(c.created)},
                             {"faces", std::move(faces)}})
                << "\n";
      break;
    }
    case OutputFormat::kJsonl:
      for (size_t i = 0; i < c.faces.size(); ++i)
        std::cout << JsonText(ShownFaceJson(c.id, c.faces[i], d.records[i])) << "\n";
      break;
    case OutputFormat::kCsv:
    case OutputFormat::kTsv: {
      const bool csv = format == OutputFormat::kCsv;
      auto cell = [&](const std::string& s) { return csv ? CsvField(s) : TsvField(s); };
      const char sep = csv ? ',' : '\t';
      std::cout << "cluster" << sep << "face_id" << sep << "image" << sep << "sha256" << sep << "x" << sep << "y" << sep
                << "w" << sep << "h" << sep << "page_url" << sep << "source" << sep << "captured_at" << sep << "licence"
                << sep << "label" << sep << "how" << sep << "placed_at" << sep << "placed_by" << sep << "case" << sep
                << "audit_seq\n";
      for (size_t i = 0; i < c.faces.size(); ++i) {
        const ClusterFace& f = c.faces[i];
        const FaceRecord& r = d.records[i];
        const Decision placed = f.member ? f.member->decided : Decision{};
        std::cout << c.id << sep << r.face_id << sep << cell(r.image_path) << sep << r.image_sha256 << sep << r.face.box.x
                  << sep << r.face.box.y << sep << r.face.box.w << sep << r.face.box.h << sep
                  << cell(r.provenance.page_url) << sep << cell(r.provenance.source) << sep
                  << cell(r.provenance.captured_at) << sep << cell(r.provenance.licence) << sep
                  << cell(f.label ? f.label->subject : "") << sep << cell(f.member ? f.member->how : "") << sep
                  << cell(placed.at) << sep << cell(placed.by) << sep << cell(placed.case_id) << sep << placed.audit_seq
                  << "\n";
      }
      break;
    }
    case OutputFormat::kTable: {
      std::cout << "cluster " << c.id << ": " << c.faces.size() << " face(s), created " << TerminalText(c.created.at)
                << " by " << TerminalText(c.created.by) << " (audit record " << c.created.audit_seq << ")\n";
      if (c.label)
        std::cout << "labelled '" << TerminalText(c.label->subject) << "' " << TerminalText(c.label->decided.at)
                  << " by " << TerminalText(c.label->decided.by) << " (audit record " << c.label->decided.audit_seq
                  << ")\n";
      for (size_t i = 0; i < c.faces.size(); ++i) {
        const ClusterFace& f = c.faces[i];
        std::cout << "  face " << f.face_id << "  " << JsonText(BoxJson(f.box)) << "  " << TerminalText(f.image_path) << "\n";
        if (f.member)
          std::cout << "      " << TerminalText(f.member->how) << " " << TerminalText(f.member->decided.at) << " by "
                    << TerminalText(f.member->decided.by)
                    << (f.member->decided.case_id.empty() ? "" : " case " + TerminalText(f.member->decided.case_id))
                    << ", audit record " << f.member->decided.audit_seq
                    << (f.label ? ", labelled '" + TerminalText(f.label->subject) + "'" : "") << "\n";
        if (!d.records[i].provenance.source.empty())
          std::cout << "      source " << TerminalText(d.records[i].provenance.source) << "\n";
      }
    }
  }
}

Json Totals(const ClusterReport& r, const ClusterOptions& o) {
  return {{"faces", r.faces},         {"edges", r.edges},         {"clusters_total", r.clusters_total},
          {"threshold", ShortestDouble(r.threshold)}, {"neighbors", o.neighbors}, {"min_size", o.min_size}};
}

void RunCluster(Context& ctx, const ClusterArgs& args) {
  if (args.update) {
    auto report = UpdateClusters(ctx.Config(), args.options);
    if (!report) return ctx.Report(report.error());
    if (report->new_faces == 0)
      spdlog::info("nothing new since the save: every face is in a saved cluster (nothing was changed)");
    else
      spdlog::info("{} new face(s) within distance {}: {} joined saved clusters, {} new cluster(s)",
                   report->new_faces, report->threshold, report->joined, report->created);
    WriteClusters(report->clusters, args.format,
                  {{"new_faces", report->new_faces}, {"joined", report->joined}, {"created", report->created}});
    ctx.exit_code = report->new_faces == 0 ? kExitNoMatch : kExitMatch;
    return;
  }
  auto report = ClusterCorpus(ctx.Config(), args.options);
  if (!report) return ctx.Report(report.error());
  spdlog::info("{} faces, {} links within distance {}: {} clusters, {} with at least {} faces", report->faces,
               report->edges, report->threshold, report->clusters_total, report->clusters.size(),
               args.options.min_size);
  Json head = Totals(*report, args.options);
  if (args.options.save) {
    spdlog::info("saved: {} cluster(s) kept their id, {} new, {} saved cluster(s) dropped", report->kept,
                 report->created, report->dropped);
    head["kept"] = report->kept;
    head["created"] = report->created;
    head["dropped"] = report->dropped;
  }
  WriteClusters(report->clusters, args.format, head);
  ctx.exit_code = report->clusters.empty() ? kExitNoMatch : kExitMatch;
}

Status Need(bool ok, const std::string& usage) {
  if (ok) return Ok();
  return Fail(ErrorCode::kInvalidArgument, "usage: facesearch cluster " + usage + " (facesearch cluster --help)");
}

// The review actions; each prints one line saying what changed.
Status RunAction(Context& ctx, const ClusterArgs& args) {
  const CorpusConfig config = ctx.Config();
  const size_t n = args.ids.size();
  if (args.action == "list") {
    FS_TRY(Need(n == 0, "list [--min-size N]"));
    FS_ASSIGN(auto clusters, SavedClusterList(config, args.options.min_size));
    WriteClusters(clusters, args.format);
    ctx.exit_code = clusters.empty() ? kExitNoMatch : kExitMatch;
  } else if (args.action == "show") {
    FS_TRY(Need(n == 1, "show ID"));
    FS_ASSIGN(auto detail, ShowCluster(config, args.ids[0]));
    WriteShown(detail, args.format);
  } else if (args.action == "label") {
    FS_TRY(Need(!args.subject.empty() && n + args.face_ids.size() == 1,
                "label ID --subject NAME, or label --face-id N --subject NAME"));
    LabelTarget target;
    if (n) target.cluster_id = args.ids[0];
    else target.face_id = args.face_ids[0];
    FS_TRY(LabelFaces(config, target, args.subject));
    std::cout << (n ? "cluster " + std::to_string(args.ids[0]) : "face " + std::to_string(args.face_ids[0]))
              << " labelled '" << TerminalText(args.subject) << "'\n";
  } else if (args.action == "merge") {
    FS_TRY(Need(n == 2, "merge A B"));
    FS_ASSIGN(int64_t into, MergeClusters(config, args.ids[0], args.ids[1]));
    std::cout << "cluster " << args.ids[1] << " merged into cluster " << into << "\n";
  } else if (args.action == "split") {
    FS_TRY(Need(n == 1 && !args.face_ids.empty(), "split ID --face-id N [--face-id M ...]"));
    FS_ASSIGN(int64_t made, SplitCluster(config, args.ids[0], args.face_ids));
    std::cout << args.face_ids.size() << " face(s) moved from cluster " << args.ids[0] << " to new cluster " << made << "\n";
  } else {  // different
    FS_TRY(Need(n == 1 && args.face_ids.size() <= 1,
                "different FACE --face-id N | --cluster ID | --subject NAME"));
    DifferentFrom other{args.face_ids.empty() ? std::nullopt : std::optional<int64_t>(args.face_ids[0]),
                        args.other_cluster, args.subject};
    FS_TRY(MarkDifferent(config, args.ids[0], other));
    std::cout << "face " << args.ids[0] << " marked a different person; clustering"
              << (args.subject.empty() ? "" : " and searches for '" + TerminalText(args.subject) + "'")
              << " will keep them apart\n";
  }
  return Ok();
}

void Run(Context& ctx, const ClusterArgs& args) {
  if (args.action.empty()) {
    if (!args.ids.empty()) return ctx.Report({ErrorCode::kInvalidArgument, "cluster takes no ids without an action"});
    return RunCluster(ctx, args);
  }
  if (args.options.save || args.update)
    return ctx.Report({ErrorCode::kInvalidArgument, "--save and --update go with plain `facesearch cluster`"});
  if (Status s = RunAction(ctx, args); !s) ctx.Report(s.error());
}

}  // namespace

void AddClusterCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ClusterArgs>();
  CLI::App* cmd = app.add_subcommand("cluster", "Group the corpus faces into identities; keep, label, merge, split them");
  cmd->footer(
      "Links every face to its --neighbors nearest faces within --threshold (found with the corpus\n"
      "index, so memory grows with faces x neighbors, not faces squared) and labels the graph with\n"
      "dlib's Chinese whispers. Clusters are numbered from 1, largest first. A cluster is a guess\n"
      "that its faces show one person: on LFW, at the default threshold, about 3 in 100 face pairs\n"
      "put in one cluster are two people, and a quarter of the same-person pairs end up apart\n"
      "(docs/benchmarks.md). Links chain, so a threshold as loose as query's 0.6 merges strangers.\n"
      "Clustering shows faces, so it is recorded in the audit log like a query.\n\n"
      "Kept clusters. --save keeps every group in the corpus with a stable id: a re-run gives a\n"
      "group the id (and label) of the saved cluster it shares at least half of their faces with\n"
      "(Jaccard >= 0.5), new ids to the others, and drops saved clusters no group matches; merges\n"
      "and splits are edits of one saved clustering, so a later --save can undo them. --update\n"
      "offers only the faces indexed since (those in no saved cluster) without clustering again:\n"
      "each, in id order, links to its --neighbors nearest faces within the saved threshold and\n"
      "joins the cluster holding most of its links (ties: the nearest), else starts a new one;\n"
      "saved faces never move. \"Different people\" links are respected by every clustering,\n"
      "update and merge. Each save, update, label, merge, split and link is an audit record with\n"
      "the user and --case; `show` prints who placed each face, when, and its record. A label\n"
      "says the faces are that subject; it adds no reference (use `subject add --face-id`).\n"
      "Exit status: 0 at least one cluster of --min-size faces (--update: a new face placed), 1\n"
      "none (--update with nothing new since the save says so and writes nothing), 2 error.\n\n"
      "Examples:\n"
      "  facesearch cluster\n"
      "  facesearch cluster --min-size 5 --format jsonl | jq -r '[.cluster, .size] | @tsv'\n"
      "  facesearch --case 2025-017 cluster --save          # keep the groups; ids stay on re-runs\n"
      "  facesearch --case 2025-017 cluster --update        # after `index`: place the new faces\n"
      "  facesearch cluster list --min-size 3\n"
      "  facesearch cluster show 12 --format csv            # faces, provenance, who placed them\n"
      "  facesearch --case 2025-017 cluster label 12 --subject 'suspect A'\n"
      "  facesearch --case 2025-017 cluster label --face-id 4711 --subject 'suspect A'\n"
      "  facesearch --case 2025-017 cluster merge 12 31     # 31's faces join 12\n"
      "  facesearch --case 2025-017 cluster split 12 --face-id 4711 --face-id 4712\n"
      "  facesearch --case 2025-017 cluster different 4711 --face-id 812   # never one group\n"
      "  facesearch --case 2025-017 cluster different 4711 --cluster 12    # not that person\n"
      "  facesearch --case 2025-017 cluster different 4711 --subject 'suspect A'");
  cmd->add_option("action", args->action, "list, show, label, merge, split or different; none: cluster")
      ->check(CLI::IsMember({"list", "show", "label", "merge", "split", "different"}));
  cmd->add_option("ids", args->ids, "show/label/split: a cluster id; merge: two; different: a face id")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--save", args->options.save, "Keep the groups (all sizes) in the corpus with stable ids");
  cmd->add_flag("--update", args->update, "Place the faces indexed since the last save into the saved clusters")
      ->excludes("--save");
  cmd->add_option("--face-id,--face", args->face_ids,
                  "split: a face to move to a new cluster (repeat); label: the face to label; different: the other face")
      ->check(CLI::PositiveNumber)
      ->allow_extra_args(false);
  cmd->add_option("--subject", args->subject, "label: the subject; different: the subject the face is not");
  cmd->add_option("--cluster", args->other_cluster, "different: the saved cluster the face is not")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-t,--threshold", args->options.threshold, "Largest distance that links two faces")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("0.4; 0.87 in an sface corpus; --update: the saved one");
  cmd->add_option("--min-size", args->options.min_size, "Smallest cluster to print (and list)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--neighbors", args->options.neighbors, "Links per face: its nearest faces within the threshold")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--nprobe", args->options.nprobe,
                  "ivf and ivfpq corpora: inverted lists visited per face while linking (more finds more "
                  "neighbours, slower; 16 took 7 min at 1M faces where the query default 64 takes about 34)")
      ->check(CLI::Range(1, 65536))
      ->default_str(std::to_string(kClusterNprobe));
  AddFormatOption(*cmd, args->format);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
