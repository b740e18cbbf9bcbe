// `facesearch config [list] | config set KEY VALUE`: corpus settings, stored in the corpus.
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/privacy.h"

namespace facesearch::cli {

void AddConfigCommand(CLI::App& app, Context& ctx) {
  auto words = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("config", "Show or change the corpus settings");
  cmd->footer(
      "Settings:\n"
      "  require-case   true: every query and export without --case fails (exit 2). Default false.\n"
      "Changing a setting is recorded in the audit log.\n\n"
      "Examples:\n"
      "  facesearch config\n"
      "  facesearch config set require-case true");
  cmd->add_option("words", *words, "list | set KEY VALUE")->expected(0, 3);
  cmd->callback([&ctx, words] {
    const auto& w = *words;
    if (w.empty() || (w.size() == 1 && w[0] == "list")) {
      auto settings = ListSettings(ctx.Config());
      if (!settings) return ctx.Report(settings.error());
      for (const auto& [key, value] : *settings) std::cout << TerminalText(key) << " = " << TerminalText(value) << "\n";
      ctx.exit_code = kExitMatch;
      return;
    }
    if (w.size() != 3 || w[0] != "set")
      return ctx.Report({ErrorCode::kInvalidArgument, "usage: facesearch config set KEY VALUE"});
    Status s = SetSetting(ctx.Config(), w[1], w[2]);
    if (!s) return ctx.Report(s.error());
    std::cout << TerminalText(w[1]) << " = " << TerminalText(w[2]) << "\n";
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
