// `facesearch info`
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"

namespace facesearch::cli {

namespace {


// `info --errors`: every input that failed or was skipped, with its reason.
void PrintIssues(Context& ctx, bool json) {
  std::vector<InputIssue> issues;
  Status s = ListInputIssues(ctx.Config(), [&](const InputIssue& i) { issues.push_back(i); });
  if (!s) return ctx.Report(s.error());
  int64_t errors = 0, skipped = 0;
  for (const auto& i : issues) ++(i.outcome == "skipped" ? skipped : errors);
  if (json) {
    Json rows = Json::array();
    for (const InputIssue& i : issues) {
      Json row = {{"location", i.location}, {"outcome", i.outcome}, {"reason", i.reason}, {"detail", i.detail}, {"at", i.at}};
      AddProvenance(row, i.provenance);
      rows.push_back(std::move(row));
    }
    std::cout << JsonText({{"errors", errors}, {"skipped", skipped}, {"issues", std::move(rows)}}) << "\n";
  } else {
    std::cout << errors << " error(s), " << skipped << " skipped\n";
    if (!issues.empty())
      std::cout << std::left << std::setw(9) << "OUTCOME" << std::setw(15) << "REASON" << std::setw(22)
                << "AT" << "LOCATION: DETAIL\n";
    for (const InputIssue& i : issues) {
      std::cout << std::left << std::setw(9) << i.outcome << std::setw(15)
                << (i.reason.empty() ? "-" : i.reason) << std::setw(22) << TerminalText(i.at) << TerminalText(i.location) << ": "
                << TerminalText(i.detail) << "\n";
    }
  }
  ctx.exit_code = kExitMatch;
}

// `info --duplicates`: the groups of near-duplicate images.
void PrintDuplicates(Context& ctx, bool json) {
  auto report = FindDuplicateImages(ctx.Config());
  if (!report) return ctx.Report(report.error());
  int64_t grouped = 0;
  for (const DuplicateGroup& g : report->groups) grouped += static_cast<int64_t>(g.images.size());
  if (json) {
    Json groups = Json::array();
    for (const DuplicateGroup& g : report->groups) groups.push_back({{"image_ids", g.image_ids}, {"images", g.images}});
    std::cout << JsonText({{"duplicate_groups", report->groups.size()},
                           {"images_in_groups", grouped},
                           {"images_hashed", report->images_hashed},
                           {"images_unhashed", report->images_unhashed},
                           {"groups", std::move(groups)}})
              << "\n";
  } else {
    std::cout << report->groups.size() << " group(s) of near-duplicate images (" << grouped << " images) among "
              << report->images_hashed << " hashed images";
    if (report->images_unhashed > 0)
      std::cout << "; " << report->images_unhashed
                << " indexed before hashing: run `facesearch index` on their folders again to include them";
    std::cout << "\n";
    for (size_t n = 0; n < report->groups.size(); ++n) {
      std::cout << "group " << n + 1 << " (" << report->groups[n].images.size() << " copies):\n";
      for (const std::string& path : report->groups[n].images) std::cout << "  " << TerminalText(path) << "\n";
    }
  }
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddInfoCommand(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  auto errors = std::make_shared<bool>(false);
  auto duplicates = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>("table");
  CLI::App* cmd = app.add_subcommand("info", "Show the corpus location, counts, models and index state");
  cmd->footer("Reads the corpus without changing it and needs no model files. --errors lists every\n"
              "input that failed (unreadable, not an image, truncated, over the pixel cap, decoder\n"
              "error, HTTP status, timeout, too large...) or was skipped before it was read\n"
              "(robots.txt, noimageindex, a refused scheme), with its reason code and message.\n"
              "--duplicates lists the groups of near-duplicate images: copies of one picture that\n"
              "were resized, recompressed or lightly cropped (identical files are one image already).\n\n"
              "Examples:\n"
              "  facesearch info\n"
              "  facesearch --corpus /srv/cases/42 info --json | jq .faces\n"
              "  facesearch info --errors --format json | jq -r '.issues[] | select(.reason==\"timeout\") | .location'\n"
              "  facesearch info --duplicates --format json | jq -r '.groups[].images | join(\" = \")'");
  cmd->add_flag("--json", *json, "Print as one JSON object (same as --format json)");
  cmd->add_option("-f,--format", *format, "table or json")->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  CLI::Option* errors_flag =
      cmd->add_flag("--errors", *errors, "List the inputs that failed or were skipped, with their reasons");
  cmd->add_flag("--duplicates", *duplicates,
                "List the groups of near-duplicate images (copies of one picture), by perceptual hash")
      ->excludes(errors_flag);
  AddServerOptions(*cmd, ctx);
  cmd->callback([&ctx, json, errors, duplicates, format] {
    if (*format == "json") *json = true;
    if (!ctx.server.empty()) {
      if (*errors) return ctx.Report(Error{ErrorCode::kInvalidArgument, "--errors is not available with --server"});
      return RunOnServer(ctx, server::ClientRequest{"GET", "/v1/info", {{"format", *json ? "json" : "table"}}, {}});
    }
    if (*errors) return PrintIssues(ctx, *json);
    if (*duplicates) return PrintDuplicates(ctx, *json);
    auto info = GetCorpusInfo(ctx.Config());
    if (!info) return ctx.Report(info.error());
    if (*json) {
      std::cout << InfoJson(*info);
    } else {
      std::cout << InfoText(*info);
    }
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
