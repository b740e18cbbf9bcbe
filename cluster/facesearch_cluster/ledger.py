"""The cluster ledger: every erasure of the cluster (forget, optout), every removal of an opt-out
(optouts.py) and every move of buckets between shards (move.py), hash-chained and append-only, and
what each replica has applied of it.
No Ray here: the rules are unit-tested on their own.

The ledger is a file beside the cluster file (`<cluster file>.ledger`), one JSON object a line:

    {"seq": 3, "request_id": "7f3a...", "op": "forget", "selector": {"images": ["/srv/a.jpg"]},
     "at": "2026-12-04T15:20:00Z", "prev_hash": "<64 hex>", "hash": "<64 hex>"}

`hash` is SHA-256 of `prev_hash` followed by the entry's canonical JSON without `hash` (keys
sorted, no spaces, ASCII); the first entry's prev_hash is 64 zeros. Editing, removing or reordering
an entry breaks the chain, and `verify` names the first bad seq. Selectors hold paths and digests,
never embeddings: the ledger cannot be scrubbed, so it must not hold biometric data.

A query needs only the ledger's head (which seq a replica must have reached), so every append also
replaces the head file `<cluster file>.ledger.head` (seq, hash and the ledger's length in bytes;
written to a temporary file, synced, renamed). A query reads the head file and stats the ledger:
when the length recorded is not the ledger's (an append under way, or a crash between the ledger's
sync and the head's rename) or the head file is missing or torn, it reads the whole ledger instead
and says so. `up` and `ledger` check the head file against the whole ledger and rewrite one that
is missing, torn or behind; one that names entries the ledger does not hold is an error.

A "move" entry records buckets given to another shard (move.py) and erases nothing; a forget whose
selector names a "shard" (a move's forget of the images that left it) erases only on that shard's
replicas (erases_on). Every replica applies every entry all the same, so each reaches every seq.

Each replica keeps, in its own corpus folder, the seq and hash of the last entry it applied
(STATE_FILE). A replica whose seq is behind the ledger's head has missed an erasure: it is
quarantined (no query is answered from it) until it has replayed the entries after its seq, in
order. An erasure is complete only when every replica's receipt (its applied seq, its audit head
and the digest of its live faces) is in and the replicas of each shard hold the same faces. The
receipts are appended to `<cluster file>.receipts` (not chained: the replicas' own audit logs are).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
import uuid

# move: buckets given to another shard (move.py); optout-remove: an opt-out removed (optouts.py)
OPS = ("forget", "optout", "move", "optout-remove")
GENESIS = "0" * 64
STATE_FILE = "cluster-ledger-applied.json"


class LedgerError(ValueError):
    """A ledger, or a replica's state, that cannot be trusted; the message says what to do."""


class ClusterBusy(LedgerError):
    """Another command that changes where the cluster's faces live holds the cluster's lock."""


def ledger_path(cluster_path):
    return cluster_path + ".ledger"


def lock_path(cluster_path):
    return cluster_path + ".lock"


@contextlib.contextmanager
def exclusive(cluster_path, command):
    """Holds the cluster's lock (`<cluster file>.lock`, flock) while `command` runs, or raises
    ClusterBusy naming the command that holds it. The commands that move faces between replicas or
    shards take it (`move`, and every rebuild of a replica, `rebuild-replica` or one inside `up`):
    two moves at once would race to switch the cluster file, and a rebuild during a move could copy
    a replica half-way through an import. Ingests and erasures do not: a move is built to run beside
    them (it copies again what they changed). The lock lives beside the ledger, where every client
    of the cluster reads it (shared storage: flock holds across NFSv4 clients); the holder's
    command, pid, host and start are written in the file for the refusal to name."""
    path = lock_path(cluster_path)
    with open(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(f.read())
                who = f"`facesearch-cluster {holder['command']}` (pid {holder['pid']} on {holder['host']}, " \
                      f"since {holder['since']})"
            except (ValueError, KeyError, TypeError):
                who = "another facesearch-cluster command"
            raise ClusterBusy(f"{who} holds the cluster's lock {path}: wait for it to finish, then run "
                              f"`{command}` again (moves and rebuilds run one at a time)") from None
        f.truncate(0)
        f.write(json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}))
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


def head_path(ledger_file):
    return ledger_file + ".head"


def receipts_path(cluster_path):
    return cluster_path + ".receipts"


