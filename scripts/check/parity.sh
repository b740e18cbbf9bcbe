#!/usr/bin/env bash
# scripts/check/parity.sh — prove that facesearch's pipeline matches the reference Python face_recognition.
#
#   scripts/check/parity.sh [--lfw DIR] [--count N] [--models DIR] [--binary PATH] [--json]
#                     [--target L2] [--allow-unpaired N] [--dlib-bin SPEC]
#                     [--reference FILE | --reference-only] [--save-reference FILE] [--keep]
#
# 1. Picks N LFW images deterministically (default 250 from ../shared/data/lfw/images relative to the
#    repo root): the first image of each person, people sorted by name, spread over the alphabet.
# 2. Reference: in a throw-away virtualenv, pip installs dlib-bin (prebuilt "dlib" module), numpy,
#    Pillow, Click, face_recognition_models==0.3.0 and (--no-deps) face_recognition==1.3.0, checks the
#    model files against data/models.sha256, and runs HOG(1 upsample) + 5-point + ResNet(1 jitter) on
#    each image (scripts/check/parity_reference.py reference). --reference FILE reuses a saved run instead
#    (it must cover the same sample); --save-reference FILE keeps a copy of this run's.
# 3. Ours: facesearch --corpus TMP --models DIR index --retry none --detect-max-side 0 FILE..., then
#    facesearch --corpus TMP export.
# 4. Compares (parity_reference.py compare): faces paired by image path + identical box; prints the
#    one-sided faces and max/mean/p99 embedding L2; PASS if max L2 <= --target (default 0.01) and no
#    more than --allow-unpaired (default 0) faces are found by one side only. Exit 0 PASS, 1 FAIL, 2 error.
# --reference-only stops after step 2 (no C++ binary needed). --keep keeps the work directory.
# dlib-bin defaults to the 19.24 series to match Debian bookworm's libdlib-dev 19.24.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
FS_DIE_RC=2 # errors exit 2, FAIL exits 1

usage() { sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

lfw="$FS_REPO_ROOT/../shared/data/lfw/images"
count=250
models="$(fs_default_models_dir)"
binary="$FS_REPO_ROOT/build/facesearch"
dlib_bin="dlib-bin==19.24.6"
reference=""
save_reference=""
reference_only=0
keep=0
compare_args=()

need_value() { (($2 >= 2)) || die "$1 needs a value (try --help)"; }
while (($# > 0)); do
  case "$1" in
    --lfw) need_value "$1" $# && lfw="$2" && shift 2 ;;
    --count) need_value "$1" $# && count="$2" && shift 2 ;;
    --models) need_value "$1" $# && models="$2" && shift 2 ;;
    --binary) need_value "$1" $# && binary="$2" && shift 2 ;;
    --dlib-bin) need_value "$1" $# && dlib_bin="$2" && shift 2 ;;
    --reference) need_value "$1" $# && reference="$2" && shift 2 ;;
    --save-reference) need_value "$1" $# && save_reference="$2" && shift 2 ;;
    --target | --allow-unpaired) need_value "$1" $# && compare_args+=("$1" "$2") && shift 2 ;;
    --json) compare_args+=(--json) && shift ;;
    --reference-only) reference_only=1 && shift ;;
    --keep) keep=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer, got '$count'"
[[ -d "$lfw" ]] || die "LFW image directory $lfw not found (use --lfw DIR)"
lfw="$(cd -- "$lfw" && pwd -P)"
if [[ -n "$reference" && "$reference_only" == 1 ]]; then
  die "--reference and --reference-only exclude each other"
fi
[[ -z "$reference" || -r "$reference" ]] || die "reference file $reference not readable"

helper="$FS_REPO_ROOT/scripts/check/parity_reference.py"
pins="$FS_REPO_ROOT/data/models.sha256"

if ((keep)); then
  work="$(mktemp -d "${TMPDIR:-/tmp}/facesearch-parity.XXXXXXXX")"
  log "work directory (kept): $work"
else
  work=""
  fs_mktemp_dir work "facesearch-parity"
fi

