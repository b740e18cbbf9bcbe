#!/usr/bin/env python3
"""Cluster ingest throughput with 1 and with 2 Ray nodes (docs/benchmarks.md, "Cluster ingest:
1 node against 2"). Each node is a raylet on this machine given one CPU (`start-node --num-cpus 1`),
so the 2-node run has two cores for its embed tasks and the 1-node run one: the figure is how
ingest spreads over the nodes' CPUs, not what a network between machines costs.

    .venv-ray/bin/python scripts/study/cluster_ingest_nodes.py --facesearch build/facesearch \
        --images-from lfw400.txt --batch 25 --work /tmp/cin

For each node count it writes a cluster file (2 shards x 1 replica: both on n1 with one node, one
on each node with two), starts the nodes, `up`, then times `facesearch-cluster ingest` of the
images (the real command, a fresh client), checks that every image was accounted for, and stops
the nodes it started (by pid, no other Ray process). Prints one JSON object per run: nodes, images,
wall seconds, images/s.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "cluster"))
from tests.local_ray import local_processes, stop_local_ray  # noqa: E402

CLI = [sys.executable, "-m", "facesearch_cluster.cli"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args):
    p = subprocess.run(CLI + list(args), cwd=os.path.join(REPO, "cluster"), capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"facesearch-cluster {' '.join(args[:3])} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p.stdout


def one_run(nodes, images, facesearch, batch, work):
    folder = os.path.join(work, f"{nodes}n")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    ray_tmp = os.path.join(folder, "r")
    names = [f"n{i + 1}" for i in range(nodes)]
    shards = [{"id": s, "buckets": [8 * s, 8 * s + 7],
               "replicas": [{"node": names[s % nodes], "corpus": os.path.join(folder, f"shard{s}")}]} for s in (0, 1)]
    cluster = os.path.join(folder, "cluster.json")
    with open(cluster, "w") as f:
        json.dump({"version": 1, "map_version": 1, "ray_address": f"127.0.0.1:{free_port()}", "facesearch": facesearch,
                   "buckets": 16, "nodes": {n: {} for n in names}, "shards": shards}, f)
    try:
        for i, node in enumerate(names):
            cli("start-node", "--cluster", cluster, "--node", node, "--num-cpus", "1", *(["--head"] if i == 0 else []),
                "--", "--temp-dir", ray_tmp, "--disable-usage-stats")
        cli("up", "--cluster", cluster)
        start = time.monotonic()
        out = json.loads(cli("ingest", "--cluster", cluster, "--batch", str(batch), *images))
        wall = time.monotonic() - start
    finally:
        if local_processes(ray_tmp):
            stop_local_ray(ray_tmp)
    assert out["records"] == out["inputs"] == len(images), out
    return {"nodes": nodes, "images": len(images), "wall_s": round(wall, 1), "images_per_s": round(len(images) / wall, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facesearch", required=True)
    parser.add_argument("--images-from", required=True, help="a file of image paths, one per line")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--work", required=True)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with open(args.images_from, encoding="utf-8") as f:
        images = [line.strip() for line in f if line.strip()]
    for n in args.nodes:
        print(json.dumps(one_run(n, images, os.path.abspath(args.facesearch), args.batch, args.work)), flush=True)


if __name__ == "__main__":
    main()
