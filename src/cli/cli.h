// The command line: a table of subcommands, each in its own cmd_*.cpp. The CLI parses, calls the
// engine and formats; it holds no domain logic.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <ostream>
#include <string>

#include "cli/format.h"
#include "facesearch/engine.h"
#include "server/client.h"

namespace facesearch::cli {

// Exit codes, like grep's.
inline constexpr int kExitMatch = 0;    // success; for query: at least one match
inline constexpr int kExitNoMatch = 1;  // ran fine, nothing matched (or the probe has no face)
inline constexpr int kExitError = 2;

// Options shared by every subcommand, and the exit code the chosen one sets.
struct Context {
  std::string corpus;  // --corpus; empty: DefaultCorpusDir()
  std::string models;  // --models; empty: FACESEARCH_MODELS, then the cache
  std::string case_id;              // --case, recorded in the audit log
  std::string purpose;              // --purpose, recorded in the audit log
  std::string request_id;           // --request-id, recorded in the audit log's params
  bool strict_permissions = false;  // --strict-permissions
  double lock_wait_s = -1;          // --lock-wait
  std::string server;               // --server / FACESEARCH_SERVER: run on that facesearch serve
  std::string token_file;           // --token-file
  std::string server_ca;            // --server-ca / FACESEARCH_SERVER_CA: the CA of an https server
  int exit_code = kExitMatch;

  CorpusConfig Config() const;
  // Logs the error on stderr and sets exit_code to kExitError.
  void Report(const Error& error);
};

// A photo argument as the engine takes it: "-" is the image on standard input (`in`; the engine
// never reads std::cin), anything else a file.
inline ProbeImage PhotoArg(const std::string& arg, std::istream& in) {
  return arg == "-" ? ProbeImage::Stdin(in) : ProbeImage::File(arg);
}

// The --threshold of `forget --subject` and `export --subject`: as given, else SubjectThreshold
// for the subject's number of references on the corpus's own calibration table (logged).
// Errors: kNotFound (no corpus, no such subject).
Result<float> SubjectThresholdFor(const Context& ctx, const std::string& subject, std::optional<float> given);

// Adds --detector, --upsample and --max-pixels to a subcommand that runs the face pipeline.
void AddPipelineOptions(CLI::App& cmd, PipelineOptions& options);
// --video-fps, --video-max-seconds, --video-budget, --video-max-bytes (index and query).
void AddVideoOptions(CLI::App& cmd, VideoOptions& video);

// Adds -f/--format: table, json, jsonl, csv or tsv (docs/output.md), default table.
void AddFormatOption(CLI::App& cmd, OutputFormat& format);

// Adds a check refusing nan, inf and out-of-range values such as 1e999 to every floating-point
// option (CLI11 type FLOAT) of `app` and its subcommands, present and future: call it once the
// subcommands are added.
void RequireFiniteNumbers(CLI::App& app);

// Runs a command with std::cout buffered here and returns its exit status, unless what it wrote
// did not reach stdout: a full disk or another write error gives a message on stderr and
// kExitError; a reader that went away (EPIPE: SIGPIPE was ignored; by default SIGPIPE has already
// ended the process) gives 141 quietly, what a shell reports for a writer killed by SIGPIPE.
int RunCheckingStdout(const std::function<int()>& run);

// What index and embed share (cmd_index.cpp): the input options (--from-file, -0, --manifest,
// --urls and the fetch limits, --jobs), the per-file log line, the progress line on a terminal,
// and the run summary ("indexed N files in ..." with `verb`, or --json).
void AddInputOptions(CLI::App& cmd, IndexOptions& options);
void LogFileOutcome(const FileOutcome& outcome);
void ShowProgressOnTerminal(IndexOptions& options);
void PrintIndexSummary(std::ostream& out, const IndexSummary& summary, bool json, const char* verb);

struct Subcommand {
  const char* name;
  void (*add)(CLI::App& app, Context& ctx);
};

void AddIndexCommand(CLI::App& app, Context& ctx);
void AddQueryCommand(CLI::App& app, Context& ctx);
void AddInfoCommand(CLI::App& app, Context& ctx);
void AddExportCommand(CLI::App& app, Context& ctx);
void AddEvalCommand(CLI::App& app, Context& ctx);
void AddCompareCommand(CLI::App& app, Context& ctx);
void AddFacesCommand(CLI::App& app, Context& ctx);
void AddAuditCommand(CLI::App& app, Context& ctx);
void AddForgetCommand(CLI::App& app, Context& ctx);
void AddOptoutCommand(CLI::App& app, Context& ctx);
void AddConfigCommand(CLI::App& app, Context& ctx);
void AddClusterCommand(CLI::App& app, Context& ctx);
void AddVerifyCommand(CLI::App& app, Context& ctx);
void AddReindexCommand(CLI::App& app, Context& ctx);
void AddEmbedCommand(CLI::App& app, Context& ctx);   // cmd_embed.cpp
void AddImportCommand(CLI::App& app, Context& ctx);  // cmd_embed.cpp
void AddCompactCommand(CLI::App& app, Context& ctx);
void AddServeCommand(CLI::App& app, Context& ctx);
void AddUserCommand(CLI::App& app, Context& ctx);
// --server URL, --token-file and --server-ca, for the commands that can run on a server (cmd_serve.cpp).
void AddServerOptions(CLI::App& cmd, Context& ctx);
// Sends `request` to ctx.server with ctx's case and purpose, prints the answer as the command
// would have, and sets ctx.exit_code (its X-Facesearch-Exit).
void RunOnServer(Context& ctx, server::ClientRequest request);
// A photo (a path, or - for stdin) as a multipart part named `name`, read up to max_bytes + 1
// (the server refuses what is over its limit).
Result<server::UploadPart> PhotoPart(const std::string& name, const std::string& photo, int64_t max_bytes);

void AddSubjectCommand(CLI::App& app, Context& ctx);
// Adds the global --case, --purpose and --strict-permissions options (cmd_audit.cpp). With the
// app's fallthrough they are accepted after the subcommand name too.
void AddAccountabilityOptions(CLI::App& app, Context& ctx);

}  // namespace facesearch::cli
