// Face tracking across the sampled frames of a video: one appearance of a person becomes one
// track, stored as its best face, instead of one face per sample.
//
// A face found in a sample continues a track seen in one of the last kTrackMaxGap + 1 samples
// when its box overlaps the track's last box (IoU) and its embedding is near the track's last one,
// or, without overlap, when the embedding alone is very near (a quick move between samples).
// Pairs are taken greedily, nearest embeddings first, each track and face once. A scene cut
// (Cut) ends every open track. Pure logic, no model: the caller detects and embeds.
#pragma once

#include <cstdint>
#include <vector>

#include "facesearch/types.h"

namespace facesearch {

inline constexpr double kTrackMinIou = 0.2;
inline constexpr float kTrackMaxDistance = 0.6f;          // with overlapping boxes: dlib's same-person distance
inline constexpr float kTrackMaxDistanceAlone = 0.4f;     // without overlap
inline constexpr int kTrackMaxGap = 1;                    // samples a face may be missed in and its track go on

// Intersection over union of two boxes; 0 when either is empty.
double BoxIou(const Box& a, const Box& b);

// A track's "best" face: the larger box, then the higher detector score.
bool BetterTrackFace(const Face& a, const Face& b);

class FaceTracker {
 public:
  // The faces found in sample number `sample` (increasing), taken at frame `frame`, time `at_s`.
  void Add(int64_t sample, int64_t frame, double at_s, const std::vector<Face>& faces);
  // A scene cut before the next sample: no track continues across it.
  void Cut();
  // Every track, in order of first appearance, as its best face, whose `video` holds the frame and
  // time of that face and the first and last times the track was seen.
  std::vector<Face> Finish();

 private:
  struct Track {
    Face best;
    Face last;
    int64_t last_sample = 0;
    bool open = true;
  };
  std::vector<Track> tracks_;
};

}  // namespace facesearch
