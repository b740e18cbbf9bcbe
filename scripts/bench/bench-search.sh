#!/usr/bin/env bash
# scripts/bench/bench-search.sh — build and run the search benchmark (bench/bench_search.cpp, issue #3).
#
#   scripts/bench/bench-search.sh [--embeddings FILE.jsonl] [--sizes 1000000,10000000] [BENCH_ARGS...]
#
# FILE.jsonl is a `facesearch export` of a corpus of real faces (default /tmp/lfw-export.jsonl;
# make one with: build/facesearch --corpus C export > FILE.jsonl). The benchmark prints Markdown
# tables on stdout (docs/benchmarks.md, "## Search"). A quick run: --sizes 100000. Useful
# BENCH_ARGS: --kernels avx512vnni,avx2 (our scans with each named kernel set, side by side),
# --int8-rerank 20,100, --skip blas,flat,hnsw,ivfpq,ivfflat, --hnsw-max/--ivfpq-max/--ivfflat-max N
# (the largest size a slow FAISS build runs at); bench_search --help lists them.
# Builds into $FS_BENCH_BUILD_DIR (default build-bench, Release). Needs ~8 GB of free memory at
# 10M faces. OMP_WAIT_POLICY defaults to PASSIVE: on a shared machine FAISS's spinning OpenMP
# threads otherwise steal the cores they wait for.
set -euo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  exit 0
fi

build_dir="${FS_BENCH_BUILD_DIR:-build-bench}"
cd -- "$FS_REPO_ROOT"
log "step: configure and build bench_search in $build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)" --target bench_search >&2
log "step: run: $build_dir/bench_search $*"
log "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB"
OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" exec "$build_dir/bench_search" "$@"
