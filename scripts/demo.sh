#!/usr/bin/env bash
# scripts/demo.sh — build facesearch and run it end to end on the bundled test images.
#
#   scripts/demo.sh [--corpus DIR]
#
# Installs deps, fetches models and test images, builds (same steps as scripts/test.sh), then:
#   1. copies obama.jpg obama2.jpg biden.jpg 32bit.png into a sample folder,
#   2. build/facesearch --corpus CORPUS index SAMPLE_DIR
#   3. build/facesearch --corpus CORPUS query obama3.jpg     (a photo of Obama not in the corpus)
# CORPUS is a throw-away temp dir unless --corpus DIR is given (then it is kept). Exits with the
# query's exit code (0: a match, 1: no match, 2: error).
set -euo pipefail

# shellcheck source=scripts/lib/build.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/lib/build.sh"

corpus=""
while (($# > 0)); do
  case "$1" in
    --corpus)
      (($# >= 2)) || die "--corpus needs a directory"
      corpus="$2"
      shift 2
      ;;
    --corpus=*)
      corpus="${1#--corpus=}"
      shift
      ;;
    -h | --help)
      sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done

cd -- "$FS_REPO_ROOT"
fs_prepare
fs_build

bin="$FS_REPO_ROOT/$FS_BUILD_DIR/facesearch"
[[ -x "$bin" ]] || die "the build did not produce $bin"
images="$(fs_default_test_images_dir)"

work=""
fs_mktemp_dir work "facesearch-demo"
if [[ -z "$corpus" ]]; then
  corpus="$work/corpus"
  log "using a throw-away corpus in $corpus (removed on exit; pass --corpus DIR to keep one)"
else
  log "using the corpus in $corpus"
fi
sample="$work/sample"
mkdir -p -- "$sample"
for name in obama.jpg obama2.jpg biden.jpg 32bit.png; do
  cp -- "$images/$name" "$sample/$name"
done
log "sample folder $sample holds: obama.jpg obama2.jpg biden.jpg 32bit.png"

log "indexing the sample folder: facesearch --corpus $corpus index $sample"
"$bin" --corpus "$corpus" index "$sample"

log "querying with a different photo of Obama: facesearch --corpus $corpus query $images/obama3.jpg"
rc=0
"$bin" --corpus "$corpus" query "$images/obama3.jpg" || rc=$?
case "$rc" in
  0) log "query found a match (exit code 0)" ;;
  1) log "query ran but found no match (exit code 1)" ;;
  *) log "query failed (exit code $rc)" ;;
esac
exit "$rc"
