// `facesearch optout add|list|remove`: people who asked never to be indexed or found.
#include <fmt/format.h>

#include <charconv>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/privacy.h"

namespace facesearch::cli {
namespace {

struct OptoutArgs {
  std::string action;
  std::string target;  // PHOTO for add, ID for remove
  std::string of_request;  // remove --request RID: the opt-out added under that request id
  OptOutRequest request;
  bool json = false;
};

// Remove's ID. Errors: kInvalidArgument.
Result<int64_t> OptOutId(const std::string& text) {
  int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id < 1)
    return Fail(ErrorCode::kInvalidArgument,
                "optout remove needs an ID, or --request RID (see `facesearch optout list --json`)");
  return id;
}

void Add(Context& ctx, OptoutArgs& args) {
  if (args.target.empty()) return ctx.Report({ErrorCode::kInvalidArgument, "optout add needs a PHOTO"});
  args.request.photo = ProbeImage::File(args.target);
  auto result = AddOptOut(ctx.Config(), args.request);
  if (!result) return ctx.Report(result.error());
  std::cout << OptOutAdded(*result, args.json);
  ctx.exit_code = kExitMatch;
}

void List(Context& ctx, const OptoutArgs& args) {
  auto list = ListOptOuts(ctx.Config());
  if (!list) return ctx.Report(list.error());
  std::cout << OptOutList(*list, args.json);
  ctx.exit_code = list->empty() ? kExitNoMatch : kExitMatch;
}

// remove --request RID: by the request id the opt-out was added under, the one key a cluster's
// replicas share for it (their row ids differ; docs/scale.md).
void RemoveOfRequest(Context& ctx, const OptoutArgs& args) {
  if (!args.target.empty())
    return ctx.Report({ErrorCode::kInvalidArgument, "optout remove takes an ID or --request RID, not both"});
  auto ids = RemoveOptOutsOfRequest(ctx.Config(), args.of_request);
  if (!ids) return ctx.Report(ids.error());
  std::cout << OptOutsOfRequestRemoved(args.of_request, *ids, args.json);
  ctx.exit_code = kExitMatch;
}

void Remove(Context& ctx, const OptoutArgs& args) {
  if (!args.of_request.empty()) return RemoveOfRequest(ctx, args);
  auto id = OptOutId(args.target);
  if (!id) return ctx.Report(id.error());
  Status s = RemoveOptOut(ctx.Config(), *id);
  if (!s) return ctx.Report(s.error());
  std::cout << OptOutRemoved(*id, args.json);
  ctx.exit_code = kExitMatch;
}

// The same on a `facesearch serve` (--server): GET, POST (the photo uploaded) or DELETE /v1/optout.
void RunRemote(Context& ctx, const OptoutArgs& args) {
  server::ClientRequest request{"GET", "/v1/optout", {{"format", args.json ? "json" : "table"}}, {}};
  if (args.action == "add") {
    if (args.target.empty()) return ctx.Report({ErrorCode::kInvalidArgument, "optout add needs a PHOTO"});
    request.method = "POST";
    if (args.request.threshold) request.params.emplace_back("threshold", fmt::format("{}", *args.request.threshold));
    if (!args.request.reason.empty()) request.params.emplace_back("reason", args.request.reason);
    auto part = PhotoPart("photo", args.target, args.request.pipeline.max_file_bytes);
    if (!part) return ctx.Report(part.error());
    request.parts.push_back(std::move(*part));
  } else if (args.action == "remove") {
    request.method = "DELETE";
    if (!args.of_request.empty()) {
      request.params.emplace_back("request", args.of_request);
    } else {
      auto id = OptOutId(args.target);
      if (!id) return ctx.Report(id.error());
      request.params.emplace_back("id", std::to_string(*id));
    }
  }
  RunOnServer(ctx, std::move(request));
}

}  // namespace

void AddOptoutCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<OptoutArgs>();
  CLI::App* cmd = app.add_subcommand("optout", "Honour people who asked never to be indexed or found");
  cmd->footer(
      "add PHOTO stores the embedding of the largest face in PHOTO, erases every matching face\n"
      "already in the corpus (like `forget --like`), and from then on `index` skips matching faces\n"
      "and `query` never returns them. The stored embedding IS biometric data: it is kept only to\n"
      "honour the opt-out, is never printed, and is scrubbed when the opt-out is removed. list\n"
      "shows ids, thresholds, dates, the request id each was added under (--request-id) and\n"
      "reasons; remove ID deletes one, remove --request RID the one added under that request id\n"
      "(how a cluster's replicas find the same opt-out: docs/scale.md). All are audited.\n\n"
      "Examples:\n"
      "  facesearch optout add request.jpg --reason 'email of 2025-02-03, ticket 881'\n"
      "  facesearch optout list\n"
      "  facesearch optout remove 3\n"
      "  facesearch --request-id 7f3a optout add request.jpg   # later: optout remove --request 7f3a\n"
      "  facesearch --cluster cluster.json optout list        # every replica's, merged\n"
      "  facesearch optout --server https://search.example:8420 list   # on a `facesearch serve`");
  cmd->add_option("action", args->action, "add, list or remove")
      ->required()
      ->check(CLI::IsMember({"add", "list", "remove"}));
  cmd->add_option("target", args->target, "PHOTO for add, ID for remove");
  cmd->add_option("-t,--threshold", args->request.threshold,
                  "Faces within this distance of the opt-out are matched (stored with it)")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("0.6; 1.1287 in an sface corpus");
  cmd->add_option("--reason", args->request.reason, "Why: the request and its date (no biometric data)");
  cmd->add_option("--request", args->of_request,
                  "remove: the opt-out added under this request id instead of an ID, e.g. "
                  "optout remove --request 7f3a (its request_id in optout list --json)");
  cmd->add_flag("--json", args->json,
                "add, remove: one JSON object; list: one per line (docs/output.md)");
  AddPipelineOptions(*cmd, args->request.pipeline);
  AddServerOptions(*cmd, ctx);
  cmd->callback([&ctx, args] {
    if (!ctx.server.empty()) return RunRemote(ctx, *args);
    if (args->action == "add") return Add(ctx, *args);
    if (args->action == "list") return List(ctx, *args);
    Remove(ctx, *args);
  });
}

}  // namespace facesearch::cli
