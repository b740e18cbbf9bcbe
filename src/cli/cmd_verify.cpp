// `facesearch verify [--repair] [--format json]`
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/verify.h"

namespace facesearch::cli {
namespace {

struct VerifyArgs {
  VerifyOptions options;
  std::string format = "text";
};

void PrintJson(const CorpusConfig& config, const VerifyReport& r) {
  auto list = [](const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + JsonString(items[i]);
    return out + "]";
  };
  auto findings = [&](bool problems) {
    std::string out = "[";
    for (const VerifyFinding& f : r.findings) {
      if (f.problem != problems) continue;
      if (out.size() > 1) out += ',';
      out += "{\"check\":" + JsonString(f.check) + ",\"message\":" + JsonString(f.message) + "}";
    }
    return out + "]";
  };
  std::cout << "{\"corpus\":" << JsonString(config.corpus_dir.string())
            << ",\"healthy\":" << (r.healthy() ? "true" : "false") << ",\"checks\":" << list(r.checks)
            << ",\"faces\":" << r.faces << ",\"index_vectors\":" << r.index_vectors
            << ",\"problems\":" << findings(true) << ",\"notes\":" << findings(false)
            << ",\"repairs\":" << list(r.repairs) << "}\n";
}

void PrintText(const CorpusConfig& config, const VerifyReport& r) {
  for (const std::string& what : r.repairs) std::cout << "repaired: " << what << "\n";
  for (const VerifyFinding& f : r.findings)
    std::cout << (f.problem ? "problem: " : "note: ") << f.check << ": " << f.message << "\n";
  int problems = 0;
  for (const VerifyFinding& f : r.findings) problems += f.problem ? 1 : 0;
  std::string checks;
  for (const std::string& c : r.checks) checks += (checks.empty() ? "" : ", ") + c;
  if (problems == 0)
    std::cout << "ok: " << config.corpus_dir.string() << " is healthy (" << r.faces << " faces; checked "
              << checks << ")\n";
  else
    std::cout << "damaged: " << config.corpus_dir.string() << " has " << problems << " problem"
              << (problems == 1 ? "" : "s") << " (checked " << checks << ")"
              << (r.repairs.empty() ? "; `facesearch verify --repair` rebuilds the index" : "") << "\n";
}

}  // namespace

void AddVerifyCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* cmd = app.add_subcommand("verify", "Check the corpus end to end; --repair rebuilds its index");
  cmd->footer(
      "Checks: SQLite's integrity_check and foreign keys; the model identity and the model files'\n"
      "pins; private file permissions; the audit log's hash chain; the index file's header,\n"
      "checksum and stamp, that every id in it has a live face row and every face is in it.\n"
      "Prints one line per problem (\"problem: CHECK: ...\") and per note (a state such as a lagging\n"
      "index that the next command repairs by itself). --repair takes the write lock and rebuilds\n"
      "the index from SQLite (the source of truth); it never rewrites the database, the models,\n"
      "permissions or the audit log.\n"
      "Exit status: 0 healthy (after --repair: healthy now), 2 a problem remains, or an error.\n\n"
      "Examples:\n"
      "  facesearch verify\n"
      "  facesearch verify --repair\n"
      "  facesearch verify --format json | jq -r '.problems[].message'");
  cmd->add_flag("--repair", args->options.repair, "Rebuild the index from the database when it is damaged or stale");
  cmd->add_option("-f,--format", args->format, "Output: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->callback([&ctx, args] {
    const CorpusConfig config = ctx.Config();
    auto report = VerifyCorpus(config, args->options);
    if (!report) return ctx.Report(report.error());
    if (args->format == "json")
      PrintJson(config, *report);
    else
      PrintText(config, *report);
    ctx.exit_code = report->healthy() ? kExitMatch : kExitError;
  });
}

}  // namespace facesearch::cli
