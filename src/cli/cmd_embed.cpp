// `facesearch embed PATH... -o FILE` and `facesearch import FILE`: embed anywhere, write once.
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>
#include <sstream>

#include "cli/cli.h"
#include "common/fs.h"
#include "facesearch/embed.h"

namespace facesearch::cli {
namespace {

struct EmbedArgs {
  std::vector<std::string> paths;
  IndexOptions options;
  std::string output = "-";
  bool json = false;
};

void RunEmbed(Context& ctx, EmbedArgs& args) {
  args.options.on_file = LogFileOutcome;
  ShowProgressOnTerminal(args.options);
  if (args.paths.empty() && args.options.list_files.empty() && args.options.manifests.empty() &&
      args.options.url_lists.empty())
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "nothing to embed: give PATH..., --from-file, --manifest or --urls"});
  if (args.json && args.output == "-")
    return ctx.Report(Error{ErrorCode::kInvalidArgument,
                            "--json prints the summary on stdout, where the embed file goes: add -o FILE"});
  // A file is written whole at the end (atomically, mode 0600: embeddings are biometric data), so
  // a run that fails leaves none behind; stdout streams.
  std::ostringstream buffer;
  std::ostream& out = args.output == "-" ? std::cout : buffer;
  auto summary = EmbedPaths(ctx.Config(), args.paths, args.options, out);
  if (!summary) return ctx.Report(summary.error());
  if (args.output != "-")
    if (Status s = WriteFileAtomic(args.output, buffer.str()); !s) return ctx.Report(s.error());
  if (args.output != "-") return PrintIndexSummary(std::cout, *summary, args.json, "embedded");
  // stdout holds the embed file: the summary goes to the log.
  std::ostringstream text;
  PrintIndexSummary(text, *summary, false, "embedded");
  std::string line = text.str();
  if (!line.empty() && line.back() == '\n') line.pop_back();
  spdlog::info("{}", line);
}

struct ImportArgs {
  std::string file;
  ImportOptions options;
  bool json = false;
};

void RunImport(Context& ctx, ImportArgs& args) {
  args.options.on_file = LogFileOutcome;
  auto summary = ImportEmbeddings(ctx.Config(), args.file, args.file == "-" ? &std::cin : nullptr, args.options);
  if (!summary) return ctx.Report(summary.error());
  PrintIndexSummary(std::cout, *summary, args.json, "imported");
}

}  // namespace

void AddEmbedCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<EmbedArgs>();
  CLI::App* cmd = app.add_subcommand("embed", "Detect, align and embed faces into a file, without a corpus");
  cmd->footer(
      "The CPU-heavy half of `index`, for running on other machines or later: the same inputs,\n"
      "detector and embedding options, and an embed file out (JSON Lines: a header naming the\n"
      "models and the embedding mode, one record per input with its SHA-256, size, provenance and\n"
      "every face's box, landmarks, detector score, quality and 128-float embedding, then an end\n"
      "line; docs/output.md). `facesearch import FILE` adds it to a corpus, exactly as `index` would\n"
      "have. `query --embedding FILE` searches with its faces. The file holds biometric data: it is\n"
      "written mode 0600. Nothing is deduplicated here (the corpus does it on import).\n"
      "Exit status 0 when the run completes (per-file errors are records too), 2 when it cannot.\n\n"
      "Examples:\n"
      "  facesearch embed -o batch-017.jsonl /mnt/inbox/017/\n"
      "  facesearch --corpus /srv/shard-3 import batch-017.jsonl\n"
      "  facesearch embed probe.jpg | facesearch query --embedding -\n"
      "  find /mnt/archive -name '*.jpg' -print0 | facesearch embed --from-file - -0 -o archive.jsonl\n"
      "  facesearch embed --manifest web.csv --embedding flip -o web.jsonl   # for a flip corpus");
  cmd->add_option("paths", args->paths, "Files, directories, URLs, or - to read paths from stdin");
  cmd->add_option("-o,--output", args->output, "Write the embed file here (default -: stdout)");
  AddInputOptions(*cmd, args->options);
  cmd->add_flag("--json", args->json, "Print the summary as JSON on stdout (needs -o FILE)");
  AddPipelineOptions(*cmd, args->options.pipeline);
  cmd->callback([&ctx, args] { RunEmbed(ctx, *args); });
}

void AddImportCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand("import", "Add an embed file (facesearch embed) to the corpus");
  cmd->footer(
      "The writing half of `index`: the faces of an embed file go into the corpus as `index` would\n"
      "have put them there. Content already in the corpus (same SHA-256) is skipped, so importing a\n"
      "file twice adds nothing; content erased by `facesearch forget` is skipped unless\n"
      "--allow-reindex; faces matching an opt-out are never stored. A file made with other models\n"
      "or another embedding mode than the corpus's is refused, and so is a malformed or truncated\n"
      "one, before anything is written. Exit status 0 when imported, 2 when refused.\n\n"
      "Examples:\n"
      "  facesearch --corpus /srv/shard-3 import batch-017.jsonl\n"
      "  ssh worker-2 facesearch embed -o - /data/017 | facesearch import -\n"
      "  facesearch import --json batch.jsonl | jq .added");
  cmd->add_option("file", args->file, "The embed file, or - for stdin")->required();
  cmd->add_flag("--json", args->json, "Print the summary as JSON on stdout");
  cmd->add_flag("--allow-reindex", args->options.allow_reindex,
                "Also import content that `facesearch forget` erased earlier (skipped by default)");
  cmd->callback([&ctx, args] { RunImport(ctx, *args); });
}

}  // namespace facesearch::cli