def _canonical(entry):
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(entry):
    return hashlib.sha256((entry["prev_hash"] + _canonical(entry)).encode()).hexdigest()


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def make_entry(previous, op, selector, request_id=None, at=None):
    """The entry after `previous` (None for the first)."""
    if op not in OPS:
        raise LedgerError(f"unknown ledger operation {op!r} (known: {', '.join(OPS)})")
    entry = {"seq": previous["seq"] + 1 if previous else 1, "request_id": request_id or uuid.uuid4().hex,
             "op": op, "selector": selector, "at": at or utc_now(),
             "prev_hash": previous["hash"] if previous else GENESIS}
    entry["hash"] = entry_hash(entry)
    return entry


def verify(entries, where="the ledger"):
    """Raises LedgerError at the first entry out of sequence, off the chain or altered."""
    prev = GENESIS
    for i, e in enumerate(entries, 1):
        if not isinstance(e, dict) or e.get("seq") != i:
            raise LedgerError(f"{where}: entry {i} is missing or out of order (seq {e.get('seq') if isinstance(e, dict) else e!r})")
        if e.get("prev_hash") != prev or e.get("op") not in OPS or e.get("hash") != entry_hash(e):
            raise LedgerError(f"{where}: entry {i} is altered or off the chain: restore the ledger from a copy "
                              "(every replica's state names the hash it applied last)")
        prev = e["hash"]


