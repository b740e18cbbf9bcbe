// `facesearch optout add|list|remove`: people who asked never to be indexed or found.
#include <cmath>
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
  OptOutRequest request;
  bool json = false;
};

void Add(Context& ctx, OptoutArgs& args) {
  if (args.target.empty()) return ctx.Report({ErrorCode::kInvalidArgument, "optout add needs a PHOTO"});
  args.request.photo = args.target;
  auto result = AddOptOut(ctx.Config(), args.request);
  if (!result) return ctx.Report(result.error());
  std::cout << "opt-out " << result->id << " added; erased " << result->erased.faces
            << " matching face(s) and " << result->erased.images << " image(s)\n";
  ctx.exit_code = kExitMatch;
}

void List(Context& ctx, const OptoutArgs& args) {
  auto list = ListOptOuts(ctx.Config());
  if (!list) return ctx.Report(list.error());
  if (!args.json) std::cout << "ID    THRESHOLD  ADDED                 REASON\n";
  for (const OptOutRecord& o : *list) {  // never the embedding
    if (args.json) {
      std::cout << JsonText({{"id", o.id},
                             {"threshold", RoundDecimals(o.threshold, 4)},
                             {"added_at", o.added_at},
                             {"reason", o.reason}})
                << "\n";
    } else {
      std::string id = std::to_string(o.id);
      std::string threshold = fmt::format("{}", RoundDecimals(o.threshold, 4));
      std::cout << id << std::string(id.size() < 6 ? 6 - id.size() : 1, ' ') << threshold
                << std::string(threshold.size() < 11 ? 11 - threshold.size() : 1, ' ') << TerminalText(o.added_at)
                << "  " << TerminalText(o.reason) << "\n";
    }
  }
  ctx.exit_code = list->empty() ? kExitNoMatch : kExitMatch;
}

void Remove(Context& ctx, const OptoutArgs& args) {
  int64_t id = 0;
  try {
    size_t used = 0;
    id = std::stoll(args.target, &used);
    if (used != args.target.size()) throw std::invalid_argument("trailing text");
  } catch (const std::exception&) {
    return ctx.Report({ErrorCode::kInvalidArgument, "optout remove needs an ID (see `facesearch optout list`)"});
  }
  Status s = RemoveOptOut(ctx.Config(), id);
  if (!s) return ctx.Report(s.error());
  std::cout << "opt-out " << id << " removed; faces erased earlier stay erased\n";
  ctx.exit_code = kExitMatch;
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
      "shows ids, thresholds, dates and reasons; remove ID deletes one. All are audited.\n\n"
      "Examples:\n"
      "  facesearch optout add request.jpg --reason 'email of 2025-02-03, ticket 881'\n"
      "  facesearch optout list\n"
      "  facesearch optout remove 3");
  cmd->add_option("action", args->action, "add, list or remove")
      ->required()
      ->check(CLI::IsMember({"add", "list", "remove"}));
  cmd->add_option("target", args->target, "PHOTO for add, ID for remove");
  cmd->add_option("-t,--threshold", args->request.threshold,
                  "Faces within this distance of the opt-out are matched (stored with it)")
      ->check(CLI::Range(0.0, 2.0))
      ->default_str("0.6; 1.1287 in an sface corpus");
  cmd->add_option("--reason", args->request.reason, "Why: the request and its date (no biometric data)");
  cmd->add_flag("--json", args->json, "list: one JSON object per line");
  AddPipelineOptions(*cmd, args->request.pipeline);
  cmd->callback([&ctx, args] {
    if (args->action == "add") return Add(ctx, *args);
    if (args->action == "list") return List(ctx, *args);
    Remove(ctx, *args);
  });
}

}  // namespace facesearch::cli
