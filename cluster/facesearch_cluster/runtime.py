"""The Ray side: one actor per shard replica, pinned to the node that holds its corpus, and the
ingest tasks that embed batches anywhere.

Every shard replica is an ordinary corpus written by one actor (`facesearch import`), so every
guarantee of a corpus (consistency, verify, audit, scrubbed erasure, tombstones, opt-outs) holds
per replica. Queries go to each replica's resident `facesearch serve` (resident.py); imports and
erasures run the binary. Erasures go through the cluster ledger (ledger.py) first, and a replica
behind the ledger answers no query until it has replayed it; one that cannot replay is rebuilt from
a checked snapshot of a sibling (rebuild). A query whose replica fails after the state check asks
the shard's next one (docs/scale.md).
"""

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from . import clusterfile
from . import ledger as ledgers
from . import merge as merging
from . import optouts as optout_rules
from . import snapshot as snapshots
from . import survey
from .resident import ResidentServer, ServerError

def _package_code():
    """A digest of this package's modules: the code a replica's actor runs. Actors are detached,
    so they outlive the client that started them and keep their code after an upgrade of
    facesearch-cluster, where the new client's calls would not fit their methods (a TypeError deep
    in Ray); `up` restarts an actor whose code is not this one (_started)."""
    folder, digest = os.path.dirname(os.path.abspath(__file__)), hashlib.sha256()
    for name in sorted(f for f in os.listdir(folder) if f.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:16]


CODE = _package_code()
START_WAIT_S = 120  # how long `up` waits for a replica's actor to answer (a lost node's actors restart late)
IMPORT_ATTEMPTS = 4  # an import is idempotent: a replica that died mid-import is simply asked again


class ClusterError(RuntimeError):
    """A cluster operation that failed; the message says what to do."""


def connect(cluster):
    """Connects this process to the cluster's Ray, with token auth when the file names a token:
    clusterfile.use_auth must have run before this module (and so Ray) was imported."""
    wanted = clusterfile.auth_environment(cluster)
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        raise ClusterError("the cluster uses Ray's token auth, but this process imported Ray without it: "
                           "call clusterfile.use_auth(cluster) before importing facesearch_cluster.runtime")
    if ray.is_initialized():
        return
    try:
        ray.init(address=cluster.ray_address, namespace=cluster.name, logging_level="ERROR",
                 log_to_driver=False, include_dashboard=False)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError...
        hint = f"; or {cluster.auth_token_file} does not hold the cluster's token" if wanted else ""
        raise ClusterError(f"cannot reach the Ray cluster at {cluster.ray_address}: {e} "
                           f"(is `facesearch-cluster start-node --head` running there{hint}?)") from None


def facesearch_argv(cluster, corpus=None):
    argv = [cluster.facesearch]
    if cluster.models:
        argv += ["--models", cluster.models]
    if corpus:
        argv += ["--corpus", corpus]
    return argv


def _with_corpus(argv, corpus):
    """The same facesearch argv on another corpus folder (a rebuild's copy)."""
    i = argv.index("--corpus")
    return argv[:i + 1] + [corpus] + argv[i + 2:]


