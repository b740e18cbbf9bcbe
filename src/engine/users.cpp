// API users of `facesearch serve` (facesearch/users.h): tokens, roles, and their audited changes.
#include "facesearch/users.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "common/json.h"
#include "common/sha256.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"

namespace facesearch {

namespace {

struct RoleRights {
  Role role;
  const char* name;
  std::array<bool, 5> rights;  // by Right: search, index, forget, audit, info
};
constexpr RoleRights kRoles[] = {
    {Role::kSearcher, "searcher", {true, false, false, false, true}},
    {Role::kCurator, "curator", {true, true, true, false, true}},
    {Role::kAdmin, "admin", {true, true, true, true, true}},
    {Role::kAuditor, "auditor", {false, false, false, true, true}},
};
constexpr const char* kRightNames[] = {"search", "index", "forget", "audit", "info"};

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' || c == '-';
  });
}

Result<std::string> NewToken() {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1)
    return Fail(ErrorCode::kInternal, "OpenSSL could not produce random bytes for a token");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token = "fs_";
  for (unsigned char b : random) {
    token += kHex[b >> 4];
    token += kHex[b & 15];
  }
  return token;
}

AuditRecord UserAudit(const CorpusConfig& config, const char* action, const std::string& name, const char* role) {
  Json params = {{"name", name}};
  if (role) params["role"] = role;
  return MakeAuditRecord(config.audit, AuditEvent{action, JsonText(params), {}, "null"});
}

}  // namespace

const char* RoleName(Role role) {
  for (const RoleRights& r : kRoles)
    if (r.role == role) return r.name;
  return "searcher";
}

Result<Role> ParseRole(std::string_view text) {
  for (const RoleRights& r : kRoles)
    if (text == r.name) return r.role;
  return Fail(ErrorCode::kInvalidArgument,
              "unknown role '" + std::string(text) + "': use searcher, curator, auditor or admin");
}

const char* RightName(Right right) { return kRightNames[static_cast<int>(right)]; }

bool RoleAllows(Role role, Right right) {
  for (const RoleRights& r : kRoles)
    if (r.role == role) return r.rights[static_cast<size_t>(right)];
  return false;
}

Result<std::string> AddUser(const CorpusConfig& config, const std::string& name, Role role) {
  if (!ValidName(name))
    return Fail(ErrorCode::kInvalidArgument,
                "a user name is 1 to 64 letters, digits and . _ @ -, e.g. ana.k or ops@unit-3");
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kWrite));
  FS_ASSIGN(std::string token, NewToken());
  UserRecord user;
  user.name = name;
  user.role = role;
  user.token_sha256 = Sha256Hex(token);
  FS_TRY(store->AddUser(user, UserAudit(config, "user-add", name, RoleName(role))));
  return token;
}

Result<std::vector<UserRecord>> ListUsers(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  FS_ASSIGN(std::vector<UserRecord> users, store->Users());
  for (UserRecord& u : users) u.token_sha256.clear();
  return users;
}

Status RevokeUser(const CorpusConfig& config, const std::string& name) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kWrite));
  return store->RevokeUser(name, UserAudit(config, "user-revoke", name, nullptr));
}

const UserRecord* FindUserByToken(const std::vector<UserRecord>& users, std::string_view token) {
  const std::string hash = Sha256Hex(token);
  const UserRecord* found = nullptr;
  for (const UserRecord& u : users) {
    // Every stored hash is compared in full, found or not: the time taken says nothing about
    // which user, if any, holds a token near this one.
    const bool same = u.token_sha256.size() == hash.size() &&
                      CRYPTO_memcmp(u.token_sha256.data(), hash.data(), hash.size()) == 0;
    if (same && u.active()) found = &u;
  }
  return found;
}

}  // namespace facesearch
