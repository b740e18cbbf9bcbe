// `facesearch forget`: erase faces and images (right to erasure, retention schedule).
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/format.h"
#include "common/sha256.h"
#include "facesearch/privacy.h"

namespace facesearch::cli {
namespace {

struct ForgetArgs {
  ForgetRequest request;
  std::string older_than;
  bool json = false;
};

// `forget --server URL`: the selectors as /v1/forget's JSON body. An --image this machine can read
// is named by its SHA-256 (the server matches it by content); any other is sent as the path it is
// on the server.
void RunRemote(Context& ctx, const ForgetArgs& args) {
  const ForgetRequest& r = args.request;
  if (!r.like_photo.empty() || !r.subject.empty() || r.threshold)
    return ctx.Report({ErrorCode::kInvalidArgument, "--like, --subject and --threshold are not available with --server"});
  nlohmann::json body = nlohmann::json::object();
  if (!r.face_ids.empty()) body["face_ids"] = r.face_ids;
  for (const std::string& image : r.images) {
    auto sha = Sha256File(image);
    body["images"].push_back(sha ? *sha : image);
  }
  if (!args.older_than.empty()) body["older_than"] = args.older_than;
  RunOnServer(ctx, server::ClientRequest{"POST", "/v1/forget", {{"format", args.json ? "json" : "table"}}, {},
                                         body.dump(), "application/json"});
}

void Run(Context& ctx, ForgetArgs& args) {
  if (!ctx.server.empty()) return RunRemote(ctx, args);
  if (!args.older_than.empty()) {
    auto seconds = ParseDuration(args.older_than);
    if (!seconds) return ctx.Report(seconds.error());
    args.request.older_than_s = *seconds;
  }
  // A subject alone is erased at its own calibrated threshold; with --like, one threshold serves both.
  if (!args.request.subject.empty() && args.request.like_photo.empty()) {
    auto threshold = SubjectThresholdFor(ctx, args.request.subject, args.request.threshold);
    if (!threshold) return ctx.Report(threshold.error());
    args.request.threshold = *threshold;
  }
  auto summary = Forget(ctx.Config(), args.request);
  if (!summary) return ctx.Report(summary.error());
  const EraseCounts& e = summary->erased;
  std::cout << (args.json ? ForgetJson(*summary) : ForgetText(*summary));
  ctx.exit_code = e.faces + e.images > 0 ? kExitMatch : kExitNoMatch;
}

}  // namespace

void AddForgetCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ForgetArgs>();
  CLI::App* cmd = app.add_subcommand("forget", "Erase faces and images from the corpus for good");
  cmd->footer(
      "Erased faces leave the database and the vector index, and their bytes are scrubbed from the\n"
      "corpus files. An erased image's SHA-256 (only that) is kept as a tombstone so that `index`\n"
      "skips it later (\"erased\") unless `index --allow-reindex`. A face erased by --face-id or\n"
      "--like whose image still has other faces leaves that image in place. Every forget is\n"
      "recorded in the audit log with the number of faces and images erased.\n"
      "Exit status: 0 something was erased, 1 nothing matched, 2 error.\n\n"
      "Examples:\n"
      "  facesearch forget --image ~/case-42/photos/IMG_2210.png\n"
      "  facesearch forget --face-id 17 --face-id 18\n"
      "  facesearch --case DSR-2025-4 forget --like request-photo.jpg --threshold 0.5\n"
      "  facesearch --case 2025-017 forget --subject 'J. Doe'   # its faces, references and name\n"
      "  facesearch forget --older-than 365d        # retention schedule, e.g. daily from cron\n"
      "  facesearch forget --server http://127.0.0.1:8420 --face-id 17   # on a `facesearch serve`");
  cmd->add_option("--image", args->request.images, "Image file to erase (matched by content, else by path)");
  cmd->add_option("--face-id", args->request.face_ids, "Face id to erase (from query or export output)");
  cmd->add_option("--like", args->request.like_photo,
                  "Erase every face within --threshold of the largest face in this photo");
  cmd->add_option("--subject", args->request.subject,
                  "Erase a subject (`facesearch subject`): every face within --threshold of the mean of its "
                  "references, the corpus faces they came from, and the subject with its references");
  cmd->add_option("-t,--threshold", args->request.threshold, "Distance limit for --like and --subject")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("0.6; 1.1287 in an sface corpus; --subject: where its references have that false-match rate");
  cmd->add_option("--older-than", args->older_than,
                  "Erase images added longer ago than this: 90s, 45m, 12h, 30d, 2w");
  cmd->add_flag("--json", args->json, "Print the counts as JSON on stdout");
  AddPipelineOptions(*cmd, args->request.pipeline);
  AddServerOptions(*cmd, ctx);
  cmd->callback([&ctx, args] { Run(ctx, *args); });
}

}  // namespace facesearch::cli
