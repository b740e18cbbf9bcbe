// Perceptual hash of a decoded image, for finding copies of one picture (resized, recompressed,
// lightly cropped) that SHA-256 cannot see. OpenCV contrib's img_hash stays in phash.cpp.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "image/decode.h"

namespace facesearch {

// OpenCV img_hash's PHash: a 32x32 grey copy, its DCT, and the 8x8 lowest frequencies compared
// with their mean; 64 bits. Computed on the decoded (EXIF-oriented) pixels, so a copy whose
// orientation is a tag hashes like one whose pixels were turned. Never fails on a decoded image.
uint64_t PerceptualHash(const RgbImage& image);

// Bits that differ between two hashes.
inline int HashDistance(uint64_t a, uint64_t b) { return std::popcount(a ^ b); }

// Two images whose hashes differ in at most this many bits are taken for copies of one picture.
// Chosen on LFW (docs/benchmarks.md, "Near-duplicate images"): the largest threshold at which no
// two different photos of one person are within it (the 12 LFW pairs within 4 bits are copies of
// one picture; different photos start at 5). Resized and recompressed copies: 99%+ found; 5%
// crops and mirror images: not.
inline constexpr int kNearDuplicateBits = 4;

inline bool NearDuplicates(uint64_t a, uint64_t b) { return HashDistance(a, b) <= kNearDuplicateBits; }

// The groups of near-duplicates among `hashes` (connected components of NearDuplicates), each
// the positions of its members in ascending order, groups ordered by their first member; only
// groups of two or more. Equal hashes are merged first, then multi-index hashing: two hashes
// within kNearDuplicateBits bits agree exactly on at least one of kNearDuplicateBits + 1 blocks,
// so only hashes sharing a block are compared.
std::vector<std::vector<size_t>> GroupNearDuplicates(const std::vector<uint64_t>& hashes);

}  // namespace facesearch
