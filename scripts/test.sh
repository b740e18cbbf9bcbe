#!/usr/bin/env bash
# scripts/test.sh — THE test command: install deps, fetch models and test images, build, run ctest.
#
#   scripts/test.sh [CTEST_ARGS...]      e.g. scripts/test.sh -L slow   or   scripts/test.sh -R sha256
#
# Works from any directory. Steps: scripts/setup-deps.sh, scripts/fetch-models.sh,
# scripts/fetch-test-images.sh, cmake -S . -B build -DCMAKE_BUILD_TYPE=Release,
# cmake --build build -j$(nproc), ctest --test-dir build --output-on-failure -j1 CTEST_ARGS...
# Exits with ctest's status. CI (.ci/run) calls exactly this script.
set -euo pipefail

# shellcheck source=scripts/lib/build.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/build.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  exit 0
fi

cd -- "$FS_REPO_ROOT"
fs_prepare
fs_build
log "step: tests (ctest --test-dir $FS_BUILD_DIR --output-on-failure -j1${*:+ $*})"
rc=0
ctest --test-dir "$FS_BUILD_DIR" --output-on-failure -j1 "$@" || rc=$?
if ((rc == 0)); then
  log "all tests passed"
else
  log "ctest failed (exit code $rc)"
fi
exit "$rc"
