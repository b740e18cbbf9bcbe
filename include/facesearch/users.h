// API users of `facesearch serve` and their rights (docs/usage.md "Serving a corpus"). A user is a
// name, a role and a bearer token; the corpus keeps only the token's SHA-256, and every change is
// audited. Users are managed on the corpus's own machine (`facesearch user`), never over HTTP.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "facesearch/error.h"

namespace facesearch {

struct CorpusConfig;

// searcher: search (query, compare, faces) and info. curator: a searcher who may also index,
// forget and record opt-outs. auditor: info and the audit log, no search. admin: everything.
enum class Role { kSearcher, kCurator, kAdmin, kAuditor };
enum class Right { kSearch, kIndex, kForget, kAudit, kInfo };

const char* RoleName(Role role);  // "searcher", "curator", "admin", "auditor"
Result<Role> ParseRole(std::string_view text);
const char* RightName(Right right);  // "search", "index", "forget", "audit", "info"
bool RoleAllows(Role role, Right right);

struct UserRecord {
  int64_t id = 0;
  std::string name;
  Role role = Role::kSearcher;
  std::string token_sha256;  // hex; empty in ListUsers' answer
  std::string created_at;
  std::string revoked_at;  // "" while active
  bool active() const { return revoked_at.empty(); }
};

// Creates a user and returns its token: "fs_" and 64 hex digits (256 random bits from OpenSSL's
// RAND_bytes). The token is shown once; the corpus keeps its SHA-256. A name is 1 to 64 of
// [A-Za-z0-9._@-]. Audited (action "user-add"). Errors: kInvalidArgument (name malformed or
// taken), kNotFound (no corpus), kDatabase.
Result<std::string> AddUser(const CorpusConfig& config, const std::string& name, Role role);
// Every user, revoked ones too, oldest first, without their token hashes.
Result<std::vector<UserRecord>> ListUsers(const CorpusConfig& config);
// Revokes a user's token at once for every server of the corpus (they read the users at each
// request). Audited ("user-revoke"). Errors: kNotFound when no active user has this name.
Status RevokeUser(const CorpusConfig& config, const std::string& name);

// The active user whose token this is, compared in constant time with every active user's hash
// (the token's SHA-256 against each stored one; no early exit), or nullptr.
const UserRecord* FindUserByToken(const std::vector<UserRecord>& users, std::string_view token);

}  // namespace facesearch
