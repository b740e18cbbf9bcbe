"""The Ray side: one actor per shard replica, pinned to the node that holds its corpus, and the
ingest tasks that embed batches anywhere.

Every shard replica is an ordinary corpus written by one actor (`facesearch import`), so every
guarantee of a corpus (consistency, verify, audit, scrubbed erasure, tombstones, opt-outs) holds
per replica. The actors run the facesearch binary for each request; the resident server of
issue #18 is to replace those process starts with one long-lived `facesearch serve` per actor
(docs/scale.md).
"""

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from . import merge as merging

IMPORT_ATTEMPTS = 4  # an import is idempotent: a replica that died mid-import is simply asked again


class ClusterError(RuntimeError):
    """A cluster operation that failed; the message says what to do."""


def connect(cluster):
    """Connects this process to the cluster's Ray (token auth when the file names a token)."""
    if cluster.auth_token_file:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = cluster.auth_token_file
    if ray.is_initialized():
        return
    try:
        ray.init(address=cluster.ray_address, namespace=cluster.name, logging_level="ERROR",
                 log_to_driver=False, include_dashboard=False)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError...
        raise ClusterError(f"cannot reach the Ray cluster at {cluster.ray_address}: {e} "
                           "(is `facesearch-cluster start-node --head` running there?)") from None


def facesearch_argv(cluster, corpus=None):
    argv = [cluster.facesearch]
    if cluster.models:
        argv += ["--models", cluster.models]
    if corpus:
        argv += ["--corpus", corpus]
    return argv


def _run(argv, stdin_text=None, ok=(0,)):
    p = subprocess.run(argv, input=stdin_text, capture_output=True, text=True, check=False)
    if p.returncode not in ok:
        raise ClusterError(f"{' '.join(argv[:4])}... exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=8)
class ShardReplica:
    """One replica of one shard: the only writer of its corpus. Imports are serialised here (and
    facesearch's own write lock serialises them with anything else); queries run concurrently."""

    def __init__(self, argv_base, shard, index):
        self.argv = list(argv_base)
        self.shard, self.index = shard, index
        self.write_lock = threading.Lock()
        self.faces = None  # the corpus's face count, refreshed by every call that sees it

    def pid(self):
        return os.getpid()

    def face_count(self):
        if self.faces is None:
            p = _run(self.argv + ["info", "--json"], ok=(0, 2))
            self.faces = json.loads(p.stdout)["faces"] if p.returncode == 0 else 0  # 2: no corpus yet
        return self.faces

    def import_records(self, embed_text):
        with self.write_lock, tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=True) as f:
            f.write(embed_text)
            f.flush()
            p = _run(self.argv + ["import", "--json", f.name])
            self.faces = None
            return json.loads(p.stdout)

    def query(self, embed_text, query_args):
        p = _run(self.argv + ["query", "--embedded", "-", "--format", "json"] + list(query_args),
                 stdin_text=embed_text, ok=(0, 1))
        answer = json.loads(p.stdout)
        if "corpus_faces" in answer:
            self.faces = answer["corpus_faces"]
        return answer

    def forget(self, forget_args):
        """Erases here and returns this replica's receipt: what was erased, its audit head after
        the erasure, and a digest of the faces it still holds (image SHA-256 and box of each,
        sorted), which every replica of the shard must agree on."""
        with self.write_lock:
            p = _run(self.argv + ["forget", "--json"] + list(forget_args), ok=(0, 1, 2))
            if p.returncode == 2 and "no corpus at" in p.stderr:  # no image ever reached this replica
                return {"shard": self.shard, "replica": self.index, "erased": {}, "audit_head": "", "faces": 0,
                        "live_digest": hashlib.sha256(b"").hexdigest()}
            # An image on another shard is "not in the corpus" here: nothing to erase, not a failure.
            if p.returncode == 2 and "is not in the corpus" not in p.stderr:
                raise ClusterError(f"forget on {self.argv[-1]} failed: {p.stderr.strip()[-2000:]}")
            erased = json.loads(p.stdout) if p.returncode != 2 and p.stdout.strip() else {}
            self.faces = None
            head = _run(self.argv + ["audit", "verify"]).stdout.strip().rsplit(" ", 1)[-1]
            export = _run(self.argv + ["export"]).stdout.splitlines()
        live = sorted(f"{r['sha256']} {r['box']['x']},{r['box']['y']},{r['box']['w']},{r['box']['h']}"
                      for r in map(json.loads, export))
        return {"shard": self.shard, "replica": self.index, "erased": erased, "audit_head": head,
                "faces": len(live), "live_digest": hashlib.sha256("\n".join(live).encode()).hexdigest()}


