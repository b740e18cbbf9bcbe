// `facesearch export --embed-file`: a corpus's faces (and tombstones) as an embed file, so that
// `import` can add them to another corpus: how facesearch-cluster moves buckets between shards
// (docs/scale.md, "Moving buckets").
#include <algorithm>
#include <ostream>

#include "common/json.h"
#include "engine/corpus.h"
#include "engine/privacy_internal.h"
#include "facesearch/embed.h"

namespace facesearch {
namespace {

EmbeddedImage RecordFor(const FaceRecord& f) {
  EmbeddedImage r;
  r.path = f.image_path;
  r.sha256 = f.image_sha256;
  r.size = f.image_size;
  r.width = f.image_width;
  r.height = f.image_height;
  r.provenance = f.provenance;
  return r;
}

FaceQuality QualityOf(const Face& f) {
  FaceQuality q;
  q.size = std::min(f.box.w, f.box.h);
  q.det_score = f.det_score;
  return q;  // sharpness 0: a corpus keeps none, and import recomputes quality anyway
}

Json BucketsJson(const BucketSelection& b) {
  Json ranges = Json::array();
  for (const auto& [first, last] : b.ranges) ranges.push_back({first, last});
  return {{"count", b.count}, {"ranges", std::move(ranges)}};
}

}  // namespace

int64_t ContentBucket(const std::string& sha256, int64_t count) {
  return static_cast<int64_t>(std::stoul(sha256.substr(0, 8), nullptr, 16) % static_cast<uint64_t>(count));
}

bool BucketSelection::Contains(const std::string& sha256) const {
  const int64_t bucket = ContentBucket(sha256, count);
  return std::ranges::any_of(ranges, [&](const auto& r) { return r.first <= bucket && bucket <= r.second; });
}

Result<EmbedExportCounts> ExportEmbedFile(const CorpusConfig& config, const std::optional<BucketSelection>& buckets,
                                          std::ostream& out) {
  FS_ASSIGN(const CorpusPaths paths, CheckExistingCorpus(config));
  FS_TRY(RequireWritable(paths, "an export must commit its audit record before it shows a face"));
  FS_ASSIGN(auto store, OpenStore(paths, StoreUse::kWrite));
  FS_ASSIGN(std::string identity, store->ModelIdentity());
  FS_ASSIGN(auto mode, CorpusEmbeddingMode(*store));
  FS_ASSIGN(std::vector<Tombstone> tombstones, store->Tombstones());  // not inside ForEachFace's statement
  FS_ASSIGN(CorpusCounts counts, store->Counts());
  Json params = {{"embed_file", true}};
  if (buckets) params["buckets"] = BucketsJson(*buckets);
  FS_TRY(AppendAudit(*store, config.audit, {"export", JsonText(params), {}, JsonText({{"faces", counts.faces}})}));

  auto wanted = [&](const std::string& sha) { return !buckets || buckets->Contains(sha); };
  // The detector is not recorded in a corpus: the header says so (it is informative only).
  out << FormatEmbedHeader({kEmbedFormatVersion, identity, mode.value_or(EmbeddingMode{}), "unknown"}) << '\n';
  EmbedExportCounts done;
  EmbeddedImage image;  // the image whose faces are being gathered (faces of an image have consecutive ids)
  int64_t image_id = -1;
  auto flush = [&] {
    if (image.faces.empty()) return;
    out << FormatEmbedRecord(image) << '\n';
    ++done.images;
    image = EmbeddedImage{};
  };
  bool video = false;
  FS_TRY(store->ForEachFace([&](const FaceRecord& f) {
    if (!wanted(f.image_sha256)) return;
    video = video || f.face.video.has_value();
    if (f.image_id != image_id) {
      flush();
      image = RecordFor(f);
      image_id = f.image_id;
    }
    image.faces.push_back(f.face);
    image.quality.push_back(QualityOf(f.face));
    ++done.faces;
  }));
  if (video)
    return Fail(ErrorCode::kInvalidArgument,
                "the corpus holds faces found in videos, which an embed file cannot carry (no frame times): "
                "the output is incomplete; leave videos out of corpora whose content must move");
  flush();
  for (const Tombstone& t : tombstones) {
    if (!wanted(t.sha256)) continue;
    EmbeddedImage r;
    r.status = EmbeddedImage::Status::kErased;
    r.sha256 = t.sha256;
    r.reason = t.reason;
    r.erased_at = t.erased_at;
    out << FormatEmbedRecord(r) << '\n';
    ++done.tombstones;
  }
  out << FormatEmbedEnd(done.images + done.tombstones) << '\n';
  return done;
}

}  // namespace facesearch
