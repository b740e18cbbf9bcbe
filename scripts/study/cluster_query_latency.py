#!/usr/bin/env python3
"""Cluster query latency for 1, 4 and 8 shards of one corpus (docs/benchmarks.md, "Cluster queries
on resident servers"), for the facesearch_cluster package found at --package: run it once with
the package of a commit whose actors ran `facesearch query` per request and once with the current
one (resident `facesearch serve` per replica) to compare.

    .venv-ray/bin/python scripts/study/cluster_query_latency.py --package cluster \
        --facesearch build/facesearch --embedded lfw400.jsonl --probes-from lfw400.txt --work /tmp/cq

The corpus is an embed file (`facesearch embed`), split by the cluster's content routing and
imported into each shard (1 replica each, one Ray node on 127.0.0.1). The probes are embedded once
beforehand, so the figures are the search phase of a query (what the shards and the merge cost,
not the probe's embedding, which is the same either way and is timed on its own). Prints one JSON
object: per shard count, the median wall time of a query in a long-lived client, the client's CPU
and the actors' CPU (their own, their children's and their resident servers') per query.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def cpu_of_tree(pids):
    """CPU seconds (user+sys) of processes, their waited-for children and their live descendants."""
    stats = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stats[int(pid)] = _stat(pid)
        except (OSError, IndexError, ValueError):
            pass
    tree, grown = set(pids), True
    while grown:
        children = {p for p, st in stats.items() if st[0] in tree} - tree
        grown = bool(children)
        tree |= children
    return sum(stats[p][1] + (stats[p][2] if p in pids else 0) for p in tree if p in stats)


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def split_embed_file(path, cluster):
    """{shard: embed file text} by the cluster's routing (as ingest's embed_batch does)."""
    import hashlib
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, records = lines[0], lines[1:-1]
    by_shard = {}
    for line in records:
        r = json.loads(line)
        sha = r.get("sha256") or hashlib.sha256(r["path"].encode()).hexdigest()
        by_shard.setdefault(cluster.shard_of(sha), []).append(line)
    return {s: "\n".join([header] + ls + [json.dumps({"facesearch_embed_end": len(ls)})]) + "\n"
            for s, ls in by_shard.items()}


def make_cluster(work, shards, port, facesearch, name):
    from facesearch_cluster import clusterfile
    buckets = 8 * shards
    doc = {"version": 1, "name": name, "map_version": 1, "ray_address": f"127.0.0.1:{port}",
           "facesearch": facesearch, "buckets": buckets, "nodes": {"n1": {}},
           "shards": [{"id": s, "buckets": [8 * s, 8 * s + 7],
                       "replicas": [{"node": "n1", "corpus": os.path.join(work, f"s{shards}", f"shard{s}")}]}
                      for s in range(shards)]}
    path = os.path.join(work, f"{name}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return clusterfile.load(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", required=True, help="the folder holding facesearch_cluster/")
    ap.add_argument("--facesearch", required=True)
    ap.add_argument("--embedded", required=True, help="the corpus as an embed file")
    ap.add_argument("--probes-from", required=True, help="a list of probe photos, one a line")
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--shards", default="1,4,8")
    ap.add_argument("--work", required=True)
    ap.add_argument("--port", type=int, default=6391)
    ap.add_argument("--label", default="run")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.package))
    import ray
    from facesearch_cluster import runtime
    facesearch = os.path.abspath(args.facesearch)

    os.makedirs(args.work, exist_ok=True)
    with open(args.probes_from) as f:
        probes = [line.strip() for line in f if line.strip()][:args.probes]
    cached = {p: runtime.embed_probe(make_cluster(args.work, 1, args.port, facesearch, "probe"), p) for p in probes}
    runtime.embed_probe = lambda cluster, photo: cached[photo]

    ray_tmp = os.path.join(args.work, "r")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--port", str(args.port),
                    "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--num-cpus", "2",
                    "--resources", json.dumps({"facesearch_node_n1": 1}), "--temp-dir", ray_tmp,
                    "--disable-usage-stats"], check=True, capture_output=True)
    out = {"label": args.label, "package": os.path.abspath(args.package), "probes": len(probes), "shards": {}}
    try:
        for shards in map(int, args.shards.split(",")):
            c = make_cluster(args.work, shards, args.port, facesearch, f"{args.label}{shards}")
            if not os.path.isdir(os.path.join(args.work, f"s{shards}")):
                for s, text in split_embed_file(args.embedded, c).items():
                    corpus = c.shards[s].replicas[0].corpus
                    subprocess.run([facesearch, "--corpus", corpus, "import", "-"], input=text, text=True,
                                   check=True, capture_output=True)
            runtime.connect(c)
            pids = [r["pid"] for r in runtime.up(c).values()]
            runtime.query(c, probes[0], 10, {}, False, 120)  # warm: starts what the actors start lazily
            walls, client, actors = [], self_cpu(), cpu_of_tree(pids)
            for p in probes:
                t = time.perf_counter()
                merged = runtime.query(c, p, 10, {}, False, 120)
                walls.append(time.perf_counter() - t)
            n = len(probes)
            out["shards"][shards] = {
                "faces": merged["corpus_faces"], "wall_median_s": round(statistics.median(walls), 4),
                "wall_p90_s": round(sorted(walls)[int(0.9 * (n - 1))], 4),
                "client_cpu_per_query_s": round((self_cpu() - client) / n, 4),
                "actors_cpu_per_query_s": round((cpu_of_tree(pids) - actors) / n, 4)}
            runtime.down(c)
            print(json.dumps({shards: out["shards"][shards]}), file=sys.stderr)
    finally:
        ray.shutdown()
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cluster"))
        from tests.local_ray import stop_local_ray
        stop_local_ray(ray_tmp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
