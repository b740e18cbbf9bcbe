#!/usr/bin/env bash
# scripts/test.sh — THE test command: install deps, fetch models and test images, build, run ctest,
# then build and run the sanitizer stage (ASan + UBSan).
#
#   scripts/test.sh [CTEST_ARGS...]      e.g. scripts/test.sh -L fast   or   scripts/test.sh -R sha256
#
# Test tiers (ctest labels, set by Catch tags in tests/CMakeLists.txt): -L fast runs the tests that
# need no models and run no real binary on photos (under a minute); -L models the end-to-end tests
# that need the dlib models; -L slow the long end-to-end runs ([slow]). No CTEST_ARGS runs all three.
# Under CI=true a test whose prerequisite (chromium, man, help2man, mounts) is missing fails.
#
# Works from any directory. Steps: scripts/setup-deps.sh, scripts/fetch-models.sh,
# scripts/fetch-test-images.sh, cmake -S . -B build -DCMAKE_BUILD_TYPE=Release,
# cmake --build build -j$(nproc), ctest --test-dir build --output-on-failure -j1 CTEST_ARGS...
# Without CTEST_ARGS it then builds build-asan/ (-DFACESEARCH_SANITIZE=address,undefined) and runs
# the tests of our own code paths (FS_ASAN_TESTS; '' = all) under AddressSanitizer + UBSan (any
# finding fails the run);
# FS_SANITIZE_STAGE=0 skips that stage. Exits non-zero when any stage fails. CI (.ci/run) calls
# exactly this script.
set -euo pipefail

# shellcheck source=scripts/lib/build.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/build.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  exit 0
fi

# The sanitizer stage runs every test of our own code paths under ASan + UBSan: storage, index,
# search kernels, decoding, fetching and manifests, the CLI end to end, privacy and the fault tests.
# It leaves out the suites whose time goes into dlib's models or external programs rather than our
# code (analyzer, eval, compare, faces, quality, cluster, the HTML report in Chromium, help/man,
# shell pipelines), and the end-to-end reindex tests, whose index-file parsing and every index kind
# the [kinds] unit tests cover here: the Release stage above runs those, and they keep the whole CI
# run (2 cores) under half an hour. Hidden tests ([.], timing studies) are left out too: a filter of
# exclusions alone would otherwise select them. FS_ASAN_TESTS='' runs the whole suite; any Catch
# test spec runs a choice.
# The dlib adapter files stay uninstrumented (CMakeLists.txt, FACESEARCH_SANITIZE_DLIB), which
# keeps the instrumented binary about 1.3x as slow as Release; docs/reliability.md has the times.
FS_ASAN_TESTS="${FS_ASAN_TESTS-~[analyzer]~[eval]~[compare]~[faces]~[quality]~[cluster]~[html]~[help]~[pipeline]~[models]~[reindex]~[.]}"
FS_ASAN_BUILD_DIR="${FS_ASAN_BUILD_DIR:-build-asan}"

cd -- "$FS_REPO_ROOT"
start=$SECONDS
# The tests of the +lm68 embedding modes need the optional 68-point landmark model, those of the
# YuNet detector the optional OpenCV models.
FS_FETCH_MODELS_ARGS="${FS_FETCH_MODELS_ARGS---with-68 --with-opencv}"
fs_prepare
fs_build
log "step: tests (ctest --test-dir $FS_BUILD_DIR --output-on-failure -j1${*:+ $*})"
rc=0
ctest --test-dir "$FS_BUILD_DIR" --output-on-failure -j1 "$@" || rc=$?
if ((rc == 0)); then
  log "all tests passed ($((SECONDS - start)) s so far)"
else
  log "ctest failed (exit code $rc)"
fi

if (($# == 0)) && [[ "${FS_SANITIZE_STAGE:-1}" != 0 ]]; then
  stage=$SECONDS
  jobs="$(nproc 2>/dev/null || echo 2)"
  log "step: sanitizer build (cmake -S . -B $FS_ASAN_BUILD_DIR -DFACESEARCH_SANITIZE=address,undefined)"
  cmake -S . -B "$FS_ASAN_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFACESEARCH_SANITIZE=address,undefined
  cmake --build "$FS_ASAN_BUILD_DIR" -j"$jobs" --target facesearch facesearch_tests
  log "step: ASan+UBSan tests ($FS_ASAN_BUILD_DIR/tests/facesearch_tests ${FS_ASAN_TESTS:-(all)}; built in $((SECONDS - stage)) s)"
  asan_rc=0
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
    LSAN_OPTIONS="suppressions=$FS_REPO_ROOT/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$FS_ASAN_BUILD_DIR/tests/facesearch_tests" --use-colour no -w NoTests ${FS_ASAN_TESTS:+"$FS_ASAN_TESTS"} \
    || asan_rc=$?
  if ((asan_rc == 0)); then
    log "sanitizer stage passed in $((SECONDS - stage)) s"
  else
    log "sanitizer stage failed (exit code $asan_rc)"
    ((rc != 0)) || rc=$asan_rc
  fi
fi
log "finished in $((SECONDS - start)) s"
exit "$rc"
