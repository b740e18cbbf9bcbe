// The audit log and corpus settings (facesearch/privacy.h): building records, the require-case
// rule, listing and verifying the chain.
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "common/sha256.h"
#include "common/json.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"

namespace facesearch {

namespace {

constexpr const char* kRequireCase = "require-case";

// Settings live in meta as "config.<key>".
std::string MetaKey(const std::string& key) { return "config." + key; }

bool IsSearch(const std::string& action) {
  return action == "query" || action == "export" || action == "compare" || action == "cluster";
}

std::string OsUser() {
  const uid_t uid = geteuid();
  if (const passwd* pw = getpwuid(uid); pw && pw->pw_name) return pw->pw_name;
  return "uid:" + std::to_string(uid);
}

}  // namespace

AuditRecord MakeAuditRecord(const AuditContext& who, const AuditEvent& event) {
  AuditRecord r;
  r.user = who.actor.empty() ? OsUser() : "api:" + who.actor;
  r.action = event.action;
  r.params = event.params.empty() ? "{}" : event.params;
  if (!who.request_id.empty()) {  // one key more in the params object: the chain's format stays v1
    Json params = Json::parse(r.params, nullptr, /*allow_exceptions=*/false);
    if (params.is_object()) {
      params["request_id"] = who.request_id;
      r.params = JsonText(params);
    }
  }
  r.case_id = who.case_id;
  r.purpose = who.purpose;
  r.probe_sha256 = event.probe_sha256;
  r.results = event.results.empty() ? "null" : event.results;
  return r;
}

Status CheckCaseRequired(Store& store, const AuditContext& who, const std::string& action) {
  if (!IsSearch(action) || !who.case_id.empty()) return Ok();
  FS_ASSIGN(std::optional<std::string> required, store.GetMeta(MetaKey(kRequireCase)));
  if (required.value_or("") == "true")
    return Fail(ErrorCode::kInvalidArgument,
                "this corpus requires a case reference for every " + action +
                    ": add --case ID (and --purpose TEXT), e.g. facesearch --case 2025-017 " +
                    action + " ...");
  return Ok();
}

Status AppendAudit(Store& store, const AuditContext& who, const AuditEvent& event) {
  FS_TRY(CheckCaseRequired(store, who, event.action));
  auto stored = store.AppendAudit(MakeAuditRecord(who, event));
  if (!stored)
    return Fail(stored.error().code, "cannot write the audit record, so no result is shown: " +
                                         stored.error().message);
  return Ok();
}

Result<OptOutFilter> OptOutFilter::Load(Store& store) {
  OptOutFilter filter;
  FS_ASSIGN(filter.optouts_, store.OptOuts());
  return filter;
}

bool OptOutFilter::Matches(const Embedding& e) const {
  return std::any_of(optouts_.begin(), optouts_.end(), [&](const OptOutRecord& o) {
    return EmbeddingDistance(e, o.embedding) <= o.threshold;
  });
}

int OptOutFilter::RemoveMatching(std::vector<Face>& faces) const {
  if (optouts_.empty()) return 0;
  return static_cast<int>(std::erase_if(faces, [&](const Face& f) { return Matches(f.embedding); }));
}

// ---- public API --------------------------------------------------------------------------------

Status AppendAudit(const CorpusConfig& config, const AuditEvent& event) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kWrite));
  return AppendAudit(*store, config.audit, event);
}

Status ListAudit(const CorpusConfig& config, const AuditFilter& filter,
                 const std::function<void(const AuditRecord&)>& fn) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  return store->ForEachAudit(filter, fn);
}

Result<AuditCheck> VerifyAuditLog(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  return store->VerifyAudit();
}

Result<LiveFaces> LiveFacesDigest(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  std::vector<std::string> lines;
  FS_TRY(store->ForEachFace([&](const FaceRecord& f) {
    const Box& b = f.face.box;
    lines.push_back(f.image_sha256 + " " + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
                    std::to_string(b.w) + "," + std::to_string(b.h));
  }));
  std::sort(lines.begin(), lines.end());
  std::string text;
  for (const std::string& line : lines) text += (text.empty() ? "" : "\n") + line;
  return LiveFaces{static_cast<int64_t>(lines.size()), Sha256Hex(text)};
}

Result<std::vector<std::pair<std::string, std::string>>> ListSettings(const CorpusConfig& config) {
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kRead));
  FS_ASSIGN(std::optional<std::string> require, store->GetMeta(MetaKey(kRequireCase)));
  return std::vector<std::pair<std::string, std::string>>{{kRequireCase, require.value_or("false")}};
}

Status SetSetting(const CorpusConfig& config, const std::string& key, const std::string& value) {
  if (key != kRequireCase)
    return Fail(ErrorCode::kInvalidArgument, "unknown setting '" + key + "'; known: require-case");
  if (value != "true" && value != "false")
    return Fail(ErrorCode::kInvalidArgument, "require-case takes true or false, not '" + value + "'");
  FS_ASSIGN(auto store, OpenCorpusStore(config, StoreUse::kWrite));
  AuditEvent event{"config", JsonText({{"key", key}, {"value", value}}), {}, "null"};
  return store->SetMetaAudited(MetaKey(key), value, MakeAuditRecord(config.audit, event));
}

}  // namespace facesearch
