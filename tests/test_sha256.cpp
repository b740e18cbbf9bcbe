// SHA-256 against the FIPS 180-4 example vectors, padding boundaries and incremental use.
#include "common/sha256.h"

#include <fstream>
#include <catch2/catch.hpp>

#include "support.h"

using facesearch::ErrorCode;
using facesearch::Sha256;
using facesearch::Sha256File;
using facesearch::Sha256Hex;

namespace {
const std::string k448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const std::string k896 =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopq"
    "rsmnopqrstnopqrstu";
const char* kMillionA = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
}  // namespace

TEST_CASE("sha256 matches the FIPS 180-4 example vectors", "[sha256]") {
  CHECK(Sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Hex(k448) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(Sha256Hex(k896) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(Sha256Hex(std::string(1000000, 'a')) == kMillionA);
}

TEST_CASE("sha256 pads correctly at every block-boundary length", "[sha256]") {
  // Lengths around 55/56 (length field no longer fits) and 64 (exact block); from Python hashlib.
  const std::pair<size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"},
  };
  for (const auto& [n, hex] : cases) {
    INFO("length " << n);
    CHECK(Sha256Hex(std::string(n, 'a')) == hex);
  }
}

TEST_CASE("sha256 gives the same digest however the input is split into updates", "[sha256]") {
  const std::string expected = Sha256Hex(k896);
  for (size_t i = 0; i <= k896.size(); ++i) {
    for (size_t j = i; j <= k896.size(); j += 7) {
      Sha256 h;
      h.Update(k896.substr(0, i));
      h.Update(k896.substr(i, j - i));
      h.Update(k896.substr(j));
      INFO("split at " << i << " and " << j);
      REQUIRE(h.FinishHex() == expected);
    }
  }
}

TEST_CASE("sha256 of a million 'a' fed in odd-sized chunks matches FIPS", "[sha256]") {
  const std::string chunk(997, 'a');
  Sha256 h;
  size_t left = 1000000;
  for (size_t step = 1; left > 0; step = step % 13 + 1) {
    size_t n = std::min({left, step * 61, chunk.size()});
    h.Update(chunk.data(), n);
    left -= n;
  }
  CHECK(h.FinishHex() == kMillionA);
}

TEST_CASE("Sha256File hashes whole files, empty and larger than its read buffer", "[sha256]") {
  facesearch::test::TempDir dir;
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  std::string big(200001, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);

  auto empty = Sha256File(write("empty", ""));
  REQUIRE(empty);
  CHECK(*empty == Sha256Hex(""));
  auto large = Sha256File(write("big", big));
  REQUIRE(large);
  CHECK(*large == Sha256Hex(big));
}

TEST_CASE("Sha256File reports a missing file as kNotFound", "[sha256]") {
  facesearch::test::TempDir dir;
  auto r = Sha256File(dir / "absent");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::kNotFound);
}
