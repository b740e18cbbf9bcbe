// `facesearch verify [--repair] [--full] [--format json]`
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
  auto findings = [&](bool problems) {
    Json out = Json::array();
    for (const VerifyFinding& f : r.findings)
      if (f.problem == problems) out.push_back({{"check", f.check}, {"message", f.message}});
    return out;
  };
  std::cout << JsonText({{"corpus", config.corpus_dir.string()},
                         {"healthy", r.healthy()},
                         {"checks", r.checks},
                         {"faces", r.faces},
                         {"index_vectors", r.index_vectors},
                         {"vectors_compared", r.vectors_compared},
                         {"problems", findings(true)},
                         {"notes", findings(false)},
                         {"repairs", r.repairs}})
            << "\n";
}

// "compared 1000 of 52000 faces' index vectors with SQLite (an even sample; --full compares all)"
std::string Compared(const VerifyReport& r) {
  return "compared " + std::to_string(r.vectors_compared) + " of " + std::to_string(r.faces) +
         " faces' index vectors with SQLite" +
         (r.vectors_compared < r.faces && r.vectors_compared == kVectorSample
              ? " (an even sample; --full compares all)" : "");
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
              << checks << "; " << Compared(r) << ")\n";
  else
    std::cout << "damaged: " << config.corpus_dir.string() << " has " << problems << " problem"
              << (problems == 1 ? "" : "s") << " (checked " << checks << "; " << Compared(r) << ")"
              << (r.repairs.empty() ? "; `facesearch verify --repair` repairs the index and erasure problems" : "")
              << "\n";
}

}  // namespace

void AddVerifyCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<VerifyArgs>();
  CLI::App* cmd = app.add_subcommand("verify", "Check the corpus end to end; --repair rebuilds its index");
  cmd->footer(
      "Checks: SQLite's integrity_check and foreign keys; the model identity and the model files'\n"
      "pins; private file permissions; the audit log's hash chain; that no erasure's scrub was\n"
      "left unfinished by a crash; the index file's header, checksum and stamp, that every id in it\n"
      "has a live face row and every face is in it, and that its vectors equal the embeddings in\n"
      "SQLite (1,000 faces spread evenly over the corpus; --full compares every face).\n"
      "Prints one line per problem (\"problem: CHECK: ...\") and per note (a state such as a lagging\n"
      "index that the next command repairs by itself). --repair takes the write lock, finishes an\n"
      "interrupted erasure's scrub and rebuilds the index from SQLite (the source of truth: when an\n"
      "embedding in SQLite was the one changed, restore corpus.sqlite from a backup instead); it\n"
      "never rewrites the database's rows, the models, permissions or the audit log.\n"
      "Exit status: 0 healthy (after --repair: healthy now), 2 a problem remains, or an error.\n\n"
      "Examples:\n"
      "  facesearch verify\n"
      "  facesearch verify --repair\n"
      "  facesearch verify --full          # compare every face's index vector with SQLite\n"
      "  facesearch verify --format json | jq -r '.problems[].message'");
  cmd->add_flag("--repair", args->options.repair,
                "Finish an interrupted erasure's scrub; rebuild the index from the database when it is damaged or stale");
  cmd->add_flag("--full", args->options.full,
                "Compare every face's index vector with its SQLite embedding (default: 1,000 spread evenly)");
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
