#!/usr/bin/env python3
"""What rebuilding a shard replica from its sibling costs (docs/benchmarks.md, "Rebuilding a
replica from its sibling"): the sibling's snapshot (its locks, SQLite's backup API, the index
files, the copy's `audit verify`, its manifest of sizes and SHA-256s) and the replica's restore
(pulling every file in chunks and checking it, `verify`, `audit verify`, rename), timed apart,
without Ray (the actor class's own methods, in this process: both sides' memory is this
process's peak RSS), so the figures leave out the chunks' trips through Ray's object store.

    .venv-ray/bin/python scripts/study/cluster_rebuild_cost.py CORPUS WORK [FACESEARCH]

CORPUS is copied to WORK/a/c first (the study takes locks and writes audit records on its own
copy, never on CORPUS); the replica is rebuilt at WORK/b/c. WORK must not exist. Prints the
wall and CPU (this process and its children) of each step, the snapshot's size and the peak RSS.
"""

import os
import resource
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cluster"))
from facesearch_cluster import runtime  # noqa: E402


def cpu_s():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(name, step):
    wall, cpu = time.time(), cpu_s()
    result = step()
    print(f"{name}: wall {time.time() - wall:.1f} s, CPU {cpu_s() - cpu:.1f} s", flush=True)
    return result


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2
    corpus, work = sys.argv[1], os.path.abspath(sys.argv[2])
    binary = os.path.abspath(sys.argv[3] if len(sys.argv) == 4 else "build/facesearch")
    os.makedirs(os.path.join(work, "b"))
    source, target = os.path.join(work, "a", "c"), os.path.join(work, "b", "c")
    shutil.copytree(corpus, source)
    replica = runtime.ShardReplica.__ray_metadata__.modified_class  # the actor's class, run in-process
    sibling = replica([binary, "--corpus", source], 0, 0, source)
    rebuilt = replica([binary, "--corpus", target], 0, 1, target)
    # The replica pulls the chunks from the sibling's object here rather than through its actor.
    runtime._chunk_fetcher = lambda src, snapshot_id: lambda path, offset, size: src.snapshot_chunk(
        snapshot_id, path, offset, size)
    snap = timed("snapshot", sibling.snapshot)
    done = timed("restore", lambda: rebuilt.restore(sibling, snap))
    sibling.drop_snapshot(snap["id"])
    print(f"faces {snap['receipt']['faces']}, snapshot {sum(f['size'] for f in snap['files']) / 1e6:.0f} MB in "
          f"{len(snap['files'])} files, chunks of {runtime.snapshots.CHUNK_BYTES >> 20} MiB, receipts equal: "
          f"{done['receipt'] == snap['receipt']}, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
