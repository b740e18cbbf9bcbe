#!/usr/bin/env bash
# scripts/study/near_duplicates.sh — the near-duplicate study behind docs/benchmarks.md
# ("Near-duplicate images", issue #20): OpenCV img_hash's hashes on LFW copies (resized, recompressed,
# cropped, mirrored) against every pair of different photos of one person.
#
#   scripts/study/near_duplicates.sh [LFW_IMAGES_DIR [MAX_PEOPLE [all]]]
#
# Default LFW_IMAGES_DIR: /work/shared/data/lfw/images (one folder per person). "all" adds the
# AverageHash, MarrHildreth and RadialVariance hashes (slow). Prints TSV tables on stdout.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/../.."
lfw="${1:-/work/shared/data/lfw/images}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target near_dup_study >&2
exec build/near_dup_study "$lfw" "${2:-1000000}" ${3:+"$3"}
