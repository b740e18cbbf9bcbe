"""Moving buckets between shards: how a cluster grows (docs/scale.md, "Moving buckets"). No Ray here.

A move is a new version of the cluster file's bucket map that gives some buckets of one shard to
another, possibly new, shard. runtime.move does it in steps that can all be run again after an
interruption: the move is recorded in the ledger (op "move"); the buckets' content is exported from
an up-to-date replica of the old shard (`facesearch export --embed-file --bucket ...`, faces bit for
bit and the buckets' tombstones) to a file on its node, pulled from there in chunks by every replica
of the new one (snapshot.pull, as a rebuild's copy) and imported there (idempotent), which
then replays the ledger (opt-outs, erasures made during the move); their digests of the buckets'
faces must equal the old shard's; the cluster file is switched to the new map; the content is
copied once more (what the old map's ingests added meanwhile) and forgotten on the old shard's
replicas by an ordinary forget entry restricted to that shard. Between the switch and the forget
the images are on both shards: queries drop every match that a shard does not own in the map
(merge's `owner`).

The rules here (what a new map may change, which buckets move, the digest of an export) are
unit-tested on their own.
"""

import hashlib
import json

from .clusterfile import ClusterFileError

# What a new map must keep: everything but the map itself (and new nodes, new shards).
_KEPT = ("name", "ray_address", "facesearch", "buckets", "models", "auth_token_file")


def ranges(buckets):
    """Sorted bucket numbers as inclusive [first, last] ranges."""
    out = []
    for b in sorted(buckets):
        if out and out[-1][1] == b - 1:
            out[-1][1] = b
        else:
            out.append([b, b])
    return out


def in_ranges(bucket, spans):
    return any(first <= bucket <= last for first, last in spans)


def plan(old, new, entries):
    """What moving from cluster `old` to `new` (both parsed cluster files) does: {"from_shard",
    "to_shard", "buckets" (ranges), "bucket_count", "from_map_version", "to_map_version"}, the
    selector of the ledger's "move" entry. Raises ClusterFileError when `new` is not `old` with
    one shard's buckets given to one other shard: its map_version must be the next, every other
    setting and every existing shard's replicas kept (new shards and nodes appended), and the
    receiving shard must not be one that gave these buckets away before (`entries`: the ledger),
    since forgetting them there left tombstones that would refuse them."""
    where = f"{new.path} against {old.path}"
    for key in _KEPT:
        if getattr(old, key) != getattr(new, key):
            raise ClusterFileError(f"{where}: a move changes only the map, not {key!r}")
    if new.map_version != old.map_version + 1:
        raise ClusterFileError(f"{where}: map_version must go from {old.map_version} to {old.map_version + 1}, "
                               f"not {new.map_version}")
    missing_nodes = sorted(set(old.nodes) - set(new.nodes))
    if missing_nodes:
        raise ClusterFileError(f"{where}: node(s) {missing_nodes} are gone; a move keeps every node")
    for shard in old.shards:
        if shard.id >= len(new.shards) or new.shards[shard.id].replicas != shard.replicas:
            raise ClusterFileError(f"{where}: shard {shard.id} must keep its id and replicas (add new shards at the end)")
    moved = [b for b in range(old.buckets) if old.shard_of_bucket(b) != new.shard_of_bucket(b)]
    if not moved:
        raise ClusterFileError(f"{where}: no bucket changes shard")
    pairs = sorted({(old.shard_of_bucket(b), new.shard_of_bucket(b)) for b in moved})
    if len(pairs) != 1:
        raise ClusterFileError(f"{where}: buckets move between {len(pairs)} pairs of shards {pairs}: move one "
                               "shard's buckets to one shard at a time (one map version each)")
    (source, target), = pairs
    spans = ranges(moved)
    for e in entries:
        sel = e["selector"]
        if e["op"] == "move" and sel["from_shard"] == target and \
                any(in_ranges(b, sel["buckets"]) for b in moved):
            raise ClusterFileError(f"{where}: shard {target} gave some of these buckets away (ledger entry {e['seq']}) "
                                   "and holds their tombstones: give them to another shard")
    return {"from_shard": source, "to_shard": target, "buckets": spans, "bucket_count": old.buckets,
            "from_map_version": old.map_version, "to_map_version": new.map_version}


def recorded(entries, to_map_version):
    """The ledger's "move" entry to map `to_map_version` (a move run again), and the forget entry
    that finished it, each None when absent."""
    move = next((e for e in entries if e["op"] == "move" and e["selector"]["to_map_version"] == to_map_version), None)
    forget = move and next((e for e in entries if e["op"] == "forget" and
                            e["selector"].get("move") == move["request_id"]), None)
    return move, forget


def same_map(a, b):
    """Whether two parsed cluster files have the same map (version, owners and replicas)."""
    return (a.map_version == b.map_version and a._bucket_owner == b._bucket_owner
            and [s.replicas for s in a.shards] == [s.replicas for s in b.shards])


def summary(lines):
    """What an embed file of exported buckets holds: {"images", "faces", "tombstones", "digest",
    "paths"}; `lines`: its lines, header first (an open file: read one line at a time, so a 10M-face
    export is never held whole). `digest` is SHA-256 over the sorted "<image sha256> <x>,<y>,<w>,<h>"
    lines of its faces, equal for equal content whatever the face ids or the order."""
    keys, paths, tombstones = [], [], 0
    records = iter(lines)
    next(records, None)  # the header: model identity and mode
    for text in records:
        record = json.loads(text)
        if "facesearch_embed_end" in record:
            break
        if record["status"] == "erased":
            tombstones += 1
        elif record["status"] == "ok":
            paths.append(record["path"])
            keys += [f"{record['sha256']} {','.join(map(str, f['box']))}" for f in record["faces"]]
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode() + b"\n")
    return {"images": len(paths), "faces": len(keys), "tombstones": tombstones, "digest": digest.hexdigest(),
            "paths": paths}
