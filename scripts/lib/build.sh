# shellcheck shell=bash
# scripts/lib/build.sh — the shared "prepare and build" step of scripts/test.sh and scripts/demo.sh
# (sourced, never run).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/build.sh"
#   fs_prepare      # setup-deps.sh, fetch-models.sh, fetch-test-images.sh
#   fs_build        # cmake configure (Release) + build into $FS_BUILD_DIR (default: build/)
#
# Both run from the repository root; FS_BUILD_DIR may be set to build elsewhere.

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/common.sh"

FS_BUILD_DIR="${FS_BUILD_DIR:-build}"

fs_prepare() {
  log "step: Debian packages (scripts/setup-deps.sh)"
  "$FS_REPO_ROOT/scripts/setup-deps.sh"
  log "step: dlib models (scripts/fetch-models.sh ${FS_FETCH_MODELS_ARGS:-})"
  # shellcheck disable=SC2086  # FS_FETCH_MODELS_ARGS: extra words, e.g. --with-68 (scripts/test.sh)
  "$FS_REPO_ROOT/scripts/fetch-models.sh" ${FS_FETCH_MODELS_ARGS:-}
  log "step: test images (scripts/fetch-test-images.sh)"
  "$FS_REPO_ROOT/scripts/fetch-test-images.sh"
}

fs_build() {
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  cd -- "$FS_REPO_ROOT" || die "cannot cd to $FS_REPO_ROOT"
  log "step: configure (cmake -S . -B $FS_BUILD_DIR -DCMAKE_BUILD_TYPE=Release)"
  cmake -S . -B "$FS_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
  log "step: build (cmake --build $FS_BUILD_DIR -j$jobs)"
  cmake --build "$FS_BUILD_DIR" -j"$jobs"
}
