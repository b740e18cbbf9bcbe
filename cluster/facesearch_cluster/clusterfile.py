"""The cluster description file and the routing of images to shards.

A cluster file is JSON (docs/scale.md has an annotated example):

    {
      "version": 1,                      # this format
      "name": "archive",                 # optional (default "facesearch"): the Ray namespace of its actors
      "map_version": 3,                  # the bucket map's version: bump it whenever buckets move
      "ray_address": "10.0.0.1:6379",    # where `ray start --head` listens
      "auth_token_file": "/etc/facesearch/ray-token",   # optional: Ray token auth (RAY_AUTH_MODE=token)
      "facesearch": "/usr/local/bin/facesearch",        # the binary, same path on every node
      "models": "/srv/models",           # optional: --models for every facesearch run
      "buckets": 64,                     # images go to bucket int(sha256[:8], 16) % buckets
      "nodes": {"n1": {}, "n2": {}},     # Ray nodes started with --resources '{"facesearch_node_n1": 1}'
      "shards": [
        {"id": 0, "buckets": [0, 31],    # an inclusive range of buckets
         "replicas": [{"node": "n1", "corpus": "/srv/fs/shard0"},
                      {"node": "n2", "corpus": "/srv/fs/shard0"}]},
        ...
      ]
    }

Routing by the content's SHA-256 keeps every copy of an image (and its tombstone) on one shard.
Nothing here imports Ray: the file can be checked anywhere.
"""

import json
import os
from dataclasses import dataclass, field

FORMAT_VERSION = 1
MAX_BUCKETS = 1 << 20


class ClusterFileError(ValueError):
    """A cluster file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Replica:
    shard: int
    index: int  # 0-based within its shard
    node: str
    corpus: str

    @property
    def name(self):
        """The Ray actor's name (namespace "facesearch")."""
        return f"shard{self.shard}-r{self.index}"


@dataclass(frozen=True)
class Shard:
    id: int
    first_bucket: int
    last_bucket: int
    replicas: tuple


@dataclass
class Cluster:
    path: str
    map_version: int
    ray_address: str
    facesearch: str
    buckets: int
    nodes: dict
    shards: list
    models: str = ""
    auth_token_file: str = ""
    name: str = "facesearch"
    _bucket_owner: list = field(default_factory=list, repr=False)

    def bucket_of(self, sha256_hex):
        """The bucket of an image, from its content's SHA-256 (hex)."""
        if len(sha256_hex) != 64:
            raise ValueError(f"not a SHA-256: {sha256_hex!r}")
        return int(sha256_hex[:8], 16) % self.buckets

    def shard_of(self, sha256_hex):
        return self._bucket_owner[self.bucket_of(sha256_hex)]

    def shard_of_bucket(self, bucket):
        return self._bucket_owner[bucket]

    def replicas(self):
        return [r for s in self.shards for r in s.replicas]

    @staticmethod
    def node_resource(node):
        """The Ray custom resource that pins an actor to `node`."""
        return f"facesearch_node_{node}"


def _fail(path, what):
    raise ClusterFileError(f"{path}: {what}")


def _get(obj, key, kind, path, where, required=True, default=None):
    if key not in obj:
        if required:
            _fail(path, f"{where} needs \"{key}\" ({kind.__name__})")
        return default
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        _fail(path, f"{where}: \"{key}\" must be {kind.__name__}, not {type(value).__name__}")
    return value