def _actor_options(replica, cluster):
    return dict(name=replica.name, namespace=cluster.name, lifetime="detached", get_if_exists=True,
                resources={cluster.node_resource(replica.node): 0.001})


def up(cluster):
    """Starts (or finds) every replica's actor on its node; returns {replica name: {faces, pid}}."""
    handles = {r.name: ShardReplica.options(**_actor_options(r, cluster)).remote(
        facesearch_argv(cluster, r.corpus), r.shard, r.index) for r in cluster.replicas()}
    return {name: {"faces": ray.get(h.face_count.remote(), timeout=120), "pid": ray.get(h.pid.remote())}
            for name, h in handles.items()}


def down(cluster):
    for r in cluster.replicas():
        try:
            ray.kill(ray.get_actor(r.name, namespace=cluster.name))
        except ValueError:
            pass  # not running


def _actor(cluster, replica):
    try:
        return ray.get_actor(replica.name, namespace=cluster.name)
    except ValueError:
        raise ClusterError(f"replica {replica.name} has no actor: run `facesearch-cluster up` first") from None


# ---- ingest -------------------------------------------------------------------------------------

def _embed_file(header, lines):
    return "\n".join([header] + lines + [json.dumps({"facesearch_embed_end": len(lines)})]) + "\n"


@ray.remote(max_retries=3, num_cpus=1)
def embed_batch(argv_base, paths, buckets, bucket_owner):
    """Embeds `paths` (`facesearch embed`, one worker) and splits the records by shard: content by
    its SHA-256's bucket, a failed input by its path's (it has no content hash). Returns
    {shard: embed file text} and the number of records. Ray runs it again when its worker dies;
    the shards' imports make the repeat harmless."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, "paths")
        with open(listing, "wb") as f:
            f.write(b"\0".join(p.encode() for p in paths))
        out = os.path.join(tmp, "out.jsonl")
        _run(argv_base + ["embed", "--jobs", "1", "--from-file", listing, "-0", "-o", out])
        with open(out, encoding="utf-8") as f:
            lines = f.read().splitlines()
    header, records = lines[0], lines[1:-1]
    by_shard = {}
    for line in records:
        record = json.loads(line)
        sha = record.get("sha256") or hashlib.sha256(record["path"].encode()).hexdigest()
        shard = bucket_owner[int(sha[:8], 16) % buckets]
        by_shard.setdefault(shard, []).append(line)
    return {s: _embed_file(header, ls) for s, ls in by_shard.items()}, len(records)


def _import_everywhere(cluster, shard, text):
    """Hands one shard's records to each of its replicas; retries a replica whose actor died
    (Ray restarts it) up to IMPORT_ATTEMPTS times. Returns {replica name: import summary}."""
    results = {}
    for replica in cluster.shards[shard].replicas:
        for attempt in range(IMPORT_ATTEMPTS):
            try:
                results[replica.name] = ray.get(_actor(cluster, replica).import_records.remote(text))
                break
            except RayActorError:
                if attempt == IMPORT_ATTEMPTS - 1:
                    raise ClusterError(f"replica {replica.name} died {IMPORT_ATTEMPTS} times importing a batch: "
                                       "check its node, then run the same ingest again (nothing is doubled)") from None
                time.sleep(1)
    return results


def ingest(cluster, paths, batch_size):
    """Embeds `paths` in batches as Ray tasks and imports each batch's records into every replica
    of the shard that owns them. Returns the accounting: inputs, records, and per replica the
    summed import counts."""
    argv = facesearch_argv(cluster)
    owner = [cluster.shard_of_bucket(b) for b in range(cluster.buckets)]
    pending = [embed_batch.remote(argv, paths[i:i + batch_size], cluster.buckets, owner)
               for i in range(0, len(paths), batch_size)]
    totals = {r.name: {} for r in cluster.replicas()}
    records = 0
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            by_shard, n = ray.get(done[0])
        except RayTaskError as e:  # facesearch embed failed on a whole batch: models, binary, disk
            raise ClusterError(f"an embed task failed: {str(e.cause or e).splitlines()[0][:500]}; fix it and "
                               "run the same ingest again (what was imported is not doubled)") from None
        records += n
        for shard, text in by_shard.items():
            for name, summary in _import_everywhere(cluster, shard, text).items():
                for key in ("files", "added", "noface", "duplicates", "errors", "faces", "erased", "skipped",
                            "optout_faces"):
                    totals[name][key] = totals[name].get(key, 0) + summary[key]
    return {"inputs": len(paths), "records": records, "replicas": totals}


# ---- query --------------------------------------------------------------------------------------

def embed_probe(cluster, photo):
    """The probe's embed file, made once here for every shard."""
    p = _run(facesearch_argv(cluster) + ["embed", "--jobs", "1", photo])
    record = json.loads(p.stdout.splitlines()[1])
    if record["status"] in ("error", "issue"):
        raise ClusterError(f"cannot search with {photo}: {record['error']}")
    return p.stdout


