#!/usr/bin/env bash
# scripts/fetch-test-images.sh — download and verify the test images the test suite and demo use.
#
#   scripts/fetch-test-images.sh [--dest DIR]
#
# Destination: --dest DIR, else $FACESEARCH_TEST_IMAGES, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/facesearch/test-images.
# The images are face_recognition-1.3.0/tests/test_images/* from the face_recognition 1.3.0 sdist
# (MIT licence, Adam Geitgey). If they are already there and match data/test-images.sha256, nothing
# is done. Otherwise the sdist is fetched with "pip download" (nothing is installed), its SHA-256 is
# checked, the pinned images are extracted, checked and moved into place atomically (directory 0700,
# files 0644). Any hash mismatch is a hard error.
set -euo pipefail

# shellcheck source=scripts/lib/fetch-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/fetch-common.sh"

readonly SDIST_SPEC="face_recognition==1.3.0"
readonly SDIST_FILE="face_recognition-1.3.0.tar.gz"
readonly SDIST_SHA256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
readonly MEMBER_DIR="face_recognition-1.3.0/tests/test_images"

usage() { sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

fs_parse_dest_args "$(fs_default_test_images_dir)" "$@"

log "making sure the test images are in $dest"
fs_fetch_pinned_sdist "$FS_REPO_ROOT/data/test-images.sha256" "$dest" "$SDIST_SPEC" "$SDIST_FILE" \
  "$SDIST_SHA256" "$MEMBER_DIR" "test images"
