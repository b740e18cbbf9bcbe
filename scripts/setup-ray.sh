#!/usr/bin/env bash
# scripts/setup-ray.sh — make the Python virtualenv that runs facesearch on a Ray cluster.
#
#   scripts/setup-ray.sh [VENV]      # default VENV: $FS_RAY_VENV, else <repo>/.venv-ray
#
# Installs the pinned Ray (cluster/requirements.txt: ray, and Pillow for the test images) and the
# facesearch_cluster package (cluster/, editable) into VENV, from PyPI. Idempotent: an existing
# VENV is reused and brought to the pins. Afterwards VENV/bin/facesearch-cluster and VENV/bin/ray
# exist; docs/scale.md says how to start a cluster. Needs python3-venv (scripts/setup-deps.sh).
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
  -h | --help)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

venv="${1:-${FS_RAY_VENV:-$FS_REPO_ROOT/.venv-ray}}"
if [[ ! -x "$venv/bin/python" ]]; then
  log "creating the virtualenv $venv"
  python3 -m venv "$venv"
fi
log "installing the pinned Ray and facesearch_cluster into $venv (a first run downloads ~100 MB)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$FS_REPO_ROOT/cluster/requirements.txt"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$FS_REPO_ROOT/cluster"
log "ready: $venv/bin/facesearch-cluster --help"
