"""facesearch-cluster: facesearch on sharded corpora on a Ray cluster (docs/scale.md).

Not `facesearch cluster`, which groups a corpus's faces into identities.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import uuid

from . import clusterfile, ledger

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
  facesearch-cluster optout --cluster cluster.json request.jpg --reason 'ticket 881'
  facesearch-cluster optout-list --cluster cluster.json   # every opt-out once, which replicas hold it
  facesearch-cluster optout-remove --cluster cluster.json 7f3a...   # by its request_id, through the ledger
  facesearch-cluster ledger --cluster cluster.json     # every erasure: done, or which replicas lag
  facesearch-cluster rebuild-replica --cluster cluster.json --shard 2 --replica 1   # copy its sibling
  facesearch-cluster move --cluster cluster.json --to cluster-v2.json   # buckets to another (new) shard
  facesearch-cluster verify --cluster cluster.json     # every replica verified; each shard's replicas agree
  facesearch-cluster audit --cluster cluster.json --request-id 7f3a...   # its records on every replica
  facesearch-cluster audit --cluster cluster.json verify
  facesearch-cluster compare --cluster cluster.json id-card.jpg still.png   # with the cluster's model
exit status: 0 done (query: a match), 1 query: no match / forget, optout: nothing erased /
optout-list: no opt-outs, 2 error (a shard that does not answer, unless --allow-partial; an
erasure not confirmed by every replica: those replicas are quarantined until `facesearch-cluster
up` has them replay the ledger; optout-list: a replica lacks an opt-out it should hold, or holds a
stray)."""


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


def print_table(merged, out):
    print(f"probe {merged['probe']}: {sum(len(r['matches']) for r in merged.get('results', []))} match(es) within "
          f"distance {merged['threshold']:.4f} among {merged['corpus_faces']} faces in "
          f"{len(merged['shards_answered'])} shard(s)", file=out)
    if merged["partial"]:
        print(f"PARTIAL: shard(s) {merged['shards_missing']} did not answer", file=out)
    print(f"{'RANK':<6}{'DISTANCE':<10}{'FMR':<10}{'SHARD':<7}IMAGE", file=out)
    for r in merged.get("results", []):
        for m in r["matches"]:
            print(f"{m['rank']:<6}{m['distance']:<10.4f}{m['fmr']:<10.2g}{m['shard']:<7}{m['image']}", file=out)


def cmd_check(args):
    c = clusterfile.load(args.cluster_file)
    print(f"{c.path}: map version {c.map_version}, {len(c.shards)} shards, {len(c.replicas())} replicas on "
          f"{len(c.nodes)} nodes, {c.buckets} buckets")
    if not c.auth_token_file:
        warn("no auth_token_file: anyone who can reach ray_address can run code as the nodes' user and read "
             "every replica; name a file holding a secret token (`openssl rand -hex 32 > token`, mode 0600, "
             "on every node and client)")
    return EXIT_MATCH


