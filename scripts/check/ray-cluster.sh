#!/usr/bin/env bash
# scripts/check/ray-cluster.sh — the Ray cluster tests (cluster/tests/test_ray_cluster.py): a
# 2-node Ray cluster on 127.0.0.1 with 4 shards x 2 replicas, ~100 images made from the test photos.
#
#   scripts/check/ray-cluster.sh [unittest args, e.g. -k forget; -k test_1_ -k test_9_: test_1 ingests]
#
# Heavy, so not part of scripts/test.sh or CI: sets up the Debian packages, models and test images,
# builds facesearch, makes the Ray virtualenv (scripts/setup-ray.sh: the pinned ray from PyPI), then
# runs the tests. FS_RAY_TEST_VARIANTS (default 15: 105 images), FS_RAY_TEST_PROBES (default 8) and
# FS_RAY_TEST_EXTRA_IMAGES (a file listing more images, e.g. LFW; then run -k test_1_ -k test_2_ only)
# size the run; its 16 tests took 28.6 min under nice -n 5 on the 2-core VM beside a full CI run
# (the first 9 took ~4 min with the VM otherwise idle). Only the Ray processes it started are
# stopped.
set -euo pipefail

# shellcheck source=scripts/lib/build.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/build.sh"

case "${1:-}" in
  -h | --help)
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

fs_prepare
fs_build
venv="${FS_RAY_VENV:-$FS_REPO_ROOT/.venv-ray}"
"$FS_REPO_ROOT/scripts/setup-ray.sh" "$venv"
log "step: Ray cluster tests"
cd -- "$FS_REPO_ROOT/cluster"
FACESEARCH_BINARY="$FS_REPO_ROOT/$FS_BUILD_DIR/facesearch" "$venv/bin/python" -m unittest -v tests.test_ray_cluster "$@"
