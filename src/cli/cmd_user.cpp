// `facesearch user add|list|revoke`: the API users of `facesearch serve`.
#include <iomanip>
#include <iostream>
#include <memory>

#include "cli/cli.h"
#include "cli/format.h"
#include "facesearch/users.h"

namespace facesearch::cli {

namespace {

struct UserArgs {
  std::string name;
  std::string role;
  bool json = false;
};

void List(Context& ctx, const UserArgs& args) {
  auto users = ListUsers(ctx.Config());
  if (!users) return ctx.Report(users.error());
  if (!args.json) std::cout << std::left << std::setw(24) << "NAME" << std::setw(10) << "ROLE" << std::setw(22) << "CREATED" << "REVOKED\n";
  for (const UserRecord& u : *users) {
    if (args.json)
      std::cout << JsonText({{"name", u.name},
                             {"role", RoleName(u.role)},
                             {"created_at", u.created_at},
                             {"revoked_at", u.active() ? Json() : Json(u.revoked_at)}})
                << "\n";
    else
      std::cout << std::left << std::setw(24) << TerminalText(u.name) << std::setw(10) << RoleName(u.role) << std::setw(22)
                << u.created_at << (u.active() ? "-" : u.revoked_at) << "\n";
  }
  ctx.exit_code = kExitMatch;
}

}  // namespace

void AddUserCommand(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<UserArgs>();
  CLI::App* cmd = app.add_subcommand("user", "Manage the API users of facesearch serve");
  cmd->footer(
      "Roles: searcher (query, compare, info), curator (also forget), auditor (info and the\n"
      "audit log, no search), admin (everything). The token is printed once, on stdout; the\n"
      "corpus keeps only its SHA-256. A revocation takes effect at the next request. Every\n"
      "change is recorded in the audit log.\n\n"
      "Examples:\n"
      "  facesearch user add ana --role searcher > ana.token && chmod 600 ana.token\n"
      "  facesearch user list\n"
      "  facesearch user revoke ana");
  cmd->require_subcommand(1);
  CLI::App* add = cmd->add_subcommand("add", "Add a user and print its token (once)");
  add->add_option("name", args->name, "User name: letters, digits, . _ @ -")->required();
  add->add_option("--role", args->role, "searcher, curator, auditor or admin")
      ->required()
      ->check(CLI::IsMember({"searcher", "curator", "auditor", "admin"}));
  add->callback([&ctx, args] {
    auto role = ParseRole(args->role);
    if (!role) return ctx.Report(role.error());
    auto token = AddUser(ctx.Config(), args->name, *role);
    if (!token) return ctx.Report(token.error());
    std::cout << *token << "\n";
    ctx.exit_code = kExitMatch;
  });
  CLI::App* list = cmd->add_subcommand("list", "List the users, revoked ones too");
  list->add_flag("--json", args->json, "One JSON object per line");
  list->callback([&ctx, args] { List(ctx, *args); });
  CLI::App* revoke = cmd->add_subcommand("revoke", "Revoke a user's token");
  revoke->add_option("name", args->name, "User name")->required();
  revoke->callback([&ctx, args] {
    if (Status s = RevokeUser(ctx.Config(), args->name); !s) return ctx.Report(s.error());
    std::cout << "revoked " << TerminalText(args->name) << "\n";
    ctx.exit_code = kExitMatch;
  });
}

}  // namespace facesearch::cli
