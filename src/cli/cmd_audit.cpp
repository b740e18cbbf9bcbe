// `facesearch audit [verify]`, and the global accountability options (--case, --purpose,
// --strict-permissions).
#include <spdlog/spdlog.h>

#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/privacy.h"

namespace facesearch::cli {
namespace {

struct AuditArgs {
  std::string action = "list";
  std::string since, until, case_id, user;
  std::string format = "table";
  bool json = false;  // verify: one JSON object, with the live faces' digest
};

// `audit verify --json`: the chain's state and what the corpus holds, one object; a cluster replica's
// receipt after an erasure (docs/scale.md).
void VerifyJson(Context& ctx, const AuditCheck& check) {
  auto live = LiveFacesDigest(ctx.Config());
  if (!live) return ctx.Report(live.error());
  std::cout << JsonText({{"intact", check.ok},
                         {"records", check.records},
                         {"head", check.head_hash},
                         {"first_bad", check.first_bad},
                         {"problem", check.problem},
                         {"faces", live->faces},
                         {"live_digest", live->digest}})
            << "\n";
  if (!check.ok) spdlog::error("the audit log fails verification at record {}", check.first_bad);
  ctx.exit_code = check.ok ? kExitMatch : kExitError;
}

void Verify(Context& ctx, bool json) {
  auto check = VerifyAuditLog(ctx.Config());
  if (!check) return ctx.Report(check.error());
  if (json) return VerifyJson(ctx, *check);
  if (check->ok) {
    std::cout << "audit log intact: " << check->records << " record(s), head "
              << (check->head_hash.empty() ? "(empty)" : TerminalText(check->head_hash)) << "\n";
    ctx.exit_code = kExitMatch;
    return;
  }
  std::cout << "audit log BROKEN at record " << check->first_bad << ": " << TerminalText(check->problem) << "\n";
  spdlog::error("the audit log fails verification at record {}", check->first_bad);
  ctx.exit_code = kExitError;
}

void List(Context& ctx, const AuditArgs& args) {
  AuditFilter filter{"", "", args.case_id, args.user};
  if (!args.since.empty()) {
    auto since = ParseTimeBound(args.since, /*end_of_day=*/false);
    if (!since) return ctx.Report(since.error());
    filter.since = *since;
  }
  if (!args.until.empty()) {
    auto until = ParseTimeBound(args.until, /*end_of_day=*/true);
    if (!until) return ctx.Report(until.error());
    filter.until = *until;
  }
  int64_t n = 0;
  const bool table = args.format == "table";
  if (table) std::cout << "SEQ  AT                    USER        ACTION   CASE        RESULTS\n";
  Status s = ListAudit(ctx.Config(), filter, [&](const AuditRecord& r) {
    ++n;
    if (!table) {
      std::cout << AuditRecordJson(r) << '\n';
      return;
    }
    // Every field may hold bytes from the database file; pad what the terminal will show.
    auto pad = [](std::string_view raw, size_t w) {
      std::string v = TerminalText(raw);
      return v.size() < w ? v + std::string(w - v.size(), ' ') : v + " ";
    };
    std::cout << pad(std::to_string(r.seq), 5) << pad(r.at, 22) << pad(r.user, 12) << pad(r.action, 9)
              << pad(r.case_id.empty() ? "-" : r.case_id, 12) << TerminalText(r.results) << '\n';
  });
  if (!s) return ctx.Report(s.error());
  std::cout.flush();
  ctx.exit_code = n > 0 ? kExitMatch : kExitNoMatch;
}

}  // namespace

void AddAccountabilityOptions(CLI::App& app, Context& ctx) {
  app.add_option("--case", ctx.case_id,
                 "Case reference recorded in the audit log with every search, export and erasure")
      ->envname("FACESEARCH_CASE");
  app.add_option("--purpose", ctx.purpose, "Why you are searching, recorded in the audit log");
  app.add_option("--request-id", ctx.request_id,
                 "An id for this operation across corpora (a cluster's ledger entry), recorded in the audit "
                 "log's params as request_id, e.g. --request-id 7f3a-0042")
      ->envname("FACESEARCH_REQUEST_ID");
  app.add_flag("--strict-permissions", ctx.strict_permissions,
               "Refuse (exit 2) a corpus that group or others can access, instead of warning");
}

void AddAuditCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<AuditArgs>();
  CLI::App* cmd = app.add_subcommand("audit", "List the audit log of searches, exports and erasures, or verify it");
  cmd->footer(
      "Every query, export, forget, opt-out and settings change appends a record: time (UTC), OS\n"
      "user, subcommand and parameters, --case and --purpose, the SHA-256 of each probe image and\n"
      "the face ids returned (counts only for erasures). Records are hash-chained; `audit verify`\n"
      "recomputes the chain and names the first edited, deleted or reordered record. Write down\n"
      "the head hash it prints somewhere else: that proves later that nothing was rewritten.\n"
      "Exit status: list 0 some records, 1 none match; verify 0 intact, 2 broken or error.\n\n"
      "Examples:\n"
      "  facesearch audit\n"
      "  facesearch audit --case 2025-017 --since 2025-01-01 --format jsonl | jq .results\n"
      "  facesearch audit --since 7d --user ana\n"
      "  facesearch audit verify\n"
      "  facesearch audit verify --json   # + live faces and their digest: a replica's receipt");
  cmd->add_option("action", args->action, "list (default) or verify")
      ->check(CLI::IsMember({"list", "verify"}));
  cmd->add_option("--since", args->since, "Records at or after: 2025-02-03, 2025-02-03T04:05:06Z or 7d (ago)");
  cmd->add_option("--until", args->until, "Records at or before (a bare date includes that whole day)");
  cmd->add_option("--case", args->case_id, "Only records made with this --case");
  cmd->add_option("--user", args->user, "Only records made by this OS user");
  cmd->add_option("-f,--format", args->format, "Output: table or jsonl")
      ->check(CLI::IsMember({"table", "jsonl"}))
      ->capture_default_str();
  cmd->add_flag("--json", args->json,
                "verify: one JSON object (intact, records, head, faces, live_digest; docs/output.md)");
  cmd->callback([&ctx, args] {
    if (args->action == "verify") return Verify(ctx, args->json);
    List(ctx, *args);
  });
}

}  // namespace facesearch::cli
