#!/usr/bin/env bash
# scripts/bench/bench-serve.sh — facesearch serve against a fresh process per query (issue #18).
#
#   scripts/bench/bench-serve.sh [--faces 100000] [--kind int8] [--dir /tmp/fs-scale] [--queries 20]
#                                [--duration 30] [--requests 10000]
#
# Run scripts/bench/bench-scale.sh with the same --faces, --kind and --dir first: it builds the
# seed corpus (300 LFW images), the grown corpus and times the fresh-process commands. This script
# starts `facesearch serve` (127.0.0.1 only, --allow-anonymous, no rate limit) on each corpus and
# measures: start-up (process start to "listening"), --queries sequential queries with curl
# (image upload included; wall p50/p90, and the server's CPU per query from /proc), the same
# query through the CLI (`query --server`, a fresh client process), wrk with 8 connections on 2
# threads for --duration seconds (queries/s, p50/p99, errors), and the server's RSS before and after
# --requests further queries (8 curl clients at a time). Prints Markdown on stdout; progress on stderr.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

faces=100000
kind=int8
dir=/tmp/fs-scale
queries=20
duration=30
requests=10000
while (($#)); do
  case "$1" in
    --faces) faces="$2"; shift 2 ;;
    --kind) kind="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --queries) queries="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    -h | --help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
done
command -v wrk >/dev/null || die "wrk is needed (scripts/setup-deps.sh installs it)"
bin="$FS_REPO_ROOT/${FS_BENCH_BUILD_DIR:-build-bench}/facesearch"
seed="$dir/seed"
big="$dir/corpus-$faces-$kind"
[[ -f "$big.complete" && -x "$bin" ]] || die "no corpus at $big: run scripts/bench/bench-scale.sh --faces $faces --kind $kind --dir $dir first"
probe="$(tail -n 6 "$seed/list" | head -n 1)"
work="$dir/serve-bench" && rm -rf "$work" && mkdir -p "$work"

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