def cmd_start_node(args, c):
    if args.node not in c.nodes:
        raise clusterfile.ClusterFileError(f"node {args.node} is not in {c.path}")
    env = dict(os.environ, **clusterfile.auth_environment(c))
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
    p = with_cluster("up", "start (or find) every replica's actor; have it replay the ledger entries it missed; "
                           "print faces, applied ledger seq and quarantine")
    p.add_argument("--wait", type=float, default=120,
                   help="seconds to wait for the replicas' actors (a lost node's actors restart late; default 120), "
                        "e.g. up --wait 20 to learn quickly which nodes are down")
    with_cluster("down", "stop every replica's actor (the corpora stay)")
    p = with_cluster("rebuild-replica", "replace a replica's corpus with a checked copy of a sibling at the ledger's "
                                        "head (`up` does it by itself for a replica that cannot replay)")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--replica", type=int, required=True, help="its index in the shard's replicas (0, 1, ...)")
    with_cluster("info", "the same as up: faces, ledger seq and quarantine of every replica")
    with_cluster("ledger", "check the erasure ledger's chain; say which erasures every replica confirmed")
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
    p.add_argument("--case", help="case reference, in every replica's audit record")
    p.add_argument("--purpose", help="why you search, in every replica's audit record")
    p.add_argument("--request-id", help="this query's id in every replica's audit record (default: a new one)")
    p = with_cluster("forget", "write an erasure to the ledger, apply it on every replica, print their receipts")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--image", action="append", help="image file to erase (by content, else by path)")
    g.add_argument("--like", help="erase every face within --threshold of this photo's largest face")
    p.add_argument("-t", "--threshold", type=float)
    p.add_argument("--request-id", help="the erasure's id in the ledger and every audit record (default: a new one)")
    p = with_cluster("optout", "write an opt-out to the ledger and add it on every replica (erases matching faces)")
    p.add_argument("photo", help="a photo of the person; its largest face is the one opted out")
    p.add_argument("-t", "--threshold", type=float)
    p.add_argument("--reason", help="the request and its date (no biometric data)")
    p.add_argument("--request-id", help="the opt-out's id in the ledger and every audit record (default: a new one)")
    p = with_cluster("move", "give buckets to another (possibly new) shard: the next map version, in a copy of "
                             "the cluster file; copies and checks the content, switches the file, forgets it on "
                             "the old shard (run it again to finish an interrupted move)")
    p.add_argument("--to", required=True, metavar="NEW_CLUSTER_FILE",
                   help="the cluster file with map_version + 1 and the buckets given to their new shard")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = """example: shard 1 gives buckets 3072-4095 to a new shard 2 on a new node n3
  cp cluster.json cluster-v2.json     # then edit cluster-v2.json: "map_version": 2, "nodes" + "n3",
                                      # shard 1 "buckets": [2048, 3071], and appended to "shards":
                                      # {"id": 2, "buckets": [3072, 4095], "replicas": [{"node": "n3", ...}, ...]}
  facesearch-cluster start-node --cluster cluster-v2.json --node n3   # on n3
  facesearch-cluster move --cluster cluster.json --to cluster-v2.json
cluster.json is replaced by the new map once the copy is checked; run the same command again to
finish a move that was interrupted."""
    add_checking_commands(with_cluster)
    add_optout_commands(with_cluster)
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            return cmd_check(args)
        c = clusterfile.load(args.cluster)
        if args.command == "start-node":
            return cmd_start_node(args, c)
        if args.command == "ledger":
            return cmd_ledger(c)
        clusterfile.use_auth(c)  # before Ray is imported: it reads its auth settings then
        from . import runtime  # Ray is imported only by the commands that use it
        # Ray's driver prints cluster events to sys.stdout from a thread of its own ("node ... has
        # been marked dead" after a node's loss): they go to stderr, and stdout holds our output alone.
        out, sys.stdout = sys.stdout, sys.stderr
        try:
            runtime.connect(c)
            return run(args, c, runtime, out)
        except runtime.ClusterError as e:
            print(f"facesearch-cluster: error: {e}", file=sys.stderr)
            return EXIT_ERROR
    except (clusterfile.ClusterFileError, ledger.LedgerError) as e:
        print(f"facesearch-cluster: error: {e}", file=sys.stderr)
        return EXIT_ERROR


def warn(message):
    print(f"facesearch-cluster: warning: {message}", file=sys.stderr)


def cmd_ledger(c):
    entries, note = ledger.Ledger(ledger.ledger_path(c.path)).check_head()  # checks the chain and the head file
    if note:
        warn(note)
    rows = ledger.status(c, entries, ledger.read_receipts(ledger.receipts_path(c.path)))
    print(json.dumps({"ledger": ledger.ledger_path(c.path), "entries": len(entries), "chain": "intact",
                      "head": entries[-1]["hash"] if entries else ledger.GENESIS, "status": rows}))
    return EXIT_MATCH if all(r["done"] for r in rows) else EXIT_ERROR