def _ask(cluster, shard, call, timeout_s):
    """Asks the shard's replicas in turn until one answers; returns (answer, errors on the way)."""
    errors = []
    for replica in cluster.shards[shard].replicas:
        try:
            return ray.get(call(_actor(cluster, replica)), timeout=timeout_s), errors
        except (RayActorError, GetTimeoutError, ClusterError) as e:
            errors.append(f"{replica.name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    return None, errors


def query(cluster, photo, top_k, threshold_args, allow_partial, timeout_s=60):
    """The cluster's answer for `photo`: embedded once, searched on one replica of every shard
    (another when one fails), merged by exact distance. Without a threshold the default one is
    sized for the whole cluster's face count (--total-faces). A shard no replica of which answers
    is an error unless allow_partial; the answer names it."""
    probe = embed_probe(cluster, photo)
    counts, missing, why = {}, [], {}
    for s in cluster.shards:
        count, errors = _ask(cluster, s.id, lambda a: a.face_count.remote(), timeout_s)
        if count is None:
            missing.append(s.id)
            why[s.id] = errors
        else:
            counts[s.id] = count
    args = ["--top-k", str(top_k)] + list(threshold_args)
    if not threshold_args:
        args += ["--total-faces", str(max(1, sum(counts.values())))]
    answers = {}
    for shard in counts:
        answer, errors = _ask(cluster, shard, lambda a: a.query.remote(probe, args), timeout_s)
        if answer is None:
            missing.append(shard)
            why[shard] = errors
        else:
            answers[shard] = answer
    if missing and not allow_partial:
        raise ClusterError(f"shard(s) {sorted(missing)} did not answer ({'; '.join(e for s in sorted(why) for e in why[s])}): "
                           "no complete answer; --allow-partial answers from the others and names the missing")
    if not answers:
        raise ClusterError("no shard answered")
    return merging.merge(answers, top_k, missing)


def forget(cluster, forget_args):
    """Erases on every replica of every shard; returns the receipts and whether the erasure is
    complete: every replica answered, and the replicas of each shard hold the same faces."""
    refs = {r.name: (r, _actor(cluster, r).forget.remote(forget_args)) for r in cluster.replicas()}
    receipts, failed = [], []
    for name, (replica, ref) in refs.items():
        try:
            receipts.append(dict(ray.get(ref), node=replica.node, corpus=replica.corpus))
        except (RayActorError, ClusterError) as e:
            failed.append({"replica": name, "error": str(e).splitlines()[0][:300]})
    disagree = []
    for s in cluster.shards:
        digests = {r["live_digest"] for r in receipts if r["shard"] == s.id}
        if len(digests) > 1:
            disagree.append(s.id)
    return {"receipts": receipts, "failed": failed, "shards_disagreeing": disagree,
            "complete": not failed and not disagree}
