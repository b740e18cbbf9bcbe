#!/usr/bin/env bash
# scripts/study/lfw_cluster_update.sh — is `cluster --update` as good as clustering again?
#
#   scripts/study/lfw_cluster_update.sh LFW_DIR N WORK_DIR [FACESEARCH]
#
# Takes the first N LFW images in path order (Name/Name_NNNN.jpg), holds out a seeded random 10%,
# indexes the other 90% into WORK_DIR/corpus and saves a clustering (`cluster --save`), indexes the
# held-out 10% and places them with `cluster --update`, then clusters the whole corpus again. Prints
# the pairwise precision, recall and F1 of both (scripts/study/cluster_metrics.py) and the CPU
# seconds (user + sys, /usr/bin/time) of the save, the update and the full re-run. Run it under
# `nice -n 5` on a shared machine.
set -euo pipefail
lfw=$1 n=$2 work=$3 fs=${4:-build/facesearch}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work/base" "$work/added"
python3 - "$lfw/images" "$n" "$work" <<'PY'
import os, random, sys
root, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = sorted(os.path.join(d, f) for d in os.listdir(root) for f in os.listdir(os.path.join(root, d)))[:n]
held = set(random.Random(21).sample(images, len(images) // 10))
for rel in images:
    dst = os.path.join(work, "added" if rel in held else "base", rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.symlink(os.path.join(root, rel), dst)
print(f"{len(images)} images: {len(images) - len(held)} first, {len(held)} added later", file=sys.stderr)
PY
cpu() {  # cpu LABEL CMD...: runs CMD, prints LABEL and its user+sys CPU seconds on stderr
  local label=$1; shift
  /usr/bin/time -f "%U %S" -o "$work/time" "$@"
  awk -v l="$label" '{printf "%s: %.2f s CPU\n", l, $1 + $2}' "$work/time" >&2
}
F=("$fs" -q --corpus "$work/corpus")
cpu "index 90%" "${F[@]}" index "$work/base" >/dev/null
cpu "cluster --save (90%)" "${F[@]}" cluster --save --min-size 1 -f jsonl >/dev/null
cpu "index 10%" "${F[@]}" index "$work/added" >/dev/null
cpu "cluster --update (+10%)" "${F[@]}" cluster --update -f jsonl >/dev/null || true
"${F[@]}" cluster list --min-size 1 -f jsonl >"$work/updated.jsonl"
cpu "cluster (100%, full re-run)" "${F[@]}" cluster --min-size 1 -f jsonl >"$work/full.jsonl"
cpu "cluster --save (100%, full re-run)" "${F[@]}" cluster --save --min-size 1 -f jsonl >/dev/null
echo "== saved 90% + --update"; "$here/cluster_metrics.py" <"$work/updated.jsonl"
echo "== full re-run over 100%"; "$here/cluster_metrics.py" <"$work/full.jsonl"
