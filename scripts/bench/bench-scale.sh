#!/usr/bin/env bash
# scripts/bench/bench-scale.sh — what a user pays per command on a large corpus (issue #16): fresh
# processes of the real binary, wall time and peak RSS, warm and cold page cache.
#
#   scripts/bench/bench-scale.sh [--faces 1000000] [--kind int8] [--seed-images 300] [--dir DIR] [--lfw DIR]
#
# Builds what it needs under DIR (default /tmp/fs-scale, reused between runs): a seed corpus of
# real LFW faces (--seed-images images of people with several photos, from --lfw, default
# ../shared/data/lfw), its export, and a copy grown to --faces faces with synthetic faces drawn
# around the real ones (bench/grow_corpus.cpp), indexed with `reindex --index KIND`. Then it times,
# each in a fresh process: query (a real photo), info, index of 5 new photos, forget --image of one
# of them, recall@10 of the index as it then stands (bench/index_recall.cpp), verify, compact. The
# probe's own decode/detect/embed cost is shown by the same query on the seed corpus.
# Cold-cache rows need a writable /proc/sys/vm/drop_caches (else they are skipped, and said so).
# Prints a Markdown table on stdout; progress on stderr. Builds into build-bench (Release).
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

faces=1000000
kind=int8
seed_images=300
dir=/tmp/fs-scale
lfw="$FS_REPO_ROOT/../shared/data/lfw"
while (($#)); do
  case "$1" in
    --faces) faces="$2"; shift 2 ;;
    --kind) kind="$2"; shift 2 ;;
    --seed-images) seed_images="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --lfw) lfw="$2"; shift 2 ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
[[ -d "$lfw/images" ]] || die "no LFW images at $lfw/images: pass --lfw DIR"

build_dir="${FS_BENCH_BUILD_DIR:-build-bench}"
cd -- "$FS_REPO_ROOT"
log "step: build facesearch and grow_corpus in $build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DFACESEARCH_BUILD_TESTS=OFF >&2
cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)" --target facesearch grow_corpus index_recall >&2
bin="$FS_REPO_ROOT/$build_dir/facesearch"
mkdir -p "$dir"

# Seed: the first people (sorted) with at least 4 photos, up to seed_images images; the last 6
# photos of the list stay out of the corpus (the probe and the 5 images indexed later).
seed="$dir/seed"
if [[ ! -f "$seed/corpus/corpus.sqlite" ]]; then
  log "step: seed corpus of $seed_images LFW images in $seed"
  rm -rf "$seed" && mkdir -p "$seed/photos"
  find "$lfw/images" -mindepth 1 -maxdepth 1 -type d | sort | while read -r person; do
    n=$(find "$person" -name '*.jpg' | wc -l)
    ((n >= 4)) && find "$person" -name '*.jpg' | sort
  done | head -n $((seed_images + 6)) >"$seed/list" || true  # head closes the pipe early
  head -n "$seed_images" "$seed/list" | tr '\n' '\0' | "$bin" --corpus "$seed/corpus" -q index --from-file - -0
  "$bin" --corpus "$seed/corpus" -q export >"$seed/export.jsonl"
fi
probe="$(tail -n 6 "$seed/list" | head -n 1)"
mapfile -t new_photos < <(tail -n 5 "$seed/list")

big="$dir/corpus-$faces-$kind"
if [[ ! -f "$big.complete" ]]; then
  log "step: grow a copy of the seed corpus by $faces synthetic faces ($big)"
  rm -rf "$big" && cp -a "$seed/corpus" "$big"
  /usr/bin/time -f 'grow_corpus: %e s wall, %U s user, %S s sys, %M KiB peak RSS' \
    "$FS_REPO_ROOT/$build_dir/grow_corpus" "$big" "$seed/export.jsonl" "$faces"
  log "step: reindex --index $kind"
  /usr/bin/time -f 'reindex: %e s wall, %U s user, %S s sys, %M KiB peak RSS' \
    "$bin" --corpus "$big" reindex --index "$kind" >&2
  touch "$big.complete"
fi

can_drop=0
if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then can_drop=1; fi

# One timed fresh process: prints "| label | wall s | CPU s | peak RSS MiB |". CPU (user + system)
# is the figure to compare on a shared machine: wall time also counts waiting for a busy core.
timed() {
  local label="$1"; shift
  local wall user sys rss
  /usr/bin/time -o "$dir/time.out" -f '%e %U %S %M' "$@" >/dev/null 2>&1 || true
  read -r wall user sys rss < <(tail -n 1 "$dir/time.out")
  printf '| %s | %s | %s | %s |\n' "$label" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" \
    "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')"
}

export FACESEARCH_CASE=bench-scale
echo "Corpus: $(( $(sqlite3 "$big/corpus.sqlite" 'SELECT COUNT(*) FROM faces') )) faces, index kind $kind, $(du -sh "$big" | cut -f1) on disk; $(date -u +%F), $(nproc) CPUs"
echo
echo "| command | wall s | CPU s | peak RSS MiB |"
echo "|---|---|---|---|"
"$bin" --corpus "$seed/corpus" -q query "$probe" >/dev/null 2>&1 || true
timed "query (seed corpus, $seed_images images: the probe's own cost)" "$bin" --corpus "$seed/corpus" -q query "$probe"
for round in 1 2; do
  if ((round == 2)); then
    ((can_drop)) || { echo "| (cold-cache rows skipped: /proc/sys/vm/drop_caches is not writable) | | | |"; break; }
    sync; echo 3 >/proc/sys/vm/drop_caches
    cache=cold
  else
    "$bin" --corpus "$big" -q query "$probe" >/dev/null 2>&1 || true  # warm the page cache
    cache=warm
  fi
  timed "query ($cache)" "$bin" --corpus "$big" -q query "$probe"
  ((round == 2)) && { sync; echo 3 >/proc/sys/vm/drop_caches; }
  timed "info ($cache)" "$bin" --corpus "$big" -q info
done
work="$dir/work-$faces-$kind"
rm -rf "$work" && mkdir -p "$work"
cp "${new_photos[@]}" "$work/"
# --allow-reindex: a rerun of this script indexes the photos its last run erased.
timed "index of 5 new photos" "$bin" --corpus "$big" -q index --allow-reindex "$work"
timed "forget --image (1 photo)" "$bin" --corpus "$big" -q forget --image "$work/$(basename "${new_photos[0]}")"
timed "query after index + forget" "$bin" --corpus "$big" -q query "$probe"
# Recall of the index as it now stands (a delta chunk, a scrubbed row) against the exact scan.
echo "| $("$FS_REPO_ROOT/$build_dir/index_recall" "$big" 1000 2>&1 | tail -n 1) | | | |"
timed "verify" "$bin" --corpus "$big" -q verify
timed "compact (fold the delta and erased rows into the main segment)" "$bin" --corpus "$big" -q compact
# Leave the grown corpus as it was built (the next run times the same work).
for photo in "${work:?}"/*.jpg; do "$bin" --corpus "$big" -q forget --image "$photo" >/dev/null 2>&1 || true; done
