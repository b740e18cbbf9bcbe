#!/usr/bin/env python3
"""The peak memory of rebuilding a shard replica through Ray (docs/benchmarks.md, "Rebuilding a
replica from its sibling"): a 2-node Ray cluster on 127.0.0.1 (two raylets), 1 shard x 2 replicas,
CORPUS copied in as replica 0 on n1 and replica 1 (on n2) missing, so `up` rebuilds replica 1 from
replica 0 (the snapshot on n1, the restore on n2). It prints the peak RSS (VmHWM) of both
replicas' actor processes and of both raylets (which hold Ray's object store) once the actors are
started and again after the rebuild (VmHWM counts the pages of the object store's shared memory
a process touched, as well as its private memory; the actors' RssAnon and RssShmem after the
rebuild tell them apart), with the
facesearch_cluster package found at --package (the nodes' workers import it through PYTHONPATH):
run it once per version to compare.

    .venv-ray/bin/python scripts/study/cluster_rebuild_memory.py --package cluster --corpus CORPUS \
        --work /tmp/rm [--facesearch build/facesearch] [--port 6393]

WORK must not exist; CORPUS is copied, never written.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def status_mib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(field + ":"))


def peak_rss_mib(pid):
    return status_mib(pid, "VmHWM")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", required=True, help="the folder holding the facesearch_cluster package")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--facesearch", default=os.path.join(REPO, "build", "facesearch"))
    ap.add_argument("--port", type=int, default=6393)
    args = ap.parse_args()
    package, work = os.path.abspath(args.package), os.path.abspath(args.work)
    os.makedirs(os.path.join(work, "n2"))
    shutil.copytree(args.corpus, os.path.join(work, "n1", "s0"))
    cluster_file = os.path.join(work, "cluster.json")
    with open(cluster_file, "w") as f:
        json.dump({"version": 1, "map_version": 1, "ray_address": f"127.0.0.1:{args.port}",
                   "facesearch": os.path.abspath(args.facesearch), "buckets": 1, "nodes": {"n1": {}, "n2": {}},
                   "shards": [{"id": 0, "buckets": [0, 0], "replicas": [
                       {"node": n, "corpus": os.path.join(work, n, "s0")} for n in ("n1", "n2")]}]}, f)
    ray_tmp = os.path.join(work, "r")
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    env = dict(os.environ, PYTHONPATH=package)
    sys.path.insert(0, os.path.join(REPO, "cluster"))
    from tests.local_ray import local_processes, stop_local_ray
    try:
        for node in ("n1", "n2"):
            where = ["--head", "--port", str(args.port), "--node-ip-address", "127.0.0.1", "--include-dashboard",
                     "false"] if node == "n1" else ["--address", f"127.0.0.1:{args.port}"]
            subprocess.run([ray_bin, "start", *where, "--num-cpus", "1", "--temp-dir", ray_tmp, "--disable-usage-stats",
                            "--resources", json.dumps({f"facesearch_node_{node}": 1})],
                           env=env, check=True, capture_output=True)
        sys.path.insert(0, package)
        from facesearch_cluster import clusterfile, runtime
        c = clusterfile.load(cluster_file)
        runtime.connect(c)
        import ray
        actors = {name: ray.get(h.pid.remote()) for name, h in runtime._started(c).items()}  # no rebuild yet
        raylets = sorted(p for p in local_processes(ray_tmp)
                         if b"raylet/raylet" in open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")[0])

        def peaks():
            return {"actors": {name: peak_rss_mib(pid) for name, pid in actors.items()},
                    "raylets": [peak_rss_mib(p) for p in raylets]}
        before = peaks()
        started = time.time()
        states = runtime.up(c)  # the same actors: up finds them
        wall = time.time() - started
        print(json.dumps({"package": package, "up_wall_s": round(wall, 1),
                          "rebuilt_from": states["shard0-r1"]["rebuilt_from"], "faces": states["shard0-r1"]["faces"],
                          "same_actors": {n: s["pid"] for n, s in states.items()} == actors,
                          "peak_rss_mib_before_rebuild": before, "peak_rss_mib_after": peaks(),
                          # now, after the rebuild: private memory, and the object store's shared pages mapped
                          "actors_rss_anon_shmem_mib_now": {name: [status_mib(pid, "RssAnon"), status_mib(pid, "RssShmem")]
                                                            for name, pid in actors.items()}}))
    finally:
        stop_local_ray(ray_tmp)


if __name__ == "__main__":
    main()
