"""facesearch-cluster: facesearch on sharded corpora on a Ray cluster (docs/scale.md).

Not `facesearch cluster`, which groups a corpus's faces into identities.
"""

import argparse
import json
import os
import subprocess
import sys

from . import clusterfile

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff"}

EPILOG = """examples:
  facesearch-cluster check cluster.json
  facesearch-cluster start-node --cluster cluster.json --node n1 --head   # on n1
  facesearch-cluster start-node --cluster cluster.json --node n2          # on n2
  facesearch-cluster up --cluster cluster.json
  facesearch-cluster ingest --cluster cluster.json /mnt/archive/
  facesearch-cluster query --cluster cluster.json probe.jpg --format json
  facesearch-cluster forget --cluster cluster.json --image /mnt/archive/IMG_2210.jpg
exit status: 0 done (query: a match), 1 query: no match / forget: nothing erased, 2 error
(a shard that does not answer, unless --allow-partial; an erasure not confirmed by every replica)."""


def image_files(paths):
    """Files named, and image files under folders (sorted, like `facesearch index`)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out += [os.path.join(root, f) for f in sorted(files)
                        if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
        else:
            out.append(p)
    return [os.path.abspath(p) for p in out]


def print_table(merged):
    print(f"probe {merged['probe']}: {sum(len(r['matches']) for r in merged.get('results', []))} match(es) within "
          f"distance {merged['threshold']:.4f} among {merged['corpus_faces']} faces in "
          f"{len(merged['shards_answered'])} shard(s)")
    if merged["partial"]:
        print(f"PARTIAL: shard(s) {merged['shards_missing']} did not answer")
    print(f"{'RANK':<6}{'DISTANCE':<10}{'FMR':<10}{'SHARD':<7}IMAGE")
    for r in merged.get("results", []):
        for m in r["matches"]:
            print(f"{m['rank']:<6}{m['distance']:<10.4f}{m['fmr']:<10.2g}{m['shard']:<7}{m['image']}")


def cmd_check(args):
    c = clusterfile.load(args.cluster_file)
    print(f"{c.path}: map version {c.map_version}, {len(c.shards)} shards, {len(c.replicas())} replicas on "
          f"{len(c.nodes)} nodes, {c.buckets} buckets")
    return EXIT_MATCH


def cmd_start_node(args, c):
    if args.node not in c.nodes:
        raise clusterfile.ClusterFileError(f"node {args.node} is not in {c.path}")
    env = dict(os.environ)
    if c.auth_token_file:
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=c.auth_token_file)
    host, port = c.ray_address.rsplit(":", 1)
    argv = [os.path.join(os.path.dirname(sys.executable), "ray"), "start",
            "--resources", json.dumps({c.node_resource(args.node): 1})]
    argv += ["--head", "--port", port, "--node-ip-address", host, "--include-dashboard", "false"] if args.head \
        else ["--address", c.ray_address]
    if args.num_cpus:
        argv += ["--num-cpus", str(args.num_cpus)]
    return subprocess.run(argv + list(args.ray_args), env=env, check=False).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(prog="facesearch-cluster", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a cluster file (no Ray needed)")
    p.add_argument("cluster_file")

    def with_cluster(name, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--cluster", required=True, help="the cluster description file (JSON)")
        return p

    p = with_cluster("start-node", "run `ray start` for one node of the cluster file (with its pinning resource)")
    p.add_argument("--node", required=True)
    p.add_argument("--head", action="store_true", help="this node runs Ray's head (at ray_address)")
    p.add_argument("--num-cpus", type=int, default=0)
    p.add_argument("ray_args", nargs="*", help="more `ray start` options, after --")
    with_cluster("up", "start (or find) the actor of every shard replica; print their face counts")
    with_cluster("down", "stop every replica's actor (the corpora stay)")
    with_cluster("info", "face count of every replica")
    p = with_cluster("ingest", "embed images as Ray tasks and import them into every replica of their shard")
    p.add_argument("paths", nargs="+")
    p.add_argument("--batch", type=int, default=32, help="images per embed task (default 32)")
    p = with_cluster("query", "search every shard with one photo; merge by exact distance")
    p.add_argument("photo")
    p.add_argument("-k", "--top-k", type=int, default=10)
    g = p.add_mutually_exclusive_group()
    g.add_argument("-t", "--threshold", type=float)
    g.add_argument("--max-fmr", type=float)
    p.add_argument("--allow-partial", action="store_true",
                   help="answer from the shards that answer, naming the missing ones (default: exit 2)")
    p.add_argument("-f", "--format", choices=["table", "json"], default="table")
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for one replica")
    p = with_cluster("forget", "erase on every replica of every shard; print a receipt per replica")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--image", action="append", help="image file to erase (by content, else by path)")
    g.add_argument("--like", help="erase every face within --threshold of this photo's largest face")
    p.add_argument("-t", "--threshold", type=float)
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            return cmd_check(args)
        c = clusterfile.load(args.cluster)
        if args.command == "start-node":
            return cmd_start_node(args, c)
        from . import runtime  # Ray is imported only by the commands that use it
        try:
            runtime.connect(c)
            return run(args, c, runtime)
        except runtime.ClusterError as e:
            print(f"facesearch-cluster: error: {e}", file=sys.stderr)
            return EXIT_ERROR
    except clusterfile.ClusterFileError as e:
        print(f"facesearch-cluster: error: {e}", file=sys.stderr)
        return EXIT_ERROR


def run(args, c, runtime):
    if args.command in ("up", "info"):
        counts = runtime.up(c)
        print(json.dumps({"map_version": c.map_version, "replicas": counts}))
        return EXIT_MATCH
    if args.command == "down":
        runtime.down(c)
        return EXIT_MATCH
    if args.command == "ingest":
        result = runtime.ingest(c, image_files(args.paths), max(1, args.batch))
        print(json.dumps(result))
        return EXIT_MATCH if result["records"] == result["inputs"] else EXIT_ERROR
    if args.command == "query":
        threshold = ["--threshold", str(args.threshold)] if args.threshold is not None else \
            ["--max-fmr", str(args.max_fmr)] if args.max_fmr is not None else []
        merged = runtime.query(c, args.photo, args.top_k, threshold, args.allow_partial, args.timeout)
        if args.format == "json":
            print(json.dumps(merged))
        else:
            print_table(merged)
        if merged["partial"]:
            print(f"facesearch-cluster: warning: partial answer: shard(s) {merged['shards_missing']} missing",
                  file=sys.stderr)
        if "error" in merged:
            print(f"facesearch-cluster: error: {merged['error']}", file=sys.stderr)
            return EXIT_ERROR
        from .merge import any_match
        return EXIT_MATCH if any_match(merged) else EXIT_NO_MATCH
    if args.command == "forget":
        forget_args = [a for img in (args.image or []) for a in ("--image", os.path.abspath(img))]
        if args.like:
            forget_args += ["--like", args.like] + (["--threshold", str(args.threshold)] if args.threshold else [])
        result = runtime.forget(c, forget_args)
        print(json.dumps(result))
        if not result["complete"]:
            failed = "; ".join(f"{f['replica']}: {f['error']}" for f in result["failed"])
            print(f"facesearch-cluster: error: the erasure is NOT complete: failed replicas: {failed or 'none'}; "
                  f"shards whose replicas disagree: {result['shards_disagreeing']}; fix them and run the same "
                  "forget again (it is idempotent)", file=sys.stderr)
            return EXIT_ERROR
        erased = any(r["erased"].get("faces_erased", 0) or r["erased"].get("images_erased", 0)
                     for r in result["receipts"])
        return EXIT_MATCH if erased else EXIT_NO_MATCH
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