log "step 1: picking $count images from $lfw"
python3 "$helper" sample --lfw "$lfw" --count "$count" >"$work/sample.txt"
mapfile -t images <"$work/sample.txt"
((${#images[@]} > 0)) || die "the sample is empty"

if [[ -n "$reference" ]]; then
  log "step 2: reusing the reference run in $reference"
  # It must describe exactly the images of this sample.
  python3 - "$reference" "$work/sample.txt" <<'PY' || die "$reference does not cover the same sample (other --lfw/--count?)"
import json, os, sys
ref = {os.path.realpath(json.loads(l)["path"]) for l in open(sys.argv[1]) if l.strip()}
want = {os.path.realpath(l.strip()) for l in open(sys.argv[2]) if l.strip()}
sys.exit(0 if ref == want else 1)
PY
  cp -- "$reference" "$work/reference.jsonl"
else
  log "step 2: creating a throw-away virtualenv in $work/venv"
  python3 -m venv "$work/venv" || die "python3 -m venv failed (Debian: install python3-venv)"
  py="$work/venv/bin/python"
  pip=("$py" -m pip --disable-pip-version-check --quiet)
  log "pip install $dlib_bin face_recognition_models==0.3.0 numpy Pillow Click (the models sdist is ~100 MB)"
  "${pip[@]}" install "$dlib_bin" face_recognition_models==0.3.0 numpy Pillow Click >&2 ||
    die "pip install of the reference's dependencies failed"
  log "pip install --no-deps face_recognition==1.3.0 (its 'dlib' dependency is provided by dlib-bin)"
  "${pip[@]}" install --no-deps face_recognition==1.3.0 >&2 || die "pip install face_recognition failed"
  "$py" -c 'import dlib, face_recognition' ||
    die "'import dlib, face_recognition' fails in the virtualenv"
  log "checking that the reference uses the pinned model files"
  "$py" "$helper" check-models --pins "$pins"
  log "running the reference pipeline on ${#images[@]} images (a few minutes)"
  "$py" "$helper" reference --list "$work/sample.txt" --out "$work/reference.jsonl"
  if [[ -n "$save_reference" ]]; then
    cp -- "$work/reference.jsonl" "$save_reference"
    log "saved the reference run to $save_reference"
  fi
fi

if ((reference_only)); then
  log "--reference-only: stopping before the facesearch side"
  python3 - "$work/reference.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
faces = sum(len(r["faces"]) for r in recs)
errors = sum(1 for r in recs if "error" in r)
print(f"reference: {len(recs)} images, {faces} faces, {errors} load errors")
PY
  exit 0
fi

log "step 3: facesearch side with $binary"
[[ -x "$binary" ]] || die "$binary not found or not executable (build first: scripts/test.sh or cmake --build build)"
(cd -- "$models" && sha256sum --quiet -c "$pins") ||
  die "the models in $models are missing or do not match $pins (run scripts/fetch-models.sh)"
corpus="$work/corpus"
chunk=100
index_failures=0
for ((i = 0; i < ${#images[@]}; i += chunk)); do
  end=$((i + chunk < ${#images[@]} ? i + chunk : ${#images[@]}))
  log "indexing images $((i + 1))-$end of ${#images[@]}: facesearch --corpus $corpus --models $models index --retry none --detect-max-side 0 FILE..."
  rc=0
  # --retry none: the reference has no second detection pass for images where HOG finds no face.
  # --detect-max-side 0: the reference library detects at full size, however large the image.
  "$binary" --corpus "$corpus" --models "$models" index --retry none --detect-max-side 0 "${images[@]:i:chunk}" || rc=$?
  if ((rc > 1)); then
    warn "facesearch index exited with $rc for this chunk; continuing so that the comparison shows what is missing"
    index_failures=$((index_failures + 1))
  fi
done
log "exporting: facesearch --corpus $corpus export"
"$binary" --corpus "$corpus" export >"$work/ours.jsonl" || die "facesearch export failed"
if [[ ! -s "$work/ours.jsonl" ]]; then
  die "facesearch exported no faces ($index_failures index chunks failed; see above)"
fi

log "step 4: comparing"
rc=0
python3 "$helper" compare "$work/reference.jsonl" "$work/ours.jsonl" "${compare_args[@]+"${compare_args[@]}"}" || rc=$?
((keep)) && log "kept: $work/reference.jsonl $work/ours.jsonl"
exit "$rc"