def _run(argv, stdin_text=None, ok=(0,)):
    p = subprocess.run(argv, input=stdin_text, capture_output=True, text=True, check=False)
    if p.returncode not in ok:
        raise ClusterError(f"{' '.join(argv[:4])}... exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=8)
class ShardReplica:
    """One replica of one shard: the only writer of its corpus. Imports and erasures are serialised
    here (and facesearch's own write lock serialises them with anything else); queries run
    concurrently on the replica's resident server (resident.py)."""

    def __init__(self, argv_base, shard, index, corpus):
        self.argv = list(argv_base)
        self.shard, self.index, self.corpus = shard, index, corpus
        self.write_lock = threading.Lock()
        self.faces = None  # the corpus's face count, refreshed by every call that sees it
        self.snapshots = {}  # snapshot id -> (its copy's folder, its files): what siblings may pull
        _remove_snapshot_leftovers(corpus)
        self.server = ResidentServer(self.argv, f"cluster-shard{shard}-r{index}-", f"cluster-shard{shard}-r",
                                     corpus.rstrip("/") + ".serve.log")

    def pid(self):
        return os.getpid()

    def code(self):
        return CODE

    def face_count(self):
        if self.faces is None:
            p = _run(self.argv + ["info", "--json"], ok=(0, 2))
            self.faces = json.loads(p.stdout)["faces"] if p.returncode == 0 else 0  # 2: no corpus yet
        return self.faces

    def state(self):
        """Its face count and the ledger seq it has applied up to (the client quarantines a replica behind)."""
        return {"faces": self.face_count(), "seq": self.applied_seq()}

    def applied_seq(self):
        return ledgers.read_state(self.corpus)["seq"]

    def import_records(self, embed_text, head_seq=0):
        """Imports an embed file handed over whole (an ingest batch). Refused while this replica
        holds a corpus but is behind the ledger's `head_seq`: it would refuse faces its siblings
        take (an opt-out removed there, not here) or take ones they refuse, and a later replay
        would not bring them together. One without a corpus takes it (its first batch; the replay
        then erases what an entry it missed covers)."""
        reason = ledgers.quarantine_reason(self.applied_seq(), head_seq)
        if reason and os.path.exists(os.path.join(self.corpus, "corpus.sqlite")):
            raise ClusterError(f"shard{self.shard}-r{self.index} is {reason}, and takes no import until then")
        with self.write_lock, tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=True) as f:
            f.write(embed_text)
            f.flush()
            return self._import(f.name)

    def import_pulled(self, source, export):
        """Imports an export that another replica's actor `source` holds on its node
        (export_buckets with keep=True), pulled in chunks (snapshot.pull: size and SHA-256 checked)
        into a folder beside this corpus: a moved shard half never travels or sits in memory whole."""
        with self.write_lock:
            staging = _scratch_dir(self.corpus, ".import-")
            try:
                snapshots.pull(export["files"], _chunk_fetcher(source, export["id"]), staging)
                return self._import(os.path.join(staging, EXPORT_FILE))
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def _import(self, path):
        p = _run(self.argv + ["import", "--json", path])
        self.faces = None
        return json.loads(p.stdout)

    def export_buckets(self, bucket_count, spans, keep=False):
        """`facesearch export --embed-file` of the buckets in `spans` (ranges) to a file in a folder
        beside the corpus, summarised a line at a time (move.summary). With `keep` the file stays
        there for other replicas to pull (import_pulled) until drop_snapshot, and {"id", "files",
        "summary"} is returned; without, only the summary (a digest check), and the file goes."""
        from . import move as moves
        folder, kept = _scratch_dir(self.corpus, ".snapshot-"), False
        try:
            path = os.path.join(folder, EXPORT_FILE)
            _run(self.argv + ["export", "--embed-file", "--bucket-count", str(bucket_count), "--output", path] +
                 [a for first, last in spans for a in ("--bucket", f"{first}-{last}")])
            with open(path, encoding="utf-8") as f:
                summary = moves.summary(f)
            if not keep:
                return {k: v for k, v in summary.items() if k != "paths"}
            files = snapshots.manifest(folder)
            export_id = os.path.basename(folder)
            self.snapshots[export_id] = (folder, {f["path"] for f in files})
            kept = True
            return {"id": export_id, "files": files, "summary": summary}
        finally:
            if not kept:
                shutil.rmtree(folder, ignore_errors=True)

    def query(self, embed_text, params, timeout_s, head_seq):
        """The resident server's answer; refused when this replica is behind the ledger's head (it
        may still hold a face erased since)."""
        reason = ledgers.quarantine_reason(ledgers.read_state(self.corpus)["seq"], head_seq)
        if reason:
            raise ClusterError(reason)
        try:
            answer = self.server.query(embed_text, params, timeout_s)
        except ServerError as e:
            raise ClusterError(str(e)) from None
        if "corpus_faces" in answer:
            self.faces = answer["corpus_faces"]
        return answer

    def catch_up(self, entries):
        """Applies the ledger entries it has not applied yet, in order, stopping at the first that
        fails, and returns its receipt: the seq it reached, what each entry erased, its audit head,
        and its live faces with their digest (`audit verify --json`)."""
        with self.write_lock:
            try:
                result = ledgers.replay(entries, ledgers.read_state(self.corpus), self._apply,
                                        lambda state: ledgers.write_state(self.corpus, state))
            except ledgers.LedgerError as e:
                result = dict(ledgers.read_state(self.corpus), applied=[], error=str(e))
            if result["applied"]:
                self.faces = None
                self.server.stop()  # no process keeps erased vectors; the next query starts it afresh
            receipt = _receipt(self.argv, self.corpus)
        return dict(receipt, shard=self.shard, replica=self.index, seq=result["seq"], hash=result["hash"],
                    applied=result["applied"], error=result["error"])

    def optouts(self):
        """{"seq": the ledger entry it applied last, "optouts": its `optout list --json` rows (ids,
        thresholds, dates, reasons, request ids; never the embeddings)}; no rows without a corpus."""
        p = _run(self.argv + ["optout", "list", "--json"], ok=(0, 1, 2))
        if p.returncode == 2 and NO_CORPUS not in p.stderr:
            raise ClusterError(f"optout list on {self.corpus} failed: {p.stderr.strip()[-1000:]}")
        rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        return {"seq": ledgers.read_state(self.corpus)["seq"], "optouts": rows}

    def health(self, model=None):
        """{"corpus": whether it holds one, "problems": what `facesearch verify` found (none:
        healthy), "foreign": why its corpus's model is not `model` (cluster_model), or None}."""
        return _health(self.argv, self.corpus, model=model)

    # -- checking a replica and comparing on it (`facesearch-cluster verify`, `audit`, `compare`) --

    def examine(self, full=False, chains_only=False, model=None):
        """This replica's report for survey.verdict: `facesearch verify` (unless `chains_only`;
        `full`: every vector; `model`: the cluster's, see _health), `audit verify --json` and the
        ledger entry it applied last, the last two under its write lock (between two imports)."""
        health = {"corpus": os.path.exists(os.path.join(self.corpus, "corpus.sqlite")), "problems": [], "notes": []}
        if not chains_only or not health["corpus"]:
            health = _health(self.argv, self.corpus, ["--full"] if full else [], model)
        if not health["corpus"]:
            return dict(health, audit=None, seq=None)
        with self.write_lock:
            audit = _audit_verify(self.argv, self.corpus)
            try:
                seq = ledgers.read_state(self.corpus)["seq"]
            except ledgers.LedgerError as e:
                seq = -1  # behind every head: quarantined, and said why
                health["problems"].append(str(e))
        return dict(health, audit=audit, seq=seq)

    def audit_records(self, filters, request_id=None):
        """Its audit records (`facesearch audit --format jsonl` with `filters`: --since, --case...),
        only those of `request_id` when given; none when it holds no corpus yet."""
        p = _run(self.argv + ["audit", "--format", "jsonl"] + list(filters), ok=(0, 1, 2))
        if p.returncode == 2:
            if NO_CORPUS in p.stderr:
                return []
            raise ClusterError(f"audit on {self.corpus} failed: {p.stderr.strip()[-1000:]}")
        records = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        return [r for r in records if request_id is None or (r.get("params") or {}).get("request_id") == request_id]

    def compare(self, photos, options, audit_args):
        """`facesearch compare --json` of two photos (their names and bytes) on this replica: with the
        corpus's model and embedding mode (`info`), so the distance, FMR and confidence are on the
        scale of the cluster's queries, and recorded in its audit log (`audit_args`: --request-id,
        --case, --purpose). Returns {"answer": the JSON, "exit": 0 same person or 1}, or {"exit": 2,
        "error"} when facesearch refused the photos or options."""
        info = json.loads(_run(self.argv + ["info", "--json"]).stdout)
        model = ["--model", "sface"] if info["model"] == "sface" else ["--embedding", info["embedding_mode"]]
        with tempfile.TemporaryDirectory(prefix="facesearch-compare-") as tmp:
            paths = []
            for i, (name, data) in enumerate(photos):
                paths.append(os.path.join(tmp, f"{'ab'[i]}{os.path.splitext(name)[1][:8]}"))
                with open(paths[-1], "wb") as f:
                    f.write(data)
            p = _run(self.argv + list(audit_args) + ["compare", "--json"] + model + list(options) + paths, ok=(0, 1, 2))
        if p.returncode == 2:  # the photos or options: no other replica would do better
            return {"exit": 2, "error": p.stderr.strip()[-1000:].replace(tmp, "")}
        answer = json.loads(p.stdout)
        for side, (name, _) in zip("ab", photos):
            answer[side]["path"] = name
        return {"answer": answer, "exit": p.returncode}

    def snapshot(self):
        """A consistent copy of this replica's corpus for a sibling's rebuild, left on this node in a
        folder beside the corpus (`<corpus>.snapshot-XXXX`) until drop_snapshot; the sibling pulls it
        file by file in chunks (snapshot_chunk, snapshot.pull). Returns {"id", "files": its manifest,
        "receipt": the copy's receipt, "state": its ledger state}. It holds the actor's write lock
        and the corpus's own (write.lock, which every facesearch writer takes), so no import or
        erasure runs meanwhile; SQLite's backup API copies one consistent version of the database
        even while queries append audit records, and leaves out the WAL (whose old frames may still
        hold erased vectors). The copy's live faces must be this corpus's."""
        with self.write_lock:
            tmp = _scratch_dir(self.corpus, ".snapshot-")
            try:
                copy = os.path.join(tmp, "corpus")
                os.mkdir(copy, 0o700)
                with open(os.path.join(self.corpus, "write.lock"), "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    _backup_database(os.path.join(self.corpus, "corpus.sqlite"), os.path.join(copy, "corpus.sqlite"))
                    shutil.copytree(os.path.join(self.corpus, "index"), os.path.join(copy, "index"))
                    if os.path.exists(os.path.join(self.corpus, ledgers.STATE_FILE)):
                        shutil.copy2(os.path.join(self.corpus, ledgers.STATE_FILE), copy)
                    live = _receipt(self.argv, self.corpus)["live_digest"]
                receipt = _receipt(_with_corpus(self.argv, copy), copy)
                if receipt["live_digest"] != live:
                    raise ClusterError(f"the snapshot of {self.corpus} holds other faces than the corpus: try again")
                files = snapshots.manifest(copy)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            snapshot_id = os.path.basename(tmp)
            self.snapshots[snapshot_id] = (copy, {f["path"] for f in files})
            return {"id": snapshot_id, "files": files, "receipt": receipt, "state": ledgers.read_state(copy)}

    def snapshot_chunk(self, snapshot_id, path, offset, size):
        """Up to `size` bytes of one file of snapshot `snapshot_id` (snapshot.read_chunk)."""
        if snapshot_id not in self.snapshots:
            raise ClusterError(f"{self.corpus} holds no snapshot {snapshot_id} (dropped, or its actor restarted)")
        copy, files = self.snapshots[snapshot_id]
        return snapshots.read_chunk(copy, files, path, offset, size)

    def drop_snapshot(self, snapshot_id):
        """Removes a snapshot or a kept export: the folder beside the corpus named by its id."""
        if self.snapshots.pop(snapshot_id, None) is not None:
            shutil.rmtree(os.path.join(os.path.dirname(self.corpus.rstrip("/")), snapshot_id), ignore_errors=True)

    def restore(self, source, snap):
        """Replaces this replica's corpus with a sibling's snapshot, pulled from the sibling's actor
        `source` in chunks (snapshot.pull: every file's size and SHA-256 checked) into a folder
        beside the corpus, which is renamed over it only once the copy verifies and its receipt
        (audit head, faces, live digest) equals the one the sibling computed. Returns its receipt
        and state."""
        with self.write_lock:
            self.server.stop()
            staging = self.corpus.rstrip("/") + ".rebuild"
            shutil.rmtree(staging, ignore_errors=True)
            os.mkdir(staging, 0o700)
            try:
                snapshots.pull(snap["files"], _chunk_fetcher(source, snap["id"]), staging)
                argv = _with_corpus(self.argv, staging)
                problems = _health(argv, staging)["problems"]
                if problems:
                    raise ClusterError(f"the copy for {self.corpus} fails verify: {'; '.join(problems)[:1000]}")
                receipt = _receipt(argv, staging)
                if receipt != snap["receipt"]:
                    raise ClusterError(f"the copy for {self.corpus} has receipt {receipt}, its source {snap['receipt']}")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            old = self.corpus.rstrip("/") + ".replaced"
            shutil.rmtree(old, ignore_errors=True)
            if os.path.exists(self.corpus):
                os.rename(self.corpus, old)
            os.rename(staging, self.corpus)
            shutil.rmtree(old, ignore_errors=True)
            self.faces = None
            return {"receipt": receipt, "state": ledgers.read_state(self.corpus)}

    def _apply(self, entry):
        """One ledger entry on this corpus, audited with the entry's request id. Returns the counts erased."""
        argv = self.argv + ["--request-id", entry["request_id"]]
        sel = entry["selector"]
        if not ledgers.erases_on(entry, self.shard):
            return {"faces_erased": 0, "images_erased": 0}
        if "move" in sel:
            return _forget_images(argv, sel["moved_images"])
        if entry["op"] == optout_rules.REMOVE_OP:
            return _remove_optout(argv, sel["optout_request_id"])
        threshold = ["--threshold", str(sel["threshold"])] if sel.get("threshold") is not None else []
        if entry["op"] == "optout":
            _check_photo(sel)
            reason = ["--reason", sel["reason"]] if sel.get("reason") else []
            return json.loads(_run(argv + ["optout", "add", "--json", sel["photo"]] + threshold + reason).stdout)
        if sel.get("like"):
            _check_photo(sel)
            return _forget(argv, ["--like", sel["photo"]] + threshold)
        erased = {"faces_erased": 0, "images_erased": 0}
        for image in sel["images"]:  # one at a time: an image on another shard is "not in the corpus" here
            one = _forget(argv, ["--image", image])
            for key in erased:
                erased[key] += one[key]
        return erased


NO_CORPUS = "no corpus at"


EXPORT_FILE = "buckets.jsonl"  # a move's export, in its `<corpus>.snapshot-XXXX` folder
SCRATCH_KINDS = (".snapshot-", ".import-")  # folders beside a corpus that only its actor's calls use


def _scratch_dir(corpus, kind):
    """A new private folder `<corpus><kind>XXXX` beside the corpus (on its file system, and
    removed by the next actor's start if this one dies holding it)."""
    return tempfile.mkdtemp(prefix=os.path.basename(corpus.rstrip("/")) + kind, dir=os.path.dirname(corpus.rstrip("/")))


def _remove_snapshot_leftovers(corpus):
    """Snapshots, exports and imports an earlier actor of this replica left beside its corpus (it
    died, or the client that asked for them did before drop_snapshot): nobody can use them any more."""
    folder, base = os.path.split(corpus.rstrip("/"))
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if any(name.startswith(base + kind) for kind in SCRATCH_KINDS):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _chunk_fetcher(source, snapshot_id):
    """fetch(path, offset, size) for snapshot.pull: one chunk from the sibling's actor at a time."""
    return lambda path, offset, size: ray.get(source.snapshot_chunk.remote(snapshot_id, path, offset, size),
                                              timeout=600)


def _audit_verify(argv, corpus):
    """`audit verify --json` of a replica (None when it holds no corpus)."""
    p = _run(argv + ["audit", "verify", "--json"], ok=(0, 2))
    if p.returncode == 2 and NO_CORPUS in p.stderr:
        return None
    if not p.stdout.strip():
        raise ClusterError(f"audit verify on {corpus} failed: {p.stderr.strip()[-1000:]}")
    return json.loads(p.stdout)


def _receipt(argv, corpus):
    """A replica's audit head, live faces and their digest (`audit verify --json`), and whether it
    holds a corpus at all (ledger.evaluate)."""
    v = _audit_verify(argv, corpus)
    if v is None:
        return {"audit_head": "", "faces": 0, "live_digest": hashlib.sha256(b"").hexdigest(),
                "holds_corpus": False}
    if not v["intact"]:
        raise ClusterError(f"the audit log of {corpus} is broken at record {v['first_bad']}: {v['problem']}")
    return {"audit_head": v["head"], "faces": v["faces"], "live_digest": v["live_digest"], "holds_corpus": True}


def _health(argv, corpus, extra=(), model=None):
    """{"corpus", "problems", "notes", "foreign"} of `facesearch verify` (with `extra` options, e.g.
    --full). With `model` (cluster_model: what the cluster embeds with), a corpus of another model
    or embedding mode is a problem too ("foreign" says which): it can take none of the cluster's
    imports and answer none of its probes, though `verify` finds it healthy."""
    if not os.path.exists(os.path.join(corpus, "corpus.sqlite")):
        return {"corpus": False, "problems": [f"no corpus at {corpus}"], "notes": [], "foreign": None}
    p = _run(argv + ["verify", "--format", "json"] + list(extra), ok=(0, 2))
    try:
        report = json.loads(p.stdout)
        out = {"corpus": True, "problems": [f["message"] for f in report["problems"]],
               "notes": [f["message"] for f in report["notes"]], "foreign": None}
    except (ValueError, KeyError, TypeError):
        out = {"corpus": True, "problems": [p.stderr.strip()[-500:] or f"verify exited {p.returncode}"], "notes": [],
               "foreign": None}
    if model:
        info = json.loads(_run(argv + ["info", "--json"]).stdout)
        out["foreign"] = survey.foreign_model({k: info.get(k) for k in model}, model)
        out["problems"] += [out["foreign"]] if out["foreign"] else []
    return out


def cluster_model(cluster):
    """{"model_identity", "embedding_mode"} the cluster embeds with: the header that `facesearch
    embed` writes for no input (no model is loaded), from the cluster's binary and models."""
    with tempfile.NamedTemporaryFile() as empty:
        header = json.loads(_run(facesearch_argv(cluster) + ["embed", "--from-file", empty.name]).stdout.splitlines()[0])
    return {k: header[k] for k in ("model_identity", "embedding_mode")}


def _backup_database(src, dst):
    """SQLite's online backup of `src` into a new private file `dst`."""
    os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    source, target = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _forget(argv, selector):
    """`facesearch forget --json`; nothing to erase here (no corpus yet, an image on another shard) counts as 0."""
    p = _run(argv + ["forget", "--json"] + selector, ok=(0, 1, 2))
    if p.returncode == 2:
        if NO_CORPUS in p.stderr or "is not in the corpus" in p.stderr:
            return {"faces_erased": 0, "images_erased": 0}
        raise ClusterError(f"forget failed: {p.stderr.strip()[-1000:]}")
    return json.loads(p.stdout)


def _forget_images(argv, images, chunk=200):
    """A move's forget on the old shard: its images a chunk per `facesearch forget` run; a chunk
    one of whose images is gone already (erased during the move) is done image by image."""
    erased = {"faces_erased": 0, "images_erased": 0}
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        p = _run(argv + ["forget", "--json"] + [a for image in part for a in ("--image", image)], ok=(0, 1, 2))
        done = [json.loads(p.stdout)] if p.returncode != 2 else \
            [_forget(argv, ["--image", image]) for image in part] if "is not in the corpus" in p.stderr else None
        if done is None:
            raise ClusterError(f"forget failed: {p.stderr.strip()[-1000:]}")
        for one in done:
            for key in erased:
                erased[key] += one[key]
    return erased


def _remove_optout(argv, request_id):
    """`facesearch optout remove --request RID`: the opt-out this replica added under that request
    id, its embedding scrubbed. One it never held (no corpus then, or added before it joined)
    counts as 0 removed, as an image on another shard does for a forget."""
    p = _run(argv + ["optout", "remove", "--json", "--request", request_id], ok=(0, 2))
    if p.returncode == 2:
        if NO_CORPUS in p.stderr or "no opt-out was added under request id" in p.stderr:
            return {"optouts_removed": 0}
        raise ClusterError(f"optout remove failed: {p.stderr.strip()[-1000:]}")
    return {"optouts_removed": len(json.loads(p.stdout)["ids"])}


def _check_photo(selector):
    """The photo a --like or opt-out entry names must still be the one the ledger recorded."""
    try:
        with open(selector["photo"], "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        raise ClusterError(f"cannot read {selector['photo']} ({e.strerror}): it must stay readable on every "
                           "node until every replica has applied the entry") from None
    if sha != selector["photo_sha256"]:
        raise ClusterError(f"{selector['photo']} changed since the ledger recorded it (SHA-256 {sha[:12]}..., "
                           f"recorded {selector['photo_sha256'][:12]}...): put the original back")


def _warn(message):
    print(f"facesearch-cluster: warning: {message}", file=sys.stderr)


def _actor_options(replica, cluster):
    return dict(name=replica.name, namespace=cluster.name, lifetime="detached", get_if_exists=True,
                resources={cluster.node_resource(replica.node): 0.001})


def _started(cluster, wait_s=START_WAIT_S):
    """{replica name: its actor}, each started (or found) and answering. An actor whose node was
    lost (kill -9 of the raylet, a reboot) is "unavailable" until the GCS has noticed the node's
    death (its health checks take ~15-30 s) and restarted the actor on the node that holds its
    resource now, and stays pending while no node holds it. So each is asked its code (CODE),
    again every second until `wait_s`; then the replicas that still do not answer are named, with
    what to do. One that runs other code (an earlier facesearch-cluster) is killed and started
    again with this one, with a warning."""
    deadline = time.monotonic() + wait_s
    handles, waiting, restarted = {}, {r.name: r for r in cluster.replicas()}, set()
    while True:
        asked = {}
        for name, r in waiting.items():
            h = ShardReplica.options(**_actor_options(r, cluster)).remote(facesearch_argv(cluster, r.corpus),
                                                                          r.shard, r.index, r.corpus)
            try:
                asked[name] = (h, h.code.remote())
            except AttributeError:  # an actor from before `code`: its handle lists its own methods
                asked[name] = (h, None)
        errors = {}
        for name, (h, ref) in asked.items():
            code = None  # an actor from before `code`
            try:
                if ref is not None:
                    code = ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                if code == CODE:
                    handles[name] = h
                    continue
            except RayTaskError:  # the same, when Ray checks the method on the actor's side
                pass
            except RayError as e:  # unavailable, died, or no node to start it on yet (timeout)
                errors[name] = _error_text(waiting[name], e)
                continue
            if name in restarted:  # started afresh and still other code: its node's install differs
                raise ClusterError(f"replica {name}'s node {waiting[name].node} runs another version of "
                                   f"facesearch-cluster (code {code or 'none'}, this client's {CODE}): install "
                                   "the same version on every node and here, then run `up` again")
            ray.kill(h, no_restart=True)  # the next round starts it afresh, with this code
            restarted.add(name)
            _warn(f"restarted the actor of {name}: it ran another version of facesearch-cluster")
            errors[name] = f"{name}: restarted (it ran another version)"
        waiting = {name: r for name, r in waiting.items() if name in errors}
        if not waiting:
            return handles
        if time.monotonic() >= deadline:
            nodes = sorted({r.node for r in waiting.values()})
            raise ClusterError(f"replica(s) {sorted(waiting)} did not start in {wait_s:g} s ({'; '.join(errors.values())}): "
                               f"is node(s) {nodes} up (`facesearch-cluster start-node`)? then run `up` again")
        time.sleep(1)


def up(cluster, warn=_warn, wait_s=START_WAIT_S):
    """Starts (or finds) every replica's actor on its node and has it replay the ledger entries it
    missed. A replica that cannot replay (its replay fails, or its corpus is gone or fails verify
    while a sibling holds one) is rebuilt from a healthy sibling (rebuild). Returns {replica name:
    {faces, pid, seq, quarantined (the reason, or null), rebuilt_from (the sibling, or null)}}.
    `warn` gets what the ledger's head check rewrote; `wait_s` bounds the wait for the actors."""
    handles = _started(cluster, wait_s)
    entries, note = ledgers.Ledger(ledgers.ledger_path(cluster.path)).check_head()
    if note:
        warn(note)
    head = entries[-1]["seq"] if entries else 0
    model = cluster_model(cluster)
    health = {name: h.health.remote(model) for name, h in handles.items()}  # every replica's verify at once
    health = {name: ray.get(ref, timeout=600) for name, ref in health.items()}
    broken = ledgers.beyond_replay(cluster, health)
    tails = _tails(cluster, cluster.replicas(), entries)
    out, receipts = {}, {}
    for r in cluster.replicas():
        if r.name in broken:
            receipt = {"seq": 0}
        else:
            receipt = receipts[r.name] = ray.get(handles[r.name].catch_up.remote(tails[r.name]), timeout=600)
            if receipt["error"]:
                broken[r.name] = f"replay failed at {receipt['error']}"
        out[r.name] = {"seq": receipt["seq"], "quarantined": ledgers.quarantine_reason(receipt["seq"], head),
                       "rebuilt_from": None}
    for name, why in broken.items():
        replica = next(r for r in cluster.replicas() if r.name == name)
        try:
            done = rebuild(cluster, replica.shard, replica.index)
            out[name].update(seq=done["seq"], quarantined=None, rebuilt_from=done["source"])
        except ClusterError as e:
            out[name]["quarantined"] = f"{out[name]['quarantined'] or 'quarantined'}: {why}; rebuild failed: {e}"
    for name, why in ((n, h["foreign"]) for n, h in health.items() if h["foreign"]):
        if out[name]["rebuilt_from"] is None and not out[name]["quarantined"]:  # no sibling of the cluster's model
            out[name]["quarantined"] = f"quarantined: {why}"
    for name, h in handles.items():
        out[name].update(faces=ray.get(h.face_count.remote(), timeout=120), pid=ray.get(h.pid.remote(), timeout=60))
    if entries and receipts:  # what the replicas reached, for `facesearch-cluster ledger`
        ledgers.append_receipts(ledgers.receipts_path(cluster.path), "up", receipts)
    return out


def rebuild(cluster, shard_id, index):
    """Replaces replica `index` of shard `shard_id` with a copy of a sibling that is at the ledger's
    head and verifies (ShardReplica.snapshot, then .restore on the replica's own node, which pulls
    the copy from the sibling's actor in chunks: node to node, never whole in memory, not through
    this client). Returns {"replica", "source", "seq", "receipt"}. Raises ClusterError when no
    sibling qualifies, the copy fails its checks (the replica's corpus is then left as it was) or a
    move or another rebuild holds the cluster's lock (ledger.exclusive)."""
    try:
        with ledgers.exclusive(cluster.path, f"rebuild-replica --shard {shard_id} --replica {index}"):
            return _rebuild(cluster, shard_id, index)
    except ledgers.ClusterBusy as e:
        raise ClusterError(str(e)) from None


def _rebuild(cluster, shard_id, index):
    shard = next((s for s in cluster.shards if s.id == shard_id), None)
    if shard is None or not 0 <= index < len(shard.replicas):
        raise ClusterError(f"the cluster file has no replica {index} of shard {shard_id}")
    target = shard.replicas[index]
    head = ledgers.Ledger(ledgers.ledger_path(cluster.path)).read_head()["seq"]
    model, refused = cluster_model(cluster), []
    for source in (r for r in shard.replicas if r is not target):
        try:
            actor = _actor(cluster, source)
            state, health = ray.get([actor.state.remote(), actor.health.remote(model)], timeout=600)
        except (RayError, ClusterError) as e:
            refused.append(_error_text(source, e))
            continue
        if not health["corpus"] or health["problems"] or state["seq"] < head:
            problems = "; ".join(health["problems"]) or f"at ledger entry {state['seq']} of {head}"
            refused.append(f"{source.name}: {problems}")
            continue
        snap = None
        try:
            snap = ray.get(actor.snapshot.remote(), timeout=3600)
            done = ray.get(_actor(cluster, target).restore.remote(actor, snap), timeout=3600)
        except (RayError, ClusterError) as e:
            raise ClusterError(f"rebuilding {target.name} from {source.name} failed: {_error_text(target, e)}") from None
        finally:
            if snap:  # the copy on the sibling's node goes, whatever happened
                try:
                    ray.get(actor.drop_snapshot.remote(snap["id"]), timeout=600)
                except RayError:
                    pass  # the sibling's actor died: its next start removes the copy
        receipt = dict(done["receipt"], shard=shard_id, replica=index, seq=done["state"]["seq"],
                       hash=done["state"]["hash"], applied=[], error=None, rebuilt_from=source.name)
        ledgers.append_receipts(ledgers.receipts_path(cluster.path), "rebuild", {target.name: receipt})
        return {"replica": target.name, "source": source.name, "seq": done["state"]["seq"], "receipt": done["receipt"]}
    raise ClusterError(f"no replica of shard {shard_id} can be copied to {target.name} ({'; '.join(refused)}): "
                       "bring one up to date with `facesearch-cluster up` first")


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


def _import_everywhere(cluster, shard, text=None, call=None, head_seq=0):
    """Hands one shard's records (`text`, refused by a replica behind `head_seq`, or what
    call(actor) imports) to each of its replicas; retries a replica whose actor died (Ray restarts
    it) up to IMPORT_ATTEMPTS times. Returns {replica name: import summary}."""
    call = call or (lambda actor: actor.import_records.remote(text, head_seq))
    results = {}
    for replica in cluster.shards[shard].replicas:
        for attempt in range(IMPORT_ATTEMPTS):
            try:
                results[replica.name] = ray.get(call(_actor(cluster, replica)), timeout=3600)
                break
            except GetTimeoutError:  # its node lost: Ray holds the call until the actor can restart
                raise ClusterError(f"replica {replica.name} did not import a batch in an hour: check its node "
                                   "(`facesearch-cluster up`), then run the same ingest again (nothing is doubled)") from None
            except RayActorError:
                if attempt == IMPORT_ATTEMPTS - 1:
                    raise ClusterError(f"replica {replica.name} died {IMPORT_ATTEMPTS} times importing a batch: "
                                       "check its node, then run the same ingest again (nothing is doubled)") from None
                time.sleep(1)
            except RayTaskError as e:  # its facesearch refused the batch: another model, a full disk...
                raise ClusterError(f"replica {replica.name} refused a batch: {str(e.cause or e).strip()[-1500:]}; "
                                   "fix it (`facesearch-cluster verify` names a replica of another model), then "
                                   "run the same command again (nothing is doubled)") from None
    return results


def ingest(cluster, paths, batch_size):
    """Embeds `paths` in batches as Ray tasks and imports each batch's records into every replica
    of the shard that owns them. Returns the accounting: inputs, records, and per replica the
    summed import counts."""
    argv = facesearch_argv(cluster)
    head = ledgers.Ledger(ledgers.ledger_path(cluster.path)).read_head()["seq"]  # replicas behind it refuse
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
            for name, summary in _import_everywhere(cluster, shard, text, head_seq=head).items():
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


def _states(cluster, timeout_s, replicas=None, ask=lambda actor: actor.state.remote()):
    """{replica name: its state ({faces, seq}; or what `ask` asks) or the error that stopped it
    answering}, asked of all (or of `replicas`) at once."""
    refs = {}
    for r in replicas or cluster.replicas():
        try:
            refs[r.name] = ask(_actor(cluster, r))
        except ClusterError as e:
            refs[r.name] = e
    out = {}
    for name, ref in refs.items():
        try:
            out[name] = ref if isinstance(ref, ClusterError) else ray.get(ref, timeout=timeout_s)
        except RayError as e:
            out[name] = e
    return out


def _tails(cluster, replicas, entries):
    """{replica name: the tail of the ledger `entries` it needs (ledger.tail)}, from the seq its
    state says; the whole ledger for one that did not say. A replica's seq only grows (a rebuild
    copies a sibling at the head), so a tail cut before its catch-up still covers it."""
    seqs = _states(cluster, 60, replicas, ask=lambda actor: actor.applied_seq.remote())
    return {r.name: ledgers.tail(entries, seqs[r.name] if isinstance(seqs[r.name], int) else 0) for r in replicas}


def _error_text(replica, e):
    return f"{replica.name}: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"


def query(cluster, photo, top_k, threshold_args, allow_partial, timeout_s=60, audit=None, warn=_warn):
    """The cluster's answer for `photo`: embedded once, searched on one up-to-date replica of every
    shard at once (another when one fails), merged by exact distance. A replica behind the ledger
    is never asked (ledger.quarantine_reason). Without a threshold the default one is sized for the
    whole cluster's face count (total_faces). A shard no replica of which answers is an error
    unless allow_partial; the answer names it. `audit`: case, purpose and request_id for the
    replicas' audit logs. `warn` gets a note when the ledger's head file could not be used.

    A replica may die after the state check (kill -9 of its actor or of its server, its node
    lost): whatever the failure (Ray's errors, the server's, no actor any more), the shard is asked
    its next candidate replica, so the user gets the other replica's answer or an error naming the
    shard."""
    probe = embed_probe(cluster, photo)
    head = ledgers.Ledger(ledgers.ledger_path(cluster.path)).read_head()
    if head["note"]:
        warn(head["note"])
    head = head["seq"]
    states = _states(cluster, timeout_s)
    candidates, why = {}, {}  # shard -> its replicas that may answer, in order; shard -> errors
    for s in cluster.shards:
        candidates[s.id], why[s.id] = [], []
        for r in s.replicas:
            state = states[r.name]
            reason = str(state) if isinstance(state, Exception) else ledgers.quarantine_reason(state["seq"], head)
            if reason:
                why[s.id].append(f"{r.name}: {reason.splitlines()[0][:300]}")
            else:
                candidates[s.id].append((r, state["faces"]))
    # Copies of one picture (resized, recompressed) have different contents, so they may sit on
    # different shards: no shard can fold them, and the cluster answers as `query --no-collapse`.
    params = dict(threshold_args, top_k=top_k, format="json", no_collapse="true", **(audit or {}))
    if "threshold" not in params and "max_fmr" not in params:
        params["total_faces"] = max(1, sum(c[0][1] for c in candidates.values() if c))
    answers = {}
    tries = {s: list(c) for s, c in candidates.items()}
    while True:  # every shard's next candidate at once; a failure moves that shard to its next one
        refs = {}
        for s, c in tries.items():
            while c and s not in answers and s not in refs:
                replica = c.pop(0)[0]
                try:
                    refs[s] = (replica, _actor(cluster, replica).query.remote(probe, params, timeout_s, head))
                except (RayError, ClusterError) as e:  # its actor is gone since the state check
                    why[s].append(_error_text(replica, e))
        if not refs:
            break
        for s, (replica, ref) in refs.items():
            try:
                answers[s] = ray.get(ref, timeout=timeout_s)
            except (RayError, ClusterError) as e:  # died mid-query, its server died, timed out, refused
                why[s].append(_error_text(replica, e))
    missing = sorted(s for s in candidates if s not in answers)
    if missing and not allow_partial:
        raise ClusterError(f"shard(s) {missing} did not answer ({'; '.join(e for s in missing for e in why[s])}): "
                           "no complete answer; --allow-partial answers from the others and names the missing")
    if not answers:
        raise ClusterError("no shard answered")
    return merging.merge(answers, top_k, missing, owner=cluster.shard_of)


def erase(cluster, op, selector, request_id=None):
    """An erasure across the cluster: appended to the ledger first, then every replica replays the
    entries it has not applied and returns its receipt. Complete only when every replica's receipt
    reached this entry and the replicas of each shard hold the same faces; a replica that did not
    is quarantined until `up` (or the next erasure) has it replay. Returns the entry, the receipts
    and the verdict (ledger.evaluate)."""
    ledger = ledgers.Ledger(ledgers.ledger_path(cluster.path))
    entry = ledger.append(op, selector, request_id)
    tails = _tails(cluster, cluster.replicas(), ledger.entries())
    refs = {}
    for r in cluster.replicas():
        try:
            refs[r.name] = (r, _actor(cluster, r).catch_up.remote(tails[r.name]))
        except ClusterError as e:
            refs[r.name] = (r, e)
    receipts, failed = {}, []
    for name, (replica, ref) in refs.items():
        try:
            if isinstance(ref, ClusterError):
                raise ref
            receipt = ray.get(ref, timeout=600)
        except (RayError, ClusterError) as e:
            failed.append({"replica": name, "error": _error_text(replica, e)})
            continue
        receipts[name] = dict(receipt, node=replica.node, corpus=replica.corpus)
        if receipt["error"]:
            failed.append({"replica": name, "error": receipt["error"]})
    ledgers.append_receipts(ledgers.receipts_path(cluster.path), entry["request_id"], receipts)
    erased = {"faces_erased": 0, "images_erased": 0}  # per shard, as one replica of it erased
    for s in cluster.shards:
        for key in erased:
            erased[key] += max([a["erased"].get(key, 0) for r in s.replicas if r.name in receipts
                                for a in receipts[r.name]["applied"] if a["seq"] == entry["seq"]] or [0])
    return dict(ledgers.evaluate(cluster, entry["seq"], receipts), entry=entry, erased=erased,
                receipts=sorted(receipts.values(), key=lambda r: (r["shard"], r["replica"])), failed=failed)


# ---- opt-outs across the cluster (optouts.py) ----------------------------------------------------

def optout_list(cluster, timeout_s=600, warn=_warn):
    """Every replica's opt-outs merged once each against the ledger (optouts.merge)."""
    ledger = ledgers.Ledger(ledgers.ledger_path(cluster.path))
    head = ledger.read_head()
    if head["note"]:
        warn(head["note"])
    answers = _ask_every_replica(cluster, lambda a: a.optouts.remote(), timeout_s)
    return optout_rules.merge(cluster, ledger.entries(), answers)


def optout_remove(cluster, optout_request_id, request_id=None, warn=_warn):
    """Removes the opt-out added under `optout_request_id` on every replica through the ledger (an
    "optout-remove" entry, then erase's replay, receipts and verdict). Refused, with nothing
    appended, when no replica that answers holds it."""
    merged = optout_list(cluster, warn=warn)
    refused = optout_rules.removal_refused(optout_request_id, ledgers.Ledger(ledgers.ledger_path(cluster.path)).entries(),
                                           merged)
    if refused:
        raise ClusterError(refused)
    result = erase(cluster, optout_rules.REMOVE_OP, {"optout_request_id": optout_request_id}, request_id)
    # Every replica holds its own row of the one opt-out: the most any replica removed, not a sum over shards.
    result["erased"] = {"optouts_removed": max([a["erased"]["optouts_removed"] for r in result["receipts"]
                                                for a in r["applied"] if a["seq"] == result["entry"]["seq"]] or [0])}
    return result


# ---- moving buckets between shards (move.py; docs/scale.md, "Moving buckets") -------------------

def _catch_up(cluster, replicas, entries):
    """Has `replicas` replay the ledger `entries` at once; returns the receipts of those that
    answered (a receipt's "error" says where a replay stopped) and records them."""
    refs, tails = {}, _tails(cluster, replicas, entries)
    for r in replicas:
        try:
            refs[r.name] = _actor(cluster, r).catch_up.remote(tails[r.name])
        except ClusterError:
            pass  # no actor: it stays behind, quarantined, until `up`
    receipts = {}
    for name, ref in refs.items():
        try:
            receipts[name] = ray.get(ref, timeout=600)
        except RayError:
            pass
    ledgers.append_receipts(ledgers.receipts_path(cluster.path), "move", receipts)
    return receipts


def _copy_buckets(cluster, plan, ledger):
    """Copies the moved buckets' content from an up-to-date replica of the old shard to every
    replica of the new one, which then replays the ledger, and checks that each of them holds the
    same faces in those buckets as the source (move.summary's digest). The export stays on the
    source's node; each new replica pulls it in chunks (ShardReplica.import_pulled). Tries again
    when an erasure was appended meanwhile. Returns the source's summary and the import summaries."""
    old, new = cluster.shards[plan["from_shard"]], cluster.shards[plan["to_shard"]]
    for _ in range(3):
        entries = ledger.entries()
        head = entries[-1]["seq"]
        receipts = _catch_up(cluster, old.replicas, entries)
        source = next((r for r in old.replicas if r.name in receipts and receipts[r.name]["seq"] == head), None)
        if source is None:
            raise ClusterError(f"no replica of shard {old.id} is up and at ledger entry {head}: run "
                               "`facesearch-cluster up`, then the same move again")
        # The new replicas holding faces (from an earlier copy) first reach the source's seq: what
        # the old shard erased since is gone from them too, so the export's tombstones for it find
        # nothing to refuse. One without a corpus replays after its import (an opt-out needs a corpus).
        states = _states(cluster, 120)
        _catch_up(cluster, [r for r in new.replicas if isinstance(states[r.name], dict) and states[r.name]["faces"]],
                  entries)
        holder = _actor(cluster, source)
        export = ray.get(holder.export_buckets.remote(cluster.buckets, plan["buckets"], True), timeout=3600)
        try:
            imported = _import_everywhere(cluster, new.id, call=lambda actor: actor.import_pulled.remote(holder, export))
        finally:
            try:
                ray.get(holder.drop_snapshot.remote(export["id"]), timeout=600)
            except RayError:
                pass  # the source's actor died: its next start removes the export
        receipts = _catch_up(cluster, new.replicas, entries)
        failed = {r.name: receipts[r.name]["error"] if r.name in receipts else "no answer" for r in new.replicas
                  if r.name not in receipts or receipts[r.name]["seq"] < head}
        if failed:
            raise ClusterError(f"shard {new.id} could not replay the ledger after the import ({failed}): fix it, "
                               "then run the same move again")
        if ledger.read_head()["seq"] != head:
            continue  # an erasure came in meanwhile: copy again (the imports add only what is new)
        copied = export["summary"]
        for r in new.replicas:
            there = ray.get(_actor(cluster, r).export_buckets.remote(cluster.buckets, plan["buckets"]), timeout=3600)
            if there["digest"] != copied["digest"]:
                raise ClusterError(f"{r.name} holds {there['faces']} face(s) in the moved buckets, {source.name} "
                                   f"{copied['faces']} (digests differ): run the same move again")
        return dict(copied, source=source.name), imported
    raise ClusterError("erasures kept coming in while the buckets were copied: run the same move again")


def move(current, new, new_text, warn=_warn):
    """Moves buckets to the shard `new` (the next map version, parsed from `new_text`) gives them:
    records the move in the ledger, copies and checks the content (_copy_buckets), switches the
    cluster file to `new`, copies again what ingests routed by the old map added meanwhile, and
    forgets the moved images on the old shard's replicas through the ledger (a forget entry for
    that shard only). Every step can be run again: a move interrupted anywhere is finished by the
    same command. Returns {"move": the ledger entry, "copied", "imported", "forget": the erasure's
    result (erase), or None when an earlier run appended it}. Holds the cluster's lock throughout
    (ledger.exclusive: one move or rebuild at a time)."""
    with ledgers.exclusive(current.path, f"move --to {new.path}"):
        return _move(current, new, new_text, warn)


def _move(current, new, new_text, warn):
    from . import move as moves
    new.path = current.path  # the ledger, receipts and the switch are those of the file in use
    ledger = ledgers.Ledger(ledgers.ledger_path(current.path))
    entries, note = ledger.check_head()
    if note:
        warn(note)
    switched = moves.same_map(current, new)
    entry, forget = moves.recorded(entries, new.map_version)
    if switched and entry is None:
        raise ClusterError(f"{current.path} already has map version {new.map_version} and the ledger records no "
                           "move to it: nothing to move")
    if forget:
        return {"move": entry, "copied": None, "imported": None, "forget": None}
    if not switched:
        planned = moves.plan(current, new, entries)
        if entry and entry["selector"] != planned:
            raise ClusterError(f"ledger entry {entry['seq']} moves to map version {new.map_version} otherwise "
                               f"({entry['selector']}) than the new cluster file ({planned}): finish "
                               "that move with the cluster file it was started with")
        entry = entry or ledger.append("move", planned)
    _started(new)
    # Every replica of the map in use replays the move's entry at once, or queries would find
    # them behind the ledger's head (quarantined) until the next erasure or `up`.
    _catch_up(current, current.replicas(), ledger.entries())
    plan = entry["selector"]
    if not switched:
        _copy_buckets(new, plan, ledger)
        ledgers._replace_file(current.path, json.loads(new_text))  # the switch: queries and ingests follow the new map
    copied, imported = _copy_buckets(new, plan, ledger)  # what the old map's ingests added meanwhile
    # "moved_images", not "images": an actor running code from before moves existed fails on the
    # entry (quarantined until restarted and replayed) rather than erasing them on every shard.
    selector = {"moved_images": copied["paths"], "shard": plan["from_shard"], "move": entry["request_id"]}
    result = erase(new, "forget", selector)
    return {"move": entry, "copied": {k: v for k, v in copied.items() if k != "paths"}, "imported": imported,
            "forget": result}
# ---- checking a cluster: verify, audit, compare -----------------------------------------------------

def _ask_every_replica(cluster, call, timeout_s):
    """{replica name: call(its actor)'s answer, or {"error": why it gave none}}, all asked at once."""
    refs = {}
    for r in cluster.replicas():
        try:
            refs[r.name] = (r, call(_actor(cluster, r)))
        except ClusterError as e:
            refs[r.name] = (r, e)
    out = {}
    for name, (replica, ref) in refs.items():
        try:
            if isinstance(ref, ClusterError):
                raise ref
            out[name] = ray.get(ref, timeout=timeout_s)
        except (RayError, ClusterError) as e:
            out[name] = {"error": _error_text(replica, e)}
    return out


def verify(cluster, full=False, chains_only=False, timeout_s=7200, warn=_warn):
    """Every replica's `facesearch verify` (`full`: every vector; none with `chains_only`) and
    `audit verify`, run on its node at once, judged by survey.verdict against the ledger's head."""
    head = ledgers.Ledger(ledgers.ledger_path(cluster.path)).read_head()
    if head["note"]:
        warn(head["note"])
    model = None if chains_only else cluster_model(cluster)
    reports = _ask_every_replica(cluster, lambda a: a.examine.remote(full, chains_only, model), timeout_s)
    return survey.verdict(cluster, reports, head["seq"], chains_only)


def audit(cluster, filters, request_id=None, timeout_s=600):
    """(every replica's audit records matching `filters` and `request_id`, merged oldest first with
    their replica and shard (survey.merged_records), {replica name: why it did not answer})."""
    answers = _ask_every_replica(cluster, lambda a: a.audit_records.remote(filters, request_id), timeout_s)
    failed = {name: a["error"] for name, a in answers.items() if isinstance(a, dict)}
    return survey.merged_records({(r.name, r.shard): answers[r.name] for r in cluster.replicas()
                                  if r.name not in failed}), failed


def compare(cluster, photos, options, audit_args, timeout_s=600):
    """Two photos ([(name, bytes)]) compared on the first replica, in the cluster file's order,
    that answers and holds a corpus (ShardReplica.compare: the cluster's model and embedding mode;
    the record in that replica's audit log). Returns its answer with "replica" and "exit"."""
    why = []
    for r in cluster.replicas():
        try:
            done = ray.get(_actor(cluster, r).compare.remote(photos, options, audit_args), timeout=timeout_s)
        except (RayError, ClusterError) as e:
            why.append(_error_text(r, e))
            continue
        if done["exit"] == 2:
            raise ClusterError(f"compare on {r.name}: {done['error']}")
        return dict(done, replica=r.name)
    raise ClusterError(f"no replica could compare the photos ({'; '.join(why)}): `facesearch-cluster up` first")
