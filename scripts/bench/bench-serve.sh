#!/usr/bin/env bash
# scripts/bench/bench-serve.sh — facesearch serve against a fresh process per query (issue #18).
#
#   scripts/bench/bench-serve.sh [--faces 100000] [--kind int8] [--dir /tmp/fs-scale] [--queries 20]
#                                [--duration 30] [--requests 10000]
#                                [--soak EMBED_REQUESTS,PHOTO_REQUESTS] [--during-index IMAGES]
#                                [--corpus DIR] [--work DIR] [--lfw DIR]
#
# Run scripts/bench/bench-scale.sh with the same --faces, --kind and --dir first: it builds the
# seed corpus (300 LFW images), the grown corpus and times the fresh-process commands. This script
# starts `facesearch serve` (127.0.0.1 only, --allow-anonymous, no rate limit) on each corpus and
# measures: start-up (process start to "listening"), --queries sequential queries with curl
# (image upload included; wall p50/p90, and the server's CPU per query from /proc), the same
# query through the CLI (`query --server`, a fresh client process), wrk with 8 connections on 2
# threads for --duration seconds (queries/s, p50/p99, errors), and the server's RSS before and after
# --requests further queries (8 curl clients at a time). Prints Markdown on stdout; progress on stderr.
#
# --soak E,P runs only this instead, on the big corpus (or --corpus DIR, e.g. a copy: every query
# appends an audit record): E queries with the probe's embed file, then P with the photo, in
# batches of 500 (photos: 100) over one keep-alive connection; after each batch, the server's RSS
# and CPU per request. --during-index N runs only this, on a copy of the seed corpus: queries (the
# embed file of a held-out photo of a person indexed in the run) before and while an `index` run
# adds N more LFW images (people not in the seed) with the server up; each answer's corpus_faces
# is compared with the faces committed just before it was asked. --work DIR: scratch (default
# DIR/serve-bench).
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

faces=100000
kind=int8
dir=/tmp/fs-scale
queries=20
duration=30
requests=10000
soak=""
during_index=0
corpus=""
work=""
lfw="$FS_REPO_ROOT/../shared/data/lfw"
while (($#)); do
  case "$1" in
    --faces) faces="$2"; shift 2 ;;
    --kind) kind="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --soak) soak="$2"; shift 2 ;;
    --during-index) during_index="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --lfw) lfw="$2"; shift 2 ;;
    -h | --help) sed -n '2,27s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
command -v wrk >/dev/null || die "wrk is needed (scripts/setup-deps.sh installs it)"
bin="$FS_REPO_ROOT/${FS_BENCH_BUILD_DIR:-build-bench}/facesearch"
seed="$dir/seed"
big="$dir/corpus-$faces-$kind"
[[ -f "$big.complete" && -x "$bin" ]] || die "no corpus at $big: run scripts/bench/bench-scale.sh --faces $faces --kind $kind --dir $dir first"
big="${corpus:-$big}"
probe="$(tail -n 6 "$seed/list" | head -n 1)"
work="${work:-$dir/serve-bench}" && rm -rf "$work" && mkdir -p "$work"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
percentile() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.3f", v[i] }'; }

