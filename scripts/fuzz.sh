#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer target (clang, ASan+UBSan) and fuzz decode → detect → embed.
#
#   scripts/fuzz.sh [SECONDS]        default 300
#
# Seeds: the face_recognition test photos (scripts/fetch-test-images.sh). The corpus of interesting
# inputs grows in build-fuzz/corpus; crashes are written to build-fuzz/crash-* and make this exit 1.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
seconds="${1:-300}"
# libstdc++ 12's std::expected needs clang >= 16 (Debian bookworm's default clang is 14).
cxx=""
for c in clang++-19 clang++-18 clang++-17 clang++-16; do command -v "$c" >/dev/null && { cxx="$c"; break; }; done
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang >= 16 is needed: apt-get install clang-16 libclang-rt-16-dev libomp-16-dev" >&2; exit 2; }
seeds="${FACESEARCH_TEST_IMAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/facesearch/test-images}"
[[ -d "$seeds" ]] || scripts/fetch-test-images.sh
echo "fuzz.sh: building the fuzz target with $cxx, ASan and UBSan (build-fuzz/)" >&2
CXX="$cxx" cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACESEARCH_FUZZ=ON \
  -DFACESEARCH_SANITIZE=ON -DFACESEARCH_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz --target fuzz_decode -j"$(nproc)"
mkdir -p build-fuzz/corpus
echo "fuzz.sh: fuzzing for ${seconds}s (seeds: $seeds)" >&2
# Leaks inside OpenCV/libjpeg error paths are not ours to fix; ASan still reports memory errors.
ASAN_OPTIONS=detect_leaks=0 build-fuzz/fuzz_decode -max_total_time="$seconds" -max_len=65536 \
  -rss_limit_mb=4096 -artifact_prefix=build-fuzz/ build-fuzz/corpus "$seeds"
