// How a Face is laid out in the faces table, private to the store module. Header-only.
//   embedding: 128 float32, little-endian, 512 bytes (independent of the host's byte order)
//   landmarks: JSON "[[x,y],[x,y],[x,y],[x,y],[x,y]]" with integer coordinates
#pragma once

#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "facesearch/types.h"

namespace facesearch::codec {

inline constexpr size_t kEmbeddingBytes = kEmbeddingDim * sizeof(float);
static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559);

inline std::array<uint8_t, kEmbeddingBytes> EncodeEmbedding(const Embedding& e) {
  std::array<uint8_t, kEmbeddingBytes> out{};
  for (size_t i = 0; i < e.size(); ++i) {
    const auto bits = std::bit_cast<uint32_t>(e[i]);
    for (size_t b = 0; b < 4; ++b) out[4 * i + b] = static_cast<uint8_t>(bits >> (8 * b));
  }
  return out;
}

// nullopt when the blob does not have exactly kEmbeddingBytes bytes.
inline std::optional<Embedding> DecodeEmbedding(std::span<const uint8_t> blob) {
  if (blob.size() != kEmbeddingBytes) return std::nullopt;
  Embedding e{};
  for (size_t i = 0; i < e.size(); ++i) {
    uint32_t bits = 0;
    for (size_t b = 0; b < 4; ++b) bits |= uint32_t{blob[4 * i + b]} << (8 * b);
    e[i] = std::bit_cast<float>(bits);
  }
  return e;
}

inline std::string EncodeLandmarks(const std::array<Point, 5>& pts) {
  std::string out = "[";
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i) out += ',';
    out += '[' + std::to_string(pts[i].x) + ',' + std::to_string(pts[i].y) + ']';
  }
  return out + ']';
}

// Parses exactly the format EncodeLandmarks writes (whitespace tolerated); nullopt otherwise.
inline std::optional<std::array<Point, 5>> DecodeLandmarks(std::string_view s) {
  size_t pos = 0;
  auto skip_ws = [&] {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t')) ++pos;
  };
  auto expect = [&](char c) {
    skip_ws();
    if (pos >= s.size() || s[pos] != c) return false;
    ++pos;
    return true;
  };
  auto number = [&](int64_t& v) {
    skip_ws();
    auto [end, ec] = std::from_chars(s.data() + pos, s.data() + s.size(), v);
    if (ec != std::errc()) return false;
    pos = static_cast<size_t>(end - s.data());
    return true;
  };
  std::array<Point, 5> pts{};
  if (!expect('[')) return std::nullopt;
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i && !expect(',')) return std::nullopt;
    if (!expect('[') || !number(pts[i].x) || !expect(',') || !number(pts[i].y) || !expect(']'))
      return std::nullopt;
  }
  if (!expect(']')) return std::nullopt;
  skip_ws();
  if (pos != s.size()) return std::nullopt;
  return pts;
}

}  // namespace facesearch::codec