def parse(text, path="cluster file"):
    """Parses and checks a cluster description; raises ClusterFileError naming the problem."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(path, f"not JSON: {e}")
    if not isinstance(doc, dict):
        _fail(path, "the top level must be an object")
    version = _get(doc, "version", int, path, "the file")
    if version != FORMAT_VERSION:
        _fail(path, f"version {version} is not supported (this facesearch-cluster reads {FORMAT_VERSION})")
    map_version = _get(doc, "map_version", int, path, "the file")
    address = _get(doc, "ray_address", str, path, "the file")
    if ":" not in address:
        _fail(path, f"ray_address {address!r} needs HOST:PORT")
    binary = _get(doc, "facesearch", str, path, "the file")
    if not os.path.isabs(binary):
        _fail(path, f"facesearch {binary!r} must be an absolute path (the same on every node)")
    buckets = _get(doc, "buckets", int, path, "the file")
    if not 1 <= buckets <= MAX_BUCKETS:
        _fail(path, f"buckets must be 1 to {MAX_BUCKETS}")
    nodes = _get(doc, "nodes", dict, path, "the file")
    if not nodes:
        _fail(path, "nodes is empty")
    for name, spec in nodes.items():
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            _fail(path, f"node name {name!r}: use letters, digits, _ and -")
        if not isinstance(spec, dict):
            _fail(path, f"node {name}: must be an object")
    shard_docs = _get(doc, "shards", list, path, "the file")
    if not shard_docs:
        _fail(path, "shards is empty")

    owner = [None] * buckets
    shards, corpora = [], set()
    for i, s in enumerate(shard_docs):
        where = f"shards[{i}]"
        if not isinstance(s, dict):
            _fail(path, f"{where} must be an object")
        sid = _get(s, "id", int, path, where)
        if sid != i:
            _fail(path, f"{where} has id {sid}: shards are numbered 0, 1, 2... in order")
        span = _get(s, "buckets", list, path, where)
        if len(span) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in span):
            _fail(path, f"{where}: buckets must be [first, last]")
        first, last = span
        if not 0 <= first <= last < buckets:
            _fail(path, f"{where}: buckets [{first}, {last}] must lie within 0..{buckets - 1}")
        for b in range(first, last + 1):
            if owner[b] is not None:
                _fail(path, f"bucket {b} belongs to shards {owner[b]} and {sid}: give each bucket one shard")
            owner[b] = sid
        replica_docs = _get(s, "replicas", list, path, where)
        if not replica_docs:
            _fail(path, f"{where} has no replicas")
        replicas, used_nodes = [], set()
        for r_i, r in enumerate(replica_docs):
            rwhere = f"{where}.replicas[{r_i}]"
            if not isinstance(r, dict):
                _fail(path, f"{rwhere} must be an object")
            node = _get(r, "node", str, path, rwhere)
            corpus = _get(r, "corpus", str, path, rwhere)
            if node not in nodes:
                _fail(path, f"{rwhere}: node {node!r} is not in nodes ({', '.join(sorted(nodes))})")
            if node in used_nodes:
                _fail(path, f"{where}: two replicas on node {node}: a node failure would take both")
            if not os.path.isabs(corpus):
                _fail(path, f"{rwhere}: corpus {corpus!r} must be an absolute path")
            if (node, corpus) in corpora:
                _fail(path, f"{rwhere}: corpus {corpus} on {node} is used twice")
            used_nodes.add(node)
            corpora.add((node, corpus))
            replicas.append(Replica(sid, r_i, node, corpus))
        shards.append(Shard(sid, first, last, tuple(replicas)))
    missing = [b for b, o in enumerate(owner) if o is None]
    if missing:
        _fail(path, f"{len(missing)} bucket(s) have no shard (first: {missing[0]}): cover 0..{buckets - 1}")

    token = _get(doc, "auth_token_file", str, path, "the file", required=False, default="")
    models = _get(doc, "models", str, path, "the file", required=False, default="")
    name = _get(doc, "name", str, path, "the file", required=False, default="facesearch")
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        _fail(path, f"name {name!r}: use letters, digits, _ and -")
    return Cluster(path, map_version, address, binary, buckets, nodes, shards, models, token, name, owner)


def auth_environment(cluster):
    """The environment variables that turn on Ray's token authentication for `cluster` ({} when
    its file names no token). Ray reads them when it is imported, not when it connects: a client
    must have them set before `import ray` (use_auth), a node's `ray start` in its environment."""
    if not cluster.auth_token_file:
        return {}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": cluster.auth_token_file}


def use_auth(cluster):
    """Sets auth_environment(cluster) in this process: call it before Ray is imported."""
    os.environ.update(auth_environment(cluster))


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ClusterFileError(f"cannot read the cluster file {path}: {e.strerror}") from None
    return parse(text, path)