class Ledger:
    """The ledger file. Appends take an exclusive lock on it, so two clients never write one seq twice."""

    def __init__(self, path):
        self.path = path

    def _read(self, f):
        f.seek(0)
        entries = []
        for n, line in enumerate(f.read().splitlines(), 1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise LedgerError(f"{self.path}: line {n} is not JSON: restore the ledger from a copy") from None
        verify(entries, self.path)
        return entries

    def entries(self):
        """Every entry, checked; none when the file does not exist yet."""
        try:
            with open(self.path, encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_SH)
                return self._read(f)
        except FileNotFoundError:
            return []

    def head(self):
        """(seq, hash) of the newest entry; (0, GENESIS) for an empty ledger (read_head)."""
        head = self.read_head()
        return head["seq"], head["hash"]

    def read_head(self):
        """{"seq", "hash", "note"} of the newest entry from the head file alone when it matches the
        ledger's length; otherwise from the whole ledger, with `note` saying why (None when the head
        file was enough, or when there is no ledger yet)."""
        recorded, problem = self._head_file()
        try:
            length = os.stat(self.path).st_size  # after reading the head: an append in between shows
        except FileNotFoundError:
            if recorded:
                raise LedgerError(f"{self.path} is missing but {head_path(self.path)} says it held {recorded['seq']} "
                                  "entries: restore the ledger from a copy") from None
            return {"seq": 0, "hash": GENESIS, "note": None}
        if recorded and recorded["ledger_bytes"] == length:
            return {"seq": recorded["seq"], "hash": recorded["hash"], "note": None}
        entries = self.entries()
        seq, digest = (entries[-1]["seq"], entries[-1]["hash"]) if entries else (0, GENESIS)
        if not entries and not recorded:
            return {"seq": 0, "hash": GENESIS, "note": None}  # an empty ledger needs no head
        if recorded:
            problem = (f"records a ledger of {recorded['ledger_bytes']} bytes, the ledger has {length} "
                       "(an append under way, or one interrupted before the head was written)")
        return {"seq": seq, "hash": digest,
                "note": f"{head_path(self.path)} {problem}: read the whole ledger instead ({seq} entries); "
                        "`facesearch-cluster up` rewrites the head file"}

    def _head_file(self):
        """(the head file's {"seq", "hash", "ledger_bytes"}, None) or (None, what is wrong with it)."""
        try:
            with open(head_path(self.path), encoding="utf-8") as f:
                head = json.load(f)
        except FileNotFoundError:
            return None, "is missing"
        except (OSError, ValueError) as e:
            return None, f"is unreadable or torn ({e})"
        fields = {"seq": int, "hash": str, "ledger_bytes": int}
        if not isinstance(head, dict) or any(not isinstance(head.get(k), t) for k, t in fields.items()):
            return None, "is malformed"
        return head, None

    def _write_head(self, entries, length):
        last = entries[-1] if entries else {"seq": 0, "hash": GENESIS}
        _replace_file(head_path(self.path), {"seq": last["seq"], "hash": last["hash"], "ledger_bytes": length})

    def check_head(self):
        """Checks the head file against the whole ledger (under the ledger's lock, so no append
        interleaves) and rewrites it when it is missing, torn or behind. Returns the entries and a
        note saying what was rewritten (None when the head file was right). Raises LedgerError when
        the head file names an entry the ledger does not hold: the ledger lost entries."""
        try:
            f = open(self.path, "r+", encoding="utf-8")
        except FileNotFoundError:
            recorded, _ = self._head_file()
            if recorded and recorded["seq"]:
                raise LedgerError(f"{self.path} is missing but {head_path(self.path)} says it held {recorded['seq']} "
                                  "entries: restore the ledger from a copy") from None
            return [], None
        with f:
            fcntl.flock(f, fcntl.LOCK_EX)
            entries = self._read(f)
            length = os.fstat(f.fileno()).st_size
            recorded, problem = self._head_file()
            if recorded:
                seq = recorded["seq"]
                if seq > len(entries) or (seq and entries[seq - 1]["hash"] != recorded["hash"]):
                    raise LedgerError(f"{head_path(self.path)} names entry {seq} ({recorded['hash'][:12]}...) that "
                                      f"{self.path} ({len(entries)} entries) does not hold: the ledger lost or "
                                      "changed entries; restore it from a copy")
                if seq == len(entries) and recorded["ledger_bytes"] == length:
                    return entries, None
                problem = (f"was behind the ledger (entry {seq} of {len(entries)}, "
                           f"{recorded['ledger_bytes']} of {length} bytes)")
            self._write_head(entries, length)
            return entries, f"{head_path(self.path)} {problem}: rewritten from the ledger ({len(entries)} entries)"

    def append(self, op, selector, request_id=None):
        """Checks the chain, appends the next entry and syncs it to disk before returning it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            entries = self._read(f)
            entry = make_entry(entries[-1] if entries else None, op, selector, request_id)
            f.seek(0, os.SEEK_END)
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
            self._write_head(entries + [entry], f.tell())
            return entry


# ---- a replica's side ---------------------------------------------------------------------------

def read_state(corpus):
    """{"seq", "hash"} of the last entry this replica applied; seq 0 when it applied none."""
    try:
        with open(os.path.join(corpus, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return {"seq": 0, "hash": GENESIS}
    except (OSError, json.JSONDecodeError) as e:
        raise LedgerError(f"{corpus}/{STATE_FILE} is unreadable ({e}): the replica cannot prove which erasures "
                          "it applied; rebuild it from its sibling") from None
    if not isinstance(state, dict) or not isinstance(state.get("seq"), int) or not isinstance(state.get("hash"), str):
        raise LedgerError(f"{corpus}/{STATE_FILE} is malformed: rebuild the replica from its sibling")
    return state


def _replace_file(path, obj):
    """Replaces `path` with `obj` as JSON atomically (a crash leaves the old one or the new one):
    a temporary file, synced, renamed over it, and the folder synced so the rename lasts."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_state(corpus, state):
    """Replaces the state atomically (_replace_file)."""
    os.makedirs(corpus, mode=0o700, exist_ok=True)
    _replace_file(os.path.join(corpus, STATE_FILE), {"seq": state["seq"], "hash": state["hash"]})


def tail(entries, seq):
    """What a replica that applied entries up to `seq` needs of the ledger `entries`: the entry it
    applied last (whose hash pending checks) and those after it. Replicas are sent their tail, not
    the ledger: a cluster that honoured a million erasures must not ship them all to every replica
    at every new one."""
    return entries[max(0, seq - 1):]


def pending(entries, state):
    """The entries a replica in `state` has still to apply, in order. `entries`: the ledger, or a
    tail of it (tail). Refuses a replica whose last applied entry is not the ledger's entry of that
    seq (another ledger, or one rewritten), and a tail that starts after that entry."""
    seq = state["seq"]
    first = entries[0]["seq"] if entries else 1
    last = first + len(entries) - 1
    if seq > last:
        raise LedgerError(f"the replica applied entry {seq} but the ledger has {last}: it belongs to "
                          "another ledger, or the ledger lost entries; restore the ledger")
    if (seq and seq < first) or (not seq and first > 1):  # the entry to check, or the start, is not in it
        raise LedgerError(f"the replica applied entries up to {seq}, but was sent the ledger from entry {first}: "
                          "run `facesearch-cluster up`")
    if seq and entries[seq - first]["hash"] != state["hash"]:
        raise LedgerError(f"the replica applied an entry {seq} that is not this ledger's: it belongs to another "
                          "ledger, or the ledger was rewritten")
    return entries[seq - first + 1:]


def replay(entries, state, apply, save):
    """Applies the pending entries in order: apply(entry) returns what it erased and raises on
    failure; save(state) persists the new state after each one, so a crash loses at most the entry
    under way (whose erasure is idempotent). Stops at the first failure. Returns
    {"seq", "hash", "applied": [{"seq", "request_id", "erased"}], "error": None or the message}."""
    state = dict(state)
    applied, error = [], None
    for e in pending(entries, state):
        try:
            erased = apply(e)
        except Exception as ex:  # the replica's own error, reported in its receipt
            error = f"entry {e['seq']} ({e['op']}, request {e['request_id']}): {str(ex).strip()[:500]}"
            break
        state = {"seq": e["seq"], "hash": e["hash"]}
        save(state)
        applied.append({"seq": e["seq"], "request_id": e["request_id"], "erased": erased})
    return dict(state, applied=applied, error=error)


def erases_on(entry, shard):
    """Whether a replica of `shard` erases anything for `entry`: a "move" entry only records the
    move, and a forget restricted to a shard ("shard" in its selector: a move's forget of the
    images that left it) is for that shard's replicas alone. The others apply it as nothing erased,
    so every replica still reaches every seq."""
    return entry["op"] != "move" and entry["selector"].get("shard", shard) == shard


def quarantine_reason(state_seq, head_seq):
    """Why a replica at `state_seq` may not answer queries while the ledger is at `head_seq`; None when it may."""
    if state_seq >= head_seq:
        return None
    return (f"quarantined: applied ledger entries up to {state_seq} of {head_seq} "
            "(`facesearch-cluster up` replays the rest)")


# ---- the client's side --------------------------------------------------------------------------

def evaluate(cluster, head_seq, receipts):
    """Whether an erasure at `head_seq` is complete. `receipts`: {replica name: receipt} for the
    replicas that answered (receipt: "seq", "live_digest", "holds_corpus"). Returns {"complete",
    "quarantined": [names behind the head or silent, or holding no corpus while a sibling holds
    one], "shards_disagreeing": [shard ids whose up-to-date replicas hold different faces]}.

    A replica with no corpus applies every erasure as nothing erased, so it holds none of the
    tombstones its sibling wrote: were it counted as confirming, it would later take an erased
    image its sibling refuses. It is not a copy of its shard until `up` rebuilds it from the
    sibling (beyond_replay), so it does not confirm."""
    quarantined, disagreeing = [], []
    for shard in cluster.shards:
        digests, reached = set(), [receipts[r.name] for r in shard.replicas
                                   if r.name in receipts and receipts[r.name]["seq"] >= head_seq]
        sibling_holds_corpus = any(got.get("holds_corpus", True) for got in reached)
        for r in shard.replicas:
            got = receipts.get(r.name)
            if got is None or got["seq"] < head_seq or (not got.get("holds_corpus", True) and sibling_holds_corpus):
                quarantined.append(r.name)
            else:
                digests.add(got["live_digest"])
        if len(digests) > 1:
            disagreeing.append(shard.id)
    return {"complete": not quarantined and not disagreeing, "quarantined": quarantined,
            "shards_disagreeing": disagreeing}


def beyond_replay(cluster, health):
    """The replicas that replaying the ledger cannot make whole, with why: those whose corpus is
    gone or fails verify while a sibling's verifies (a sibling to copy from). `health`: {replica
    name: {"corpus": bool, "problems": [...]}}. A shard none of whose replicas holds a healthy
    corpus (a new cluster before its first ingest) has none: its replicas replay as they are."""
    out = {}
    for shard in cluster.shards:
        for r in shard.replicas:
            sibling_ok = any(health[o.name]["corpus"] and not health[o.name]["problems"]
                             for o in shard.replicas if o is not r)
            if health[r.name]["problems"] and sibling_ok:
                out[r.name] = "; ".join(health[r.name]["problems"])[:500]
    return out


def append_receipts(path, request_id, receipts):
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        for name, r in sorted(receipts.items()):
            f.write(json.dumps(dict(r, replica=name, request_id=request_id, received_at=utc_now()), sort_keys=True) + "\n")


def read_receipts(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def status(cluster, entries, receipts):
    """Per ledger entry: done (every replica's receipt has reached it) or the replicas still missing.
    A receipt from a replica without a corpus counts only while no sibling has sent one with a
    corpus (evaluate's rule: it lacks the sibling's tombstones until rebuilt)."""
    shard_of = {r.name: r.shard for r in cluster.replicas()}
    reached = {name: 0 for name in shard_of}
    with_corpus = {r["replica"] for r in receipts if r.get("replica") in shard_of and r.get("holds_corpus", True)}
    for r in receipts:
        name = r.get("replica")
        if name not in reached:
            continue
        if not r.get("holds_corpus", True) and any(o != name and shard_of[o] == shard_of[name] for o in with_corpus):
            continue
        reached[name] = max(reached[name], r.get("seq", 0))
    out = []
    for e in entries:
        waiting = sorted(name for name, seq in reached.items() if seq < e["seq"])
        out.append({"seq": e["seq"], "request_id": e["request_id"], "op": e["op"], "at": e["at"],
                    "done": not waiting, "waiting_for": waiting})
    return out