# Starts the server on corpus $1; sets pid, url and startup (seconds from exec to "listening").
start_server() {
  local t0 t1
  rm -f "$work/out"
  t0=$(date +%s.%N)
  "$bin" --corpus "$1" serve --port 0 --allow-anonymous --rate-limit 0 >"$work/out" 2>"$work/err" &
  pid=$!
  until grep -q '^listening on ' "$work/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "the server did not start: $(tail -n 3 "$work/err")"
    sleep 0.01
  done
  t1=$(date +%s.%N)
  url="$(sed -n 's/^listening on //p' "$work/out")"
  startup=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

# N queries over one keep-alive connection (curl's URL glob), each answer's HTTP status appended to
# $work/codes: query_batch N FILE CONTENT_TYPE.
query_batch() {
  curl -s -o /dev/null -w '%{http_code}\n' -H "Content-Type: $3" --data-binary "@$2" "$url/v1/query?name=p[1-$1]" >>"$work/codes"
}
statuses() { sort "$work/codes" | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2 }'; }

if [[ -n "$soak" ]]; then
  IFS=, read -r soak_embed soak_photo <<<"$soak"
  "$bin" --corpus "$big" -q embed -o "$work/probe.jsonl" "$probe" >&2
  start_server "$big"
  query_batch 5 "$work/probe.jsonl" application/x-ndjson  # warm-up, not counted
  : >"$work/codes"
  echo "Soak on $(sqlite3 "$big/corpus.sqlite" 'SELECT COUNT(*) FROM faces') faces (start-up ${startup} s); RSS after warm-up $(rss_mib "$pid") MiB."
  echo
  echo "| requests so far | this batch | RSS MiB | server CPU ms per request in the batch |"
  echo "|---|---|---|---|"
  done_requests=0
  for spec in "$soak_embed:500:$work/probe.jsonl:application/x-ndjson:embed file" "$soak_photo:100:$probe:image/jpeg:photo"; do
    IFS=: read -r total step file type label <<<"$spec"
    for ((sent = 0; sent < total; sent += step)); do
      n=$((total - sent < step ? total - sent : step))
      c0=$(cpu_ticks "$pid")
      query_batch "$n" "$file" "$type"
      c1=$(cpu_ticks "$pid")
      done_requests=$((done_requests + n))
      printf '| %s | %s %s | %s | %s |\n' "$done_requests" "$n" "$label" "$(rss_mib "$pid")" \
        "$(awk -v a="$c0" -v b="$c1" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) * 1000 / hz / n }')"
    done
  done
  echo
  echo "HTTP statuses: $(statuses)."
  kill -TERM "$pid"; wait "$pid" || true
  exit 0
fi

if ((during_index > 0)); then
  [[ -d "$lfw/images" ]] || die "no LFW images at $lfw/images: pass --lfw DIR"
  live="$work/live" && cp -a "$seed/corpus" "$live"
  # People with 4 or more photos, none of them in the seed, until N photos; the first person's
  # first photo is held out as the probe, the rest of the person is in the run.
  find "$lfw/images" -mindepth 1 -maxdepth 1 -type d | sort | while read -r person; do
    n=$(find "$person" -name '*.jpg' | wc -l)
    ((n >= 4)) && ! grep -q "/$(basename "$person")/" "$seed/list" && find "$person" -name '*.jpg' | sort
  done | head -n $((during_index + 1)) >"$work/new" || true
  held_out="$(head -n 1 "$work/new")"
  tail -n +2 "$work/new" >"$work/index-list"
  "$bin" --corpus "$live" -q embed -o "$work/probe.jsonl" "$held_out" >&2
  start_server "$live"
  # One query: "seconds committed_faces_before corpus_faces matches status".
  live_query() {
    local before answer
    before=$(sqlite3 "$live/corpus.sqlite" 'SELECT COUNT(*) FROM faces')
    answer=$(curl -s -w '\n%{http_code} %{time_total}' -H 'Content-Type: application/x-ndjson' \
      --data-binary "@$work/probe.jsonl" "$url/v1/query?name=probe&format=json") || { echo "0 $before -1 -1 curl-error"; return; }
    read -r code seconds <<<"$(tail -n 1 <<<"$answer")"
    printf '%s %s %s %s %s\n' "$seconds" "$before" \
      "$(head -n -1 <<<"$answer" | jq -r '.corpus_faces // -1')" "$(head -n -1 <<<"$answer" | jq -r '[.results[]?.matches[]?] | length')" "$code"
  }
  for _ in $(seq 200); do live_query; done >"$work/before"
  c0=$(cpu_ticks "$pid")
  "$bin" --corpus "$live" -q index --from-file "$work/index-list" >&2 2>"$work/index.err" &
  index_pid=$!
  while kill -0 "$index_pid" 2>/dev/null; do live_query; done >"$work/during"
  wait "$index_pid" || die "the index run failed: $(tail -n 3 "$work/index.err")"
  c1=$(cpu_ticks "$pid")
  live_query >"$work/after"
  summarize() {  # label file
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(wc -l <"$2")" "$(awk '$5 != 200' "$2" | wc -l)" \
      "$(awk '{ print $1 }' "$2" | percentile 50)" "$(awk '{ print $1 }' "$2" | percentile 99)" \
      "$(awk '$3 < $2' "$2" | wc -l)"
  }
  echo "Queries (the embed file of $(basename "$held_out"), held out) against a copy of the seed corpus ($(sqlite3 "$seed/corpus/corpus.sqlite" 'SELECT COUNT(*) FROM images') images), before and while \`index\` adds $(wc -l <"$work/index-list") LFW images:"
  echo
  echo "| phase | queries | errors | p50 s | p99 s | answers that missed a committed face |"
  echo "|---|---|---|---|---|---|"
  summarize "before the index run" "$work/before"
  summarize "during the index run" "$work/during"
  read -r _ committed searched matches _ <"$work/after"
  echo
  echo "During the run the answers saw $(awk '{ print $3 }' "$work/during" | sort -un | wc -l) different corpus sizes (the run's commits) and the held-out person's matches grew from $(head -n 1 "$work/during" | awk '{ print $4 }') to $(tail -n 1 "$work/during" | awk '{ print $4 }'); after it, the next query searched $searched faces ($committed committed) and found $matches match(es). Server CPU during the run: $(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (b - a) / hz }') s."
  kill -TERM "$pid"; wait "$pid" || true
  exit 0
fi

one_query() { curl -s -o /dev/null -w '%{time_total}\n' -H 'Content-Type: image/jpeg' --data-binary "@$probe" "$url/v1/query?name=probe.jpg"; }

echo "Probe: $(basename "$probe") ($(stat -c %s "$probe") bytes); $(date -u +%F), $(nproc) CPUs; the server and its clients share them."
echo
echo "| corpus | start-up s | query p50 s (wall) | p90 s | server CPU s per query | \`query --server\` wall s |"
echo "|---|---|---|---|---|---|"
for corpus in "$seed/corpus" "$big"; do
  log "corpus $corpus"
  start_server "$corpus"
  one_query >/dev/null  # the first query warms the caches
  c0=$(cpu_ticks "$pid")
  for _ in $(seq "$queries"); do one_query; done >"$work/lat"
  c1=$(cpu_ticks "$pid")
  cli_wall=$( { /usr/bin/time -f '%e' "$bin" -q query --server "$url" "$probe" >/dev/null || true; } 2>&1 | tail -n 1)
  n=$(sqlite3 "$corpus/corpus.sqlite" 'SELECT COUNT(*) FROM faces')
  printf '| %s faces | %s | %s | %s | %s | %s |\n' "$n" "$startup" "$(percentile 50 <"$work/lat")" \
    "$(percentile 90 <"$work/lat")" "$(awk -v a="$c0" -v b="$c1" -v n="$queries" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz / n }')" \
    "$cli_wall"
  [[ "$corpus" == "$big" ]] || { kill -TERM "$pid"; wait "$pid" || true; }
done

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open("$probe", "rb"); wrk.body = f:read("*all"); f:close()
LUA
echo
log "wrk: 8 connections for ${duration}s"
wrk -t2 -c8 -d"${duration}s" --timeout 60s --latency -s "$work/post.lua" "$url/v1/query" >"$work/wrk" 2>&1 || true
echo "8 concurrent clients (wrk -t2 -c8 -d${duration}s) on the $faces-face corpus:"
echo
echo '```'
grep -E 'Requests/sec|50%|99%|requests in|Non-2xx|Socket errors' "$work/wrk"
echo '```'

# RSS over --requests more queries, 8 at a time (curl through xargs: a fixed count, each answer's
# status kept).
rss0=$(rss_mib "$pid")
log "$requests more queries, 8 at a time"
export probe url
seq "$requests" | xargs -P 8 -I{} sh -c 'curl -s -o /dev/null -w "%{http_code}\n" -H "Content-Type: image/jpeg" --data-binary "@$probe" "$url/v1/query?name=probe.jpg"' >"$work/codes"
rss1=$(rss_mib "$pid")
echo
echo "RSS of the server: $rss0 MiB before, $rss1 MiB after $requests more queries (HTTP status: $(sort "$work/codes" | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2 }'))."
kill -TERM "$pid"; wait "$pid" || true