def photo_selector(photo, threshold):
    """A --like or opt-out selector: the photo's path and its SHA-256 (a replica replaying it later
    checks that it is still the same photo), never its embedding (the ledger cannot be scrubbed)."""
    path = os.path.abspath(photo)
    try:
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise clusterfile.ClusterFileError(f"cannot read {photo}: {e.strerror}") from None
    return {"photo": path, "photo_sha256": sha, "threshold": threshold}


def report_erasure(result, out):
    print(json.dumps(result), file=out)
    if not result["complete"]:
        failed = "; ".join(f"{f['replica']}: {f['error']}" for f in result["failed"])
        print(f"facesearch-cluster: error: erasure {result['entry']['seq']} (request {result['entry']['request_id']}) "
              f"is NOT complete: quarantined replicas {result['quarantined']} ({failed or 'no answer'}); shards whose "
              f"replicas disagree: {result['shards_disagreeing']}. The quarantined answer no query until "
              "`facesearch-cluster up` has them replay the ledger", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_MATCH if any(result["erased"].values()) else EXIT_NO_MATCH


def cmd_move(args, c, runtime, out):
    """`move --to NEW`: prints {"move", "copied", "imported", "forget"} (runtime.move); exit 0 when
    every replica confirmed the forget on the old shard, 2 otherwise (those are quarantined until `up`)."""
    new = clusterfile.load(args.to)
    with open(args.to, encoding="utf-8") as f:
        result = runtime.move(c, new, f.read(), warn)
    print(json.dumps(result), file=out)
    forget = result["forget"]
    if forget is None:
        warn(f"this move was finished by an earlier run (ledger entry {result['move']['seq']}); "
             "`facesearch-cluster ledger` says whether every replica confirmed its forget")
    elif not forget["complete"]:
        print(f"facesearch-cluster: error: the buckets moved and the map switched, but their forget on shard "
              f"{result['move']['selector']['from_shard']} (ledger entry {forget['entry']['seq']}) is NOT complete: "
              f"quarantined replicas {forget['quarantined']}; `facesearch-cluster up` has them replay it", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_MATCH


def run(args, c, runtime, out):
    if args.command in CHECKING_COMMANDS:
        return run_checking(args, c, runtime, out)
    if args.command in ("up", "info"):
        replicas = runtime.up(c, warn, getattr(args, "wait", runtime.START_WAIT_S))
        print(json.dumps({"map_version": c.map_version, "replicas": replicas}), file=out)
        return EXIT_ERROR if any(r["quarantined"] for r in replicas.values()) else EXIT_MATCH
    if args.command == "rebuild-replica":
        print(json.dumps(runtime.rebuild(c, args.shard, args.replica)), file=out)
        return EXIT_MATCH
    if args.command == "down":
        runtime.down(c)
        return EXIT_MATCH
    if args.command == "ingest":
        result = runtime.ingest(c, image_files(args.paths), max(1, args.batch))
        print(json.dumps(result), file=out)
        return EXIT_MATCH if result["records"] == result["inputs"] else EXIT_ERROR
    if args.command == "query":
        threshold = {"threshold": args.threshold} if args.threshold is not None else \
            {"max_fmr": args.max_fmr} if args.max_fmr is not None else {}
        audit = {k: v for k, v in (("case", args.case), ("purpose", args.purpose),
                                   ("request_id", args.request_id or uuid.uuid4().hex)) if v}
        merged = runtime.query(c, args.photo, args.top_k, threshold, args.allow_partial, args.timeout, audit, warn)
        if args.format == "json":
            print(json.dumps(merged), file=out)
        else:
            print_table(merged, out)
        if merged["partial"]:
            warn(f"partial answer: shard(s) {merged['shards_missing']} missing")
        if "error" in merged:
            print(f"facesearch-cluster: error: {merged['error']}", file=sys.stderr)
            return EXIT_ERROR
        from .merge import any_match
        return EXIT_MATCH if any_match(merged) else EXIT_NO_MATCH
    if args.command == "forget":
        if args.like:
            selector = dict(photo_selector(args.like, args.threshold), like=True)
        else:
            selector = {"images": [os.path.abspath(img) for img in args.image]}
        return report_erasure(runtime.erase(c, "forget", selector, args.request_id), out)
    if args.command == "optout":
        selector = dict(photo_selector(args.photo, args.threshold), reason=args.reason or "")
        return report_erasure(runtime.erase(c, "optout", selector, args.request_id), out)
    if args.command == "move":
        return cmd_move(args, c, runtime, out)
    if args.command in OPTOUT_COMMANDS:
        return run_optout(args, c, runtime, out)
    raise AssertionError(args.command)


# ---- opt-outs across the cluster: optout-list, optout-remove (runtime.optout_*; optouts.py) ------

OPTOUT_COMMANDS = ("optout-list", "optout-remove")


def add_optout_commands(with_cluster):
    p = with_cluster("optout-list", "every replica's opt-outs, once each, with the replicas that hold it and those "
                                    "that should and do not (exit 2 when one lacks one or holds a stray)")
    p.add_argument("--json", action="store_true", help="one JSON object (docs/output.md)")
    p = with_cluster("optout-remove", "remove an opt-out on every replica through the ledger, by the request id "
                                      "that added it (its request_id in optout-list); done only when every "
                                      "replica confirmed")
    p.add_argument("optout_request_id", metavar="REQUEST_ID", help="the request id the opt-out was added under")
    p.add_argument("--request-id", metavar="ID",
                   help="the removal's id in the ledger and every audit record (default: a new one)")


def run_optout(args, c, runtime, out):
    if args.command == "optout-remove":
        return report_erasure(runtime.optout_remove(c, args.optout_request_id, args.request_id, warn), out)
    from . import optouts
    merged = runtime.optout_list(c, warn=warn)
    print(json.dumps(merged) if args.json else "\n".join(optouts.table_lines(merged)), file=out)
    if merged["failed"]:
        print(f"facesearch-cluster: error: replica(s) {sorted(merged['failed'])} did not answer, their opt-outs are "
              f"missing ({'; '.join(merged['failed'].values())}): `facesearch-cluster up`, then ask again", file=sys.stderr)
        return EXIT_ERROR
    if not merged["consistent"]:
        print("facesearch-cluster: error: replicas do not hold the opt-outs the ledger entries they applied say they "
              "hold (MISSING / UNEXPECTED above): rebuild one that lost an opt-out from its sibling "
              "(`facesearch-cluster rebuild-replica`); remove a stray added on one replica alone there "
              "(`facesearch --corpus REPLICA optout remove ID`)", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_MATCH if merged["optouts"] else EXIT_NO_MATCH


# ---- checking a cluster: verify, audit, compare (runtime.verify, .audit, .compare; survey.py) ----

CHECKING_COMMANDS = ("verify", "audit", "compare")


def add_checking_commands(with_cluster):
    p = with_cluster("verify", "run `facesearch verify` and `audit verify` on every replica; say whether each shard's "
                               "replicas hold the same faces at the ledger's head (exit 0 healthy, 2 a problem)")
    p.add_argument("--full", action="store_true", help="compare every face's index vector (verify --full)")
    p.add_argument("-f", "--format", choices=["text", "json"], default="text")
    p = with_cluster("audit", "every replica's audit records, merged (list), or every replica's audit chain (verify)")
    p.add_argument("action", nargs="?", choices=["list", "verify"], default="list")
    p.add_argument("--request-id", help="only the records of this cluster request (a query, erasure or comparison)")
    for flag in ("--since", "--until", "--case", "--user"):
        p.add_argument(flag, help=f"as `facesearch audit {flag}`")
    p.add_argument("-f", "--format", choices=["table", "jsonl"], default="table")
    p.add_argument("--json", action="store_true", help="verify: one JSON object")
    p = with_cluster("compare", "tell whether two photos show the same person, on a replica: with the cluster's "
                                "model and embedding mode, recorded in that replica's audit log")
    p.add_argument("a")
    p.add_argument("b")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-t", "--threshold", type=float)
    g.add_argument("--max-fmr", type=float)
    p.add_argument("--face-a", type=int)
    p.add_argument("--face-b", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--case", help="case reference, in the audit record")
    p.add_argument("--purpose", help="why you compare, in the audit record")
    p.add_argument("--request-id", help="the comparison's id in the audit record (default: a new one)")


def run_checking(args, c, runtime, out):
    if args.command == "compare":
        return run_compare(args, c, runtime, out)
    if args.command == "verify" or args.action == "verify":
        from . import survey
        chains_only = args.command == "audit"
        result = runtime.verify(c, full=getattr(args, "full", False), chains_only=chains_only, warn=warn)
        if args.command == "verify" and args.format == "json" or chains_only and args.json:
            print(json.dumps(result), file=out)
        else:
            print("\n".join(survey.verdict_lines(result, chains_only)), file=out)
        return EXIT_MATCH if result["healthy"] else EXIT_ERROR
    filters = [x for flag in ("since", "until", "case", "user") if getattr(args, flag)
               for x in (f"--{flag}", getattr(args, flag))]
    records, failed = runtime.audit(c, filters, args.request_id)
    if args.format == "jsonl":
        for r in records:
            print(json.dumps(r), file=out)
    else:
        print(f"{'AT':<22}{'REPLICA':<12}{'SEQ':<6}{'USER':<12}{'ACTION':<9}{'CASE':<12}REQUEST", file=out)
        for r in records:
            print(f"{r['at']:<22}{r['replica']:<12}{r['seq']:<6}{r['user']:<12}{r['action']:<9}{r['case'] or '-':<12}"
                  f"{(r.get('params') or {}).get('request_id', '-')}", file=out)
    if failed:
        print(f"facesearch-cluster: error: replica(s) {sorted(failed)} did not answer, their records are missing "
              f"({'; '.join(failed.values())}): `facesearch-cluster up`, then ask again", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_MATCH if records else EXIT_NO_MATCH


def run_compare(args, c, runtime, out):
    photos = []
    for path in (args.a, args.b):
        try:
            with open(path, "rb") as f:
                photos.append((path, f.read()))
        except OSError as e:
            raise clusterfile.ClusterFileError(f"cannot read {path}: {e.strerror}") from None
    options = [x for flag, value in (("--threshold", args.threshold), ("--max-fmr", args.max_fmr),
                                     ("--face-a", args.face_a), ("--face-b", args.face_b)) if value is not None
               for x in (flag, str(value))]
    audit = ["--request-id", args.request_id or uuid.uuid4().hex]
    audit += [x for flag, value in (("--case", args.case), ("--purpose", args.purpose)) if value for x in (flag, value)]
    done = runtime.compare(c, photos, options, audit)
    answer = dict(done["answer"], replica=done["replica"], request_id=audit[1])
    if args.json:
        print(json.dumps(answer), file=out)
    elif answer["distance"] is None:
        print(f"cannot compare: no face in {answer['a' if answer['a']['face'] < 0 else 'b']['path']}", file=out)
    else:
        print(f"{'same person' if answer['same'] else 'different people'}: distance {answer['distance']:.4f} "
              f"(threshold {answer['threshold']:.2f}), FMR {answer['fmr']:.2g} ({answer['confidence']}); "
              f"on {answer['replica']} ({answer['model']}, {answer['calibration']['mode']})", file=out)
    return done["exit"]


if __name__ == "__main__":
    sys.exit(main())
