// Face tracking across video samples. See track.h.
#include "engine/track.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

namespace facesearch {

double BoxIou(const Box& a, const Box& b) {
  const int64_t x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const int64_t x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  if (a.w <= 0 || a.h <= 0 || b.w <= 0 || b.h <= 0 || x1 <= x0 || y1 <= y0) return 0;
  const double inter = static_cast<double>(x1 - x0) * static_cast<double>(y1 - y0);
  return inter / (static_cast<double>(a.w) * a.h + static_cast<double>(b.w) * b.h - inter);
}

bool BetterTrackFace(const Face& a, const Face& b) {
  const int64_t sa = std::min(a.box.w, a.box.h), sb = std::min(b.box.w, b.box.h);
  return sa != sb ? sa > sb : a.det_score > b.det_score;
}

void FaceTracker::Add(int64_t sample, int64_t frame, double at_s, const std::vector<Face>& faces) {
  for (Track& t : tracks_)
    if (t.open && sample - t.last_sample > kTrackMaxGap + 1) t.open = false;
  // Candidate pairs (distance, track, face), nearest first.
  std::vector<std::tuple<float, size_t, size_t>> pairs;
  for (size_t t = 0; t < tracks_.size(); ++t) {
    if (!tracks_[t].open) continue;
    for (size_t f = 0; f < faces.size(); ++f) {
      const float d = EmbeddingDistance(tracks_[t].last.embedding, faces[f].embedding);
      const bool overlap = BoxIou(tracks_[t].last.box, faces[f].box) >= kTrackMinIou;
      if (d <= (overlap ? kTrackMaxDistance : kTrackMaxDistanceAlone)) pairs.emplace_back(d, t, f);
    }
  }
  std::sort(pairs.begin(), pairs.end());
  std::vector<bool> track_taken(tracks_.size()), face_taken(faces.size());
  constexpr size_t kNewTrack = SIZE_MAX;
  std::vector<size_t> continues(faces.size(), kNewTrack);
  for (const auto& [d, t, f] : pairs) {
    if (track_taken[t] || face_taken[f]) continue;
    track_taken[t] = face_taken[f] = true;
    continues[f] = t;
  }
  for (size_t f = 0; f < faces.size(); ++f) {
    Face seen = faces[f];
    seen.video = VideoSpan{frame, at_s, at_s, at_s};
    if (continues[f] == kNewTrack) {
      tracks_.push_back(Track{seen, seen, sample, true});
      continue;
    }
    Track& t = tracks_[continues[f]];
    seen.video->first_s = t.best.video->first_s;
    t.last = seen;
    t.last_sample = sample;
    if (BetterTrackFace(seen, t.best)) t.best = seen;
    t.best.video->last_s = at_s;
  }
}

void FaceTracker::Cut() {
  for (Track& t : tracks_) t.open = false;
}

std::vector<Face> FaceTracker::Finish() {
  std::vector<Face> out;
  out.reserve(tracks_.size());
  for (Track& t : tracks_) out.push_back(std::move(t.best));
  tracks_.clear();
  return out;
}

}  // namespace facesearch
