"""A real 2-node Ray cluster on this machine: sharded ingest, merged queries equal to one corpus's,
a whole node killed (queries answered by the other node's replicas) and brought back, replicas
killed between a query's state check and its call and during a query loop, a missing shard,
forget reaching every replica's bytes, a replica down during an erasure quarantined until it has
replayed the ledger, an opt-out on every replica, opt-outs listed and removed across the cluster
(through the ledger, a replica down during the removal caught up by `up`), and replicas whose
corpus is gone rebuilt from their siblings.

Heavy (Ray nodes, ~100 images embedded twice): not part of ctest. Run it with
scripts/check/ray-cluster.sh, which makes the virtualenv and builds facesearch first. Test images
are the bundled ones (scripts/fetch-test-images.sh), resized, mirrored and rotated into
FS_RAY_TEST_VARIANTS x 7 distinct files.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from tests.local_ray import kill, local_processes, stop_local_ray, with_descendants

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FACESEARCH = os.environ.get("FACESEARCH_BINARY", os.path.join(REPO, "build", "facesearch"))
TEST_IMAGES = os.environ.get("FACESEARCH_TEST_IMAGES",
                             os.path.join(os.path.expanduser("~"), ".cache", "facesearch", "test-images"))
VARIANTS = int(os.environ.get("FS_RAY_TEST_VARIANTS", "15"))
PROBES = int(os.environ.get("FS_RAY_TEST_PROBES", "8"))
# A file listing more images (e.g. LFW photos) to ingest beside the made ones: the size
# check, `FS_RAY_TEST_EXTRA_IMAGES=list FS_RAY_TEST_PROBES=20 ... -k test_1_ -k test_2_` (the later
# tests assume the made images alone).
EXTRA_IMAGES = os.environ.get("FS_RAY_TEST_EXTRA_IMAGES")
CLI = [sys.executable, "-m", "facesearch_cluster.cli"]
SHARDS = 4


def make_images(dst):
    """VARIANTS transformed copies of every bundled test image: distinct content, distinct faces."""
    from PIL import Image, ImageOps
    os.makedirs(dst)
    names = sorted(f for f in os.listdir(TEST_IMAGES) if f.endswith((".jpg", ".png")))
    for v in range(VARIANTS):
        for name in names:
            im = Image.open(os.path.join(TEST_IMAGES, name)).convert("RGB")
            scale = 0.5 + 0.5 * v / max(1, VARIANTS - 1)
            im = im.resize((max(1, int(im.width * scale)), max(1, int(im.height * scale))))
            if v % 2:
                im = ImageOps.mirror(im)
            im = im.rotate((v % 5 - 2) * 2)
            im.save(os.path.join(dst, f"v{v:02d}_{os.path.splitext(name)[0]}.jpg"), quality=80 + v % 15)
    if EXTRA_IMAGES:  # named to sort first: test 2's probes include them (run only tests 1 and 2 so)
        with open(EXTRA_IMAGES, encoding="utf-8") as f:
            extra = [line.strip() for line in f if line.strip()]
        for i, path in enumerate(extra):
            shutil.copyfile(path, os.path.join(dst, f"a{i:05d}_{os.path.basename(path)}"))
    return sorted(os.path.join(dst, f) for f in os.listdir(dst))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)


def matches(answer):
    """What must be equal between the cluster and one corpus: each match's image content, box and
    exact distance, in rank order."""
    return [(m["sha256"], json.dumps(m["box"], sort_keys=True), m["distance_exact"])
            for r in answer["results"] for m in r["matches"]]


def embedding_bytes(image):
    p = run([FACESEARCH, "embed", image])
    record = json.loads(p.stdout.splitlines()[1])
    return base64.b64decode(record["faces"][0]["embedding"])


def content_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def files_holding(directory, needle):
    hits = []
    for root, _, files in os.walk(directory):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                if needle in fh.read():
                    hits.append(os.path.join(root, f))
    return hits


def serve_pid(corpus):
    """The pid of the resident `facesearch serve` on `corpus`, or None."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and corpus.encode() in argv:
            return int(pid)
    return None


class RayClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fsray-")  # short: Ray's socket paths must stay short
        cls.ray_tmp = os.path.join(cls.tmp, "r")
        cls.images = make_images(os.path.join(cls.tmp, "images"))
        port = free_port()
        cls.cluster_file = os.path.join(cls.tmp, "cluster.json")
        shards = []
        for s in range(SHARDS):
            nodes = ["n1", "n2"] if s % 2 == 0 else ["n2", "n1"]
            shards.append({"id": s, "buckets": [4 * s, 4 * s + 3],
                           "replicas": [{"node": n, "corpus": os.path.join(cls.tmp, n, f"shard{s}")} for n in nodes]})
        # Ray's token auth on, as a real cluster runs: the nodes, every command and every actor use it.
        cls.token_file = os.path.join(cls.tmp, "ray-token")
        with open(os.open(cls.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        with open(cls.cluster_file, "w") as f:
            json.dump({"version": 1, "map_version": 1, "ray_address": f"127.0.0.1:{port}", "facesearch": FACESEARCH,
                       "auth_token_file": cls.token_file, "buckets": 4 * SHARDS, "nodes": {"n1": {}, "n2": {}},
                       "shards": shards}, f)
        cls.daemons = {}  # node -> the pids of its Ray daemons (raylet, log monitor): the node, with their children
        for node in ("n1", "n2"):
            try:
                cls.start_node(node)
            except RuntimeError:
                cls.tearDownClass()
                raise
        cls.single = os.path.join(cls.tmp, "single")
        p = run([FACESEARCH, "--corpus", cls.single, "index", "--json", os.path.join(cls.tmp, "images")])
        assert p.returncode == 0, p.stderr
        cls.single_summary = json.loads(p.stdout)

    @classmethod
    def start_node(cls, node):
        before = local_processes(cls.ray_tmp)
        argv = CLI + ["start-node", "--cluster", cls.cluster_file, "--node", node, "--num-cpus", "2"]
        argv += (["--head"] if node == "n1" else []) + ["--", "--temp-dir", cls.ray_tmp, "--disable-usage-stats"]
        p = run(argv, cwd=os.path.join(REPO, "cluster"))
        if p.returncode != 0:
            raise RuntimeError(f"cannot start Ray node {node}: {p.stderr[-3000:]}")
        cls.daemons[node] = local_processes(cls.ray_tmp) - with_descendants(before)  # not the other node's workers

    @classmethod
    def tearDownClass(cls):
        stop_local_ray(cls.ray_tmp)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cli(self, *args):
        return run(CLI + [args[0], "--cluster", self.cluster_file] + list(args[1:]), cwd=os.path.join(REPO, "cluster"))

    def up(self):
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["replicas"]

    def single_query(self, probe, *extra):
        # --no-collapse: copies of one picture may sit on different shards, so the cluster lists each
        p = run([FACESEARCH, "--corpus", self.single, "query", "--no-collapse", "--format", "json", probe, *extra])
        self.assertIn(p.returncode, (0, 1), p.stderr)
        return json.loads(p.stdout)

    def cluster_query(self, probe, *extra):
        p = self.cli("query", probe, "--format", "json", *extra)
        return p, (json.loads(p.stdout) if p.stdout.strip() else None)

    def embed_workers(self):
        """The pids of this cluster's Ray workers running an ingest task (Ray titles them so)."""
        out = []
        for pid in with_descendants(local_processes(self.ray_tmp)):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::embed_batch"):
                        out.append(pid)
            except OSError:
                pass
        return out

    def test_1_sharded_ingest_accounts_for_every_image_in_every_replica_when_a_worker_is_killed(self):
        self.up()
        # A worker embedding a batch gets kill -9 mid-ingest: Ray runs the batch again elsewhere,
        # and every image is still accounted for exactly once (the checks below).
        killed, done = [], threading.Event()

        def kill_one_worker():
            while not done.is_set() and not killed:
                for pid in self.embed_workers()[:1]:
                    kill([pid])
                    killed.append(pid)
                time.sleep(0.2)

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        try:
            p = self.cli("ingest", os.path.join(self.tmp, "images"), "--batch", "8")
        finally:
            done.set()
            killer.join()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(killed), 1, "no ingest worker was seen to kill")
        result = json.loads(p.stdout)
        self.assertEqual(result["inputs"], len(self.images))
        self.assertEqual(result["records"], len(self.images))
        per_replica = result["replicas"]
        for s in range(SHARDS):
            self.assertEqual(per_replica[f"shard{s}-r0"], per_replica[f"shard{s}-r1"])  # replicas agree
        primaries = [per_replica[f"shard{s}-r0"] for s in range(SHARDS)]
        self.assertEqual(sum(r["files"] for r in primaries), len(self.images))
        self.assertGreater(min(r["files"] for r in primaries), 0)  # the buckets spread the images
        for key in ("added", "noface", "errors", "faces"):
            self.assertEqual(sum(r[key] for r in primaries), self.single_summary[key], key)
        # Running the same ingest again adds nothing anywhere.
        again = json.loads(self.cli("ingest", os.path.join(self.tmp, "images"), "--batch", "8").stdout)
        self.assertEqual(sum(r["added"] for r in again["replicas"].values()), 0)
        counts = self.up()
        self.assertEqual(sum(counts[f"shard{s}-r0"]["faces"] for s in range(SHARDS)), self.single_summary["faces"])

    def test_2_cluster_answers_equal_one_corpus_answers(self):
        probes = sorted(os.path.join(TEST_IMAGES, f) for f in os.listdir(TEST_IMAGES))[:PROBES]
        probes += self.images[:max(0, PROBES - len(probes))]
        for probe in probes:
            with self.subTest(probe=probe):
                single = self.single_query(probe)
                p, merged = self.cluster_query(probe)
                self.assertIn(p.returncode, (0, 1), p.stderr)
                self.assertEqual(merged["threshold"], single["threshold"])
                self.assertEqual(merged["corpus_faces"], single["corpus_faces"])
                self.assertEqual(matches(merged), matches(single))
                self.assertEqual(p.returncode, 0 if matches(single) else 1)

    def test_2b_a_whole_node_killed_leaves_every_shard_its_other_replica_and_up_brings_it_back(self):
        # Every shard has one replica on each node, so with n2 gone (kill -9 of its raylet, its
        # workers with the replicas' actors, their servers) every shard still answers from n1.
        probes = [os.path.join(TEST_IMAGES, "obama3.jpg"), self.images[7]]
        expected = {probe: matches(self.single_query(probe)) for probe in probes}
        self.up()
        self.cluster_query(probes[0])  # the r0 replicas (odd shards': on n2) run their servers
        self.assertIsNotNone(serve_pid(self.replica_corpus(1, 0)))
        kill(with_descendants(self.daemons["n2"]))
        for probe in probes:
            p, merged = self.cluster_query(probe)
            self.assertIn(p.returncode, (0, 1), p.stderr)
            self.assertEqual((merged["partial"], merged["shards_missing"]), (False, []))
            self.assertEqual(matches(merged), expected[probe])
        self.assertIsNone(serve_pid(self.replica_corpus(1, 0)))  # it died with its node
        # The node back (same resources): `up` has every replica at the ledger's head, the
        # replicas' receipts agree, and the replicas on n2 answer queries again.
        self.start_node("n2")
        head = len(json.loads(self.cli("ledger").stdout)["status"])
        states = self.up()
        self.assertEqual({name: (s["seq"], s["quarantined"]) for name, s in states.items()},
                         {r: (head, None) for r in states})
        self.assertEqual(len(states), 2 * SHARDS)
        self.assertEqual(self.cli("ledger").returncode, 0)
        for s in range(SHARDS):  # each replica's receipt: an intact audit chain, the same live faces as its sibling
            receipts = [json.loads(run([FACESEARCH, "--corpus", c, "audit", "verify", "--json"]).stdout)
                        for c in self.corpora(s)]
            self.assertEqual([r["intact"] for r in receipts], [True, True])
            self.assertEqual(receipts[0]["live_digest"], receipts[1]["live_digest"])
        p, merged = self.cluster_query(probes[0])
        self.assertEqual((p.returncode, merged["partial"]), (0, False), p.stderr)
        self.assertEqual(matches(merged), expected[probes[0]])
        self.assertIsNotNone(serve_pid(self.replica_corpus(1, 0)))  # answered from n2 again

    def test_3_a_replica_killed_between_the_state_check_and_the_query_is_answered_for_by_the_other(self):
        probe = os.path.join(TEST_IMAGES, "obama3.jpg")
        expected = matches(self.single_query(probe))
        self.up()
        self.cluster_query(probe)  # every r0 now runs its resident server
        # Right after the query's state check found every replica well: shard 0's first replica
        # gets kill -9 (Ray restarts it), shard 1's is gone for good (its node lost), shard 2's
        # server gets kill -9. Each shard must still answer, from its other replica or afresh.
        out = self.on_ray(
            "import json, os, signal\n"
            "checked = runtime._states\n"
            "def then_kill(cluster, timeout_s):\n"
            "    states = checked(cluster, timeout_s)\n"
            "    r0 = lambda s: ray.get_actor(f'shard{s}-r0', namespace=c.name)\n"
            "    os.kill(ray.get(r0(0).pid.remote()), signal.SIGKILL)\n"
            "    ray.kill(r0(1), no_restart=True)\n"
            f"    os.kill({serve_pid(self.replica_corpus(2, 0))}, signal.SIGKILL)\n"
            "    return states\n"
            "runtime._states = then_kill\n"
            f"print(json.dumps(runtime.query(c, {probe!r}, 10, {{}}, False)))")
        merged = json.loads(out.splitlines()[-1])
        self.assertEqual((merged["partial"], merged["shards_missing"]), (False, []))
        self.assertEqual(matches(merged), expected)
        # A query loop while r0 actors and servers are killed: every answer is the right one or an
        # error naming the shard, never a wrong or silently partial one.
        self.up()
        stop = threading.Event()

        def killer():
            victims = [lambda: serve_pid(self.replica_corpus(3, 0)), lambda: self.up_pid("shard0-r0"),
                       lambda: serve_pid(self.replica_corpus(2, 0))]
            for i in range(6):
                if stop.wait(2.5):
                    return
                pid = victims[i % len(victims)]()
                if pid:
                    os.kill(pid, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        try:
            for _ in range(4):
                p, merged = self.cluster_query(probe)
                if p.returncode == 2:
                    self.assertRegex(p.stderr, r"shard\(s\) \[\d(, \d)*\] did not answer")
                else:
                    self.assertEqual((p.returncode, merged["partial"]), (0, False), p.stderr)
                    self.assertEqual(matches(merged), expected)
        finally:
            stop.set()
            thread.join()
        # Ray restarts what it can, `up` the rest; the next query has every shard again.
        time.sleep(2)
        self.up()
        p, merged = self.cluster_query(probe)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(matches(merged), expected)
        # The servers' logs lie beside their corpora, one per replica, private.
        self.assertEqual(os.stat(self.replica_corpus(0, 0) + ".serve.log").st_mode & 0o777, 0o600)

    def up_pid(self, name):
        """The pid of a replica's actor process (a Ray client of its own, as the CLI's)."""
        return int(self.on_ray(f"print(ray.get(ray.get_actor({name!r}, namespace=c.name).pid.remote()))").split()[-1])

    def test_4_a_missing_shard_fails_the_query_unless_allow_partial_which_names_it(self):
        probe = os.path.join(TEST_IMAGES, "obama3.jpg")
        self.on_ray("for r in c.shards[3].replicas:\n"
                    "    ray.kill(ray.get_actor(r.name, namespace=c.name), no_restart=True)")
        try:
            p, _ = self.cluster_query(probe)
            self.assertEqual(p.returncode, 2)
            self.assertIn("shard(s) [3] did not answer", p.stderr)
            p, merged = self.cluster_query(probe, "--allow-partial")
            self.assertIn(p.returncode, (0, 1), p.stderr)
            self.assertTrue(merged["partial"])
            self.assertEqual(merged["shards_missing"], [3])
            self.assertIn("partial answer", p.stderr)
        finally:
            self.up()

    def corpora(self, shard=None):
        """The replicas' corpora, by node (r0 of an even shard is on n1, of an odd one on n2)."""
        return [os.path.join(self.tmp, n, f"shard{s}") for s in range(SHARDS) if shard in (None, s) for n in ("n1", "n2")]

    def current_cluster(self):
        """The cluster file as it is now (a move changes its shards)."""
        from facesearch_cluster import clusterfile
        return clusterfile.load(self.cluster_file)

    def replica_corpus(self, shard, index):
        return self.corpora(shard)[index if shard % 2 == 0 else 1 - index]

    def audited_request_ids(self, corpus, action):
        p = run([FACESEARCH, "--corpus", corpus, "audit", "--format", "jsonl"])
        return [json.loads(line)["params"].get("request_id") for line in p.stdout.splitlines()
                if json.loads(line)["action"] == action]

    def shard_of(self, image):
        sys.path.insert(0, os.path.join(REPO, "cluster"))
        from facesearch_cluster import clusterfile
        return clusterfile.load(self.cluster_file).shard_of(content_sha256(image))

    def on_ray(self, code):
        """Runs `code` in a Ray client of this cluster (c: the cluster, runtime, ray imported)."""
        p = run([sys.executable, "-c", f"from facesearch_cluster import clusterfile\nc = clusterfile.load({self.cluster_file!r})\n"
                 "clusterfile.use_auth(c)\nimport ray\nfrom facesearch_cluster import runtime\nruntime.connect(c)\n"
                 f"{code}"],
                cwd=os.path.join(REPO, "cluster"))
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return p.stdout

    def test_5_forget_reaches_every_replica_down_to_the_bytes(self):
        victim = self.images[0]
        needle = embedding_bytes(victim)
        holders = [d for n in ("n1", "n2") for d in [os.path.join(self.tmp, n)] if files_holding(d, needle)]
        self.assertEqual(len(holders), 2, "both replicas of its shard hold the embedding before the erasure")
        p = self.cli("forget", "--image", victim)
        self.assertEqual(p.returncode, 0, p.stderr)
        result = json.loads(p.stdout)
        self.assertTrue(result["complete"])
        self.assertEqual(result["quarantined"], [])
        self.assertEqual(len(result["receipts"]), 2 * SHARDS)
        self.assertEqual({r["seq"] for r in result["receipts"]}, {result["entry"]["seq"]})
        self.assertEqual(result["erased"]["images_erased"], 1)
        shard = self.shard_of(victim)
        mine = [r for r in result["receipts"] if r["shard"] == shard]
        self.assertEqual(mine[0]["live_digest"], mine[1]["live_digest"])
        self.assertEqual([a["erased"]["images_erased"] for r in mine for a in r["applied"]], [1, 1])
        for n in ("n1", "n2"):  # every file of every replica, the ledger's state files included
            self.assertEqual(files_holding(os.path.join(self.tmp, n), needle), [])
        for corpus in self.corpora(shard):
            self.assertIn(result["entry"]["request_id"], self.audited_request_ids(corpus, "forget"))
        p, merged = self.cluster_query(victim)
        self.assertNotIn(victim, [m["image"] for r in merged["results"] for m in r["matches"]])

    def test_6_a_replica_down_during_an_erasure_is_quarantined_until_it_has_replayed_the_ledger(self):
        victim = self.images[1]
        needle = embedding_bytes(victim)
        shard = self.shard_of(victim)
        down = f"shard{shard}-r0"  # the replica queries ask first
        down_corpus = self.replica_corpus(shard, 0)
        self.on_ray(f"ray.kill(ray.get_actor({down!r}, namespace=c.name), no_restart=True)")
        p = self.cli("forget", "--image", victim)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is NOT complete", p.stderr)
        result = json.loads(p.stdout)
        self.assertEqual(result["quarantined"], [down])
        self.assertEqual(result["erased"]["images_erased"], 1)  # by the other replica of its shard
        p = self.cli("ledger")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(json.loads(p.stdout)["status"][-1]["waiting_for"], [down])
        # Back without its replay (a node that rebooted): it still holds the erased face, so the
        # cluster must not ask it; the victim is found nowhere.
        self.on_ray(f"r = c.shards[{shard}].replicas[0]\n"
                    "h = runtime.ShardReplica.options(**runtime._actor_options(r, c)).remote("
                    "runtime.facesearch_argv(c, r.corpus), r.shard, r.index, r.corpus)\nray.get(h.pid.remote())")
        self.assertNotEqual(files_holding(down_corpus, needle), [])
        p, merged = self.cluster_query(victim, "--allow-partial")
        self.assertIn(p.returncode, (0, 1), p.stderr)
        self.assertEqual(merged["shards_missing"], [])
        self.assertNotIn(victim, [m["image"] for r in merged["results"] for m in r["matches"]])
        # Nor does it take an ingest: it would take what its sibling refuses (or, after an opt-out's
        # removal it missed, refuse what its sibling takes).
        p = self.cli("ingest", victim)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"replica {down} refused a batch", p.stderr)
        self.assertIn("quarantined: applied ledger entries up to", p.stderr)
        # `up` has it replay the ledger from its last applied seq; it rejoins.
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        state = json.loads(p.stdout)["replicas"][down]
        self.assertEqual((state["seq"], state["quarantined"]), (result["entry"]["seq"], None))
        for n in ("n1", "n2"):
            self.assertEqual(files_holding(os.path.join(self.tmp, n), needle), [])
        self.assertIn(result["entry"]["request_id"], self.audited_request_ids(down_corpus, "forget"))
        self.assertEqual(self.cli("ledger").returncode, 0)

    def test_7_an_optout_reaches_every_replica(self):
        person = os.path.join(TEST_IMAGES, "obama3.jpg")
        p = self.cli("optout", person, "--reason", "test request")
        self.assertEqual(p.returncode, 0, p.stderr)
        result = json.loads(p.stdout)
        self.assertTrue(result["complete"])
        self.assertGreater(result["erased"]["faces_erased"], 0)
        for corpus in self.corpora():
            listed = run([FACESEARCH, "--corpus", corpus, "optout", "list", "--json"]).stdout.splitlines()
            self.assertEqual(len(listed), 1, corpus)
            self.assertIn(result["entry"]["request_id"], self.audited_request_ids(corpus, "optout"))
        p, merged = self.cluster_query(person)
        self.assertEqual(p.returncode, 1, p.stderr)

    def optout_list(self, *extra):
        """`facesearch --cluster FILE optout list --json`: the binary hands it to facesearch-cluster optout-list."""
        runner = os.path.join(os.path.dirname(sys.executable), "facesearch-cluster")
        p = run([FACESEARCH, "--cluster", self.cluster_file, "optout", "list", "--json", *extra],
                env=dict(os.environ, FACESEARCH_CLUSTER=runner))
        return p, (json.loads(p.stdout) if p.stdout.strip() else None)

    def test_7b_optout_list_and_remove_across_the_cluster_through_the_ledger(self):
        # -t 0.01: this person's transformed copies stay in the corpora for the tests after this one
        person = os.path.join(TEST_IMAGES, "biden.jpg")
        needle = embedding_bytes(person)  # what the opt-out stores on every replica
        p = self.cli("optout", person, "-t", "0.01", "--reason", "test 7b", "--request-id", "rq-7b")
        self.assertIn(p.returncode, (0, 1), p.stderr)
        self.assertTrue(json.loads(p.stdout)["complete"])
        names = [f"shard{s}-r{i}" for s in range(SHARDS) for i in (0, 1)]
        p, listed = self.optout_list()
        self.assertEqual(p.returncode, 0, p.stderr)
        mine = next(o for o in listed["optouts"] if o["request_id"] == "rq-7b")
        self.assertEqual(sorted(mine["held_by"]), names)  # once, held by every replica
        self.assertEqual((mine["missing_from"], mine["unexpected_on"], mine["reason"]), ([], [], "test 7b"))
        self.assertTrue(listed["consistent"])
        self.assertNotIn(base64.b64encode(needle).decode(), p.stdout)
        for corpus in self.corpora():
            self.assertNotEqual(files_holding(corpus, needle), [], corpus)
        # A stray, added on one replica alone, is named; removed there, the list is whole again.
        stray_on = self.replica_corpus(0, 1)
        p = run([FACESEARCH, "--corpus", stray_on, "optout", "add", "--json", person, "-t", "0.01"])
        self.assertEqual(p.returncode, 0, p.stderr)
        stray_id = str(json.loads(p.stdout)["id"])
        p = self.cli("optout-list", "--json")
        self.assertEqual(p.returncode, 2)
        self.assertIn("UNEXPECTED", p.stderr)
        stray = [o for o in json.loads(p.stdout)["optouts"] if o["request_id"] is None]
        self.assertEqual([o["unexpected_on"] for o in stray], [["shard0-r1"]])
        self.assertEqual(run([FACESEARCH, "--corpus", stray_on, "optout", "remove", stray_id]).returncode, 0)
        # An id no replica holds: refused, nothing appended to the ledger.
        entries = len(json.loads(self.cli("ledger").stdout)["status"])
        p = self.cli("optout-remove", "rq-none")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no replica holds an opt-out added under request id rq-none", p.stderr)
        self.assertEqual(len(json.loads(self.cli("ledger").stdout)["status"]), entries)
        # Removed with one replica's actor down: not complete until `up` has it replay the entry.
        down = "shard1-r0"
        self.on_ray(f"ray.kill(ray.get_actor({down!r}, namespace=c.name), no_restart=True)")
        p = self.cli("optout-remove", "rq-7b")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is NOT complete", p.stderr)
        result = json.loads(p.stdout)
        self.assertEqual((result["quarantined"], result["erased"]), ([down], {"optouts_removed": 1}))
        self.assertEqual(result["entry"]["op"], "optout-remove")
        self.assertNotEqual(files_holding(self.replica_corpus(1, 0), needle), [])  # not yet replayed there
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["replicas"][down]["seq"], result["entry"]["seq"])
        self.assertEqual(self.cli("ledger").returncode, 0)
        p, listed = self.optout_list()
        self.assertIn(p.returncode, (0, 1), p.stderr)  # 1: none left (test 7's, when it ran, stays)
        self.assertNotIn("rq-7b", [o["request_id"] for o in listed["optouts"]])
        self.assertTrue(listed["consistent"])
        for n in ("n1", "n2"):  # every file of every replica: the opt-out's embedding is gone
            self.assertEqual(files_holding(os.path.join(self.tmp, n), needle), [])
        for corpus in self.corpora():
            self.assertIn(result["entry"]["request_id"], self.audited_request_ids(corpus, "optout"))

    def test_8_a_replica_whose_corpus_is_gone_is_rebuilt_from_its_sibling(self):
        erased = [embedding_bytes(image) for image in self.images[:2]]  # by tests 5 and 6
        head = len(json.loads(self.cli("ledger").stdout)["status"])
        shard = self.shard_of(self.images[0])
        lost, sibling = self.replica_corpus(shard, 0), self.replica_corpus(shard, 1)
        shutil.rmtree(lost)
        p = self.cli("rebuild-replica", "--shard", str(shard), "--replica", "0")
        self.assertEqual(p.returncode, 0, p.stderr)
        done = json.loads(p.stdout)
        self.assertEqual((done["source"], done["seq"]), (f"shard{shard}-r1", head))
        self.assertEqual([run([FACESEARCH, "--corpus", c, "verify"]).returncode for c in (lost, sibling)], [0, 0])
        receipts = [json.loads(run([FACESEARCH, "--corpus", c, "audit", "verify", "--json"]).stdout)
                    for c in (lost, sibling)]
        self.assertEqual(receipts[0]["live_digest"], receipts[1]["live_digest"])
        for probe in self.images[2:6]:
            with self.subTest(probe=probe):
                answers = [run([FACESEARCH, "--corpus", c, "query", "--no-collapse", "--format", "json", probe])
                           for c in (lost, sibling)]
                self.assertEqual(matches(json.loads(answers[0].stdout)), matches(json.loads(answers[1].stdout)))
        for needle in erased:  # erased faces stay erased: the copy holds none of their bytes
            self.assertEqual(files_holding(lost, needle), [])
        self.assertEqual(len(run([FACESEARCH, "--corpus", lost, "optout", "list", "--json"]).stdout.splitlines()), 1)
        for node in (os.path.dirname(lost), os.path.dirname(sibling)):  # no copy left behind
            self.assertEqual([f for f in os.listdir(node) if any(t in f for t in (".rebuild", ".snapshot", ".replaced"))], [])
        # `up` rebuilds by itself a replica that cannot replay: its corpus gone (its ledger state
        # kept, so it replays the next entry rather than failing on the opt-outs before it).
        other = self.shard_of(self.images[1])
        lost = self.replica_corpus(other, 1)
        for name in os.listdir(lost):
            if name != "cluster-ledger-applied.json":
                shutil.rmtree(os.path.join(lost, name)) if os.path.isdir(os.path.join(lost, name)) \
                    else os.remove(os.path.join(lost, name))
        # An erasure meanwhile: its sibling erases and keeps the tombstone; the replica without a
        # corpus reaches the entry with nothing to erase and would later take the image its sibling
        # refuses, so it does not confirm (quarantined) until `up` has rebuilt it. (Not in the
        # buckets test 9 moves.)
        c = self.current_cluster()
        held = set(sum(self.shas_by_replica([self.replica_corpus(other, 0)]).values(), []))  # not opted out
        late = next(i for i in reversed(self.images[21:]) if content_sha256(i) in held
                    and c.bucket_of(content_sha256(i)) not in (14, 15))
        erased.append(embedding_bytes(late))
        p = self.cli("forget", "--image", late)
        self.assertEqual(p.returncode, 2, p.stderr)
        result = json.loads(p.stdout)
        self.assertEqual((result["complete"], result["quarantined"]), (False, [f"shard{other}-r1"]))
        self.assertEqual(result["erased"]["images_erased"], 1)
        head += 1
        p = self.cli("ledger")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(json.loads(p.stdout)["status"][-1]["waiting_for"], [f"shard{other}-r1"])
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        state = json.loads(p.stdout)["replicas"][f"shard{other}-r1"]
        self.assertEqual((state["rebuilt_from"], state["seq"], state["quarantined"]), (f"shard{other}-r0", head, None))
        self.assertGreater(state["faces"], 0)
        for needle in erased:
            self.assertEqual(files_holding(self.replica_corpus(other, 1), needle), [])
        self.assertEqual(self.cli("ledger").returncode, 0)
        p, merged = self.cluster_query(os.path.join(TEST_IMAGES, "obama3.jpg"))
        self.assertEqual(p.returncode, 1, p.stderr)  # still opted out everywhere (test 7)

    def shas_by_replica(self, corpora):
        """{corpus: the SHA-256s of its images with faces} (`facesearch export`)."""
        out = {}
        for corpus in corpora:
            p = run([FACESEARCH, "--corpus", corpus, "export"])
            self.assertEqual(p.returncode, 0, p.stderr)
            out[corpus] = sorted({json.loads(line)["sha256"] for line in p.stdout.splitlines()})
        return out

    def test_9_buckets_moved_to_a_new_fifth_shard_are_answered_once_and_leave_the_old_shards_bytes(self):
        sys.path.insert(0, os.path.join(REPO, "cluster"))
        from facesearch_cluster import clusterfile
        old = clusterfile.load(self.cluster_file)
        sha = {image: content_sha256(image) for image in self.images}
        source = 3
        moved_buckets = (14, 15)  # shard 3's last two buckets go to a new shard 4 (map version + 1)
        held = set(sum(self.shas_by_replica(self.corpora(source)).values(), []))
        everything = set(sum(self.shas_by_replica(self.corpora()).values(), []))
        faces = sum(state["faces"] for name, state in self.up().items() if name.endswith("-r0"))
        moved = [i for i in self.images if old.bucket_of(sha[i]) in moved_buckets and sha[i] in held]
        self.assertGreaterEqual(len(moved), 3)
        # `keep` stays (its answers show the moved image once); `victim` is erased during the move
        # (after the first copy, before the switch, through the old map, which does not know shard 4).
        keep, victim = moved[0], moved[1]
        probes = [keep, victim, self.images[20]]
        wide = ("--top-k", "200", "--threshold", "0.6")  # every match: the victim's gone, the rest stay exact
        before = {probe: matches(self.cluster_query(probe, *wide)[1]) for probe in probes}
        if not json.loads(self.cli("ledger").stdout)["entries"]:  # only test_1 ran: one corpus's answers too
            for probe in probes:
                self.assertEqual(before[probe], matches(self.single_query(probe, *wide)))
        self.assertIn(sha[victim], [m[0] for m in before[victim]])
        needles = {image: embedding_bytes(image) for image in (keep, victim)}
        for corpus in self.corpora(source):
            self.assertNotEqual(files_holding(corpus, needles[keep]), [])
        with open(self.cluster_file) as f:
            doc = json.load(f)
        doc["map_version"] += 1
        doc["shards"][source]["buckets"] = [12, 13]
        new_corpora = [os.path.join(self.tmp, n, "shard4") for n in ("n2", "n1")]
        doc["shards"].append({"id": 4, "buckets": list(moved_buckets),
                              "replicas": [{"node": n, "corpus": c} for n, c in zip(("n2", "n1"), new_corpora)]})
        new_file = os.path.join(self.tmp, "cluster-v2.json")
        with open(new_file, "w") as f:
            json.dump(doc, f)
        out = self.on_ray(
            "import json\n"
            "copy, erased = runtime._copy_buckets, []\n"
            "def copy_then_erase(cluster, plan, ledger):\n"
            "    done = copy(cluster, plan, ledger)\n"
            "    if not erased:\n"
            f"        erased.append(runtime.erase(clusterfile.load({self.cluster_file!r}), 'forget', {{'images': [{victim!r}]}}))\n"
            "    return done\n"
            "runtime._copy_buckets = copy_then_erase\n"
            f"text = open({new_file!r}).read()\n"
            f"result = runtime.move(c, clusterfile.parse(text, {new_file!r}), text)\n"
            "print(json.dumps(dict(result, during=erased[0])))")
        result = json.loads(out.splitlines()[-1])
        self.assertEqual(result["during"]["erased"]["images_erased"], 1)  # on shard 3 only: shard 4 not in the old map
        self.assertEqual(len(result["during"]["receipts"]), 2 * SHARDS)
        forget = result["forget"]
        self.assertTrue(forget["complete"], forget)
        self.assertEqual(forget["erased"]["images_erased"], len(moved) - 1)
        self.assertEqual(len(forget["receipts"]), 2 * SHARDS + 2)
        self.assertEqual({r["shard"] for r in forget["receipts"] for a in r["applied"]
                          if a["seq"] == forget["entry"]["seq"] and a["erased"].get("images_erased")}, {source})
        self.assertEqual(result["copied"]["images"], len(moved) - 1)
        self.assertEqual(clusterfile.load(self.cluster_file).map_version, old.map_version + 1)  # switched
        # Every replica at the ledger's head; every image with faces on exactly one shard, the one
        # the new map gives its bucket, the same on both replicas.
        states = self.up()
        self.assertEqual(len(states), 2 * SHARDS + 2)
        self.assertEqual({s["quarantined"] for s in states.values()}, {None})
        self.assertEqual(self.cli("ledger").returncode, 0)
        new = clusterfile.load(self.cluster_file)
        owners = {}
        for shard in range(SHARDS + 1):
            corpora = self.corpora(shard) if shard < SHARDS else new_corpora
            by_replica = list(self.shas_by_replica(corpora).values())
            self.assertEqual(by_replica[0], by_replica[1])
            for digest in by_replica[0]:
                self.assertNotIn(digest, owners)
                self.assertEqual(new.shard_of(digest), shard)
                owners[digest] = shard
        self.assertEqual(set(owners), everything - {sha[victim]})
        self.assertEqual(sum(states[f"shard{s}-r0"]["faces"] for s in range(SHARDS + 1)),
                         faces - result["during"]["erased"]["faces_erased"])
        self.assertEqual({owners[sha[i]] for i in moved if i != victim}, {4})
        self.assertNotIn(sha[victim], owners)
        # The answers are those before the move less the erased image; the moved bytes left the old shard.
        for probe in probes:
            with self.subTest(probe=probe):
                p, merged = self.cluster_query(probe, *wide)
                self.assertIn(p.returncode, (0, 1), p.stderr)
                self.assertEqual(matches(merged), [m for m in before[probe] if m[0] != sha[victim]])
        self.assertIn(4, {m["shard"] for r in self.cluster_query(keep)[1]["results"] for m in r["matches"]})
        for corpus in self.corpora(source):
            self.assertEqual(files_holding(corpus, needles[keep]), [])
        for corpus in new_corpora:
            self.assertNotEqual(files_holding(corpus, needles[keep]), [])
        for n in ("n1", "n2"):  # erased during the move: on both shards, down to the bytes
            self.assertEqual(files_holding(os.path.join(self.tmp, n), needles[victim]), [])
        p = self.cli("move", "--to", new_file)  # run again: finished
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("finished by an earlier run", p.stderr)
        for n in ("n1", "n2"):  # the export on the source's node and the pulled copies are gone
            self.assertEqual([f for f in os.listdir(os.path.join(self.tmp, n)) if ".snapshot-" in f or ".import-" in f], [])
        from facesearch_cluster import ledger
        with ledger.exclusive(self.cluster_file, "move --to elsewhere.json"):  # another move under way
            p = self.cli("move", "--to", new_file)
        self.assertEqual(p.returncode, 2)
        self.assertIn("`facesearch-cluster move --to elsewhere.json` (pid", p.stderr)


    def test_9a_verify_audit_and_compare_run_on_every_replica(self):
        self.up()
        p = self.cli("verify", "--format", "json")
        self.assertEqual(p.returncode, 0, p.stderr)
        result = json.loads(p.stdout)
        self.assertTrue(result["healthy"])
        cluster = self.current_cluster()  # test_9 may have added a fifth shard
        replicas = cluster.replicas()
        self.assertEqual(len(result["replicas"]), len(replicas))
        self.assertEqual([s["agree"] for s in result["shards"]], [True] * len(cluster.shards))
        for r in replicas:  # each replica's digest is its own corpus's
            mine = run([FACESEARCH, "--corpus", r.corpus, "audit", "verify", "--json"])
            self.assertEqual(result["replicas"][r.name]["live_digest"], json.loads(mine.stdout)["live_digest"])
        # A cluster query's request id finds its records: one per shard, on the replica that answered.
        probe = os.path.join(TEST_IMAGES, "obama3.jpg")
        self.assertIn(self.cluster_query(probe, "--request-id", "q-9a")[0].returncode, (0, 1))
        p = self.cli("audit", "--request-id", "q-9a", "--format", "jsonl")
        self.assertEqual(p.returncode, 0, p.stderr)
        records = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(sorted(r["shard"] for r in records), sorted({r.shard for r in replicas}))
        self.assertEqual({r["action"] for r in records}, {"query"})
        self.assertEqual(self.cli("audit", "--request-id", "no-such-request").returncode, 1)
        # compare: the answer of `facesearch compare` with the corpus's model, recorded under its id.
        a, b = probe, os.path.join(TEST_IMAGES, "obama.jpg")
        p = self.cli("compare", a, b, "--json", "--request-id", "c-9a")
        self.assertEqual(p.returncode, 0, p.stderr)
        answer = json.loads(p.stdout)
        single = json.loads(run([FACESEARCH, "--corpus", self.single, "compare", "--json", a, b]).stdout)
        self.assertEqual([answer[k] for k in ("distance", "fmr", "same", "model")],
                         [single[k] for k in ("distance", "fmr", "same", "model")])
        self.assertEqual((answer["a"]["path"], answer["replica"]), (a, "shard0-r0"))
        records = [json.loads(line) for line in self.cli("audit", "--request-id", "c-9a", "-f", "jsonl").stdout.splitlines()]
        self.assertEqual([(r["replica"], r["action"]) for r in records], [("shard0-r0", "compare")])
        p = self.cli("audit", "verify")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"cluster audit chains intact: {len(replicas)} replicas", p.stdout)
        # A replica whose corpus is gone: verify names it and its shard (exit 2); rebuilt from its
        # sibling (pulled in chunks), the cluster verifies again and no copy is left behind.
        shutil.rmtree(self.replica_corpus(2, 1))
        p = self.cli("verify")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertRegex(p.stdout, r"shard2-r1 .* problem: no corpus at")
        self.assertIn("shard 2: replicas DISAGREE", p.stdout)
        self.assertEqual(self.cli("rebuild-replica", "--shard", "2", "--replica", "1").returncode, 0)
        p = self.cli("verify", "--format", "json")
        self.assertEqual(p.returncode, 0, p.stdout)
        for node in ("n1", "n2"):
            self.assertEqual([f for f in os.listdir(os.path.join(self.tmp, node))
                              if any(t in f for t in (".rebuild", ".snapshot", ".replaced"))], [])

    def test_9b_up_while_a_node_is_down_waits_then_names_its_replicas_and_start_node(self):
        # The cluster's own answer before the outage (the earlier tests erased and opted out some faces).
        probe = os.path.join(TEST_IMAGES, "biden.jpg")
        on_n2 = sorted(r.name for r in self.current_cluster().replicas() if r.node == "n2")
        before = self.up()
        p, merged = self.cluster_query(probe)
        self.assertEqual(p.returncode, 0, p.stderr)
        expected = matches(merged)
        kill(with_descendants(self.daemons["n2"]))
        started = time.monotonic()
        p = self.cli("up", "--wait", "20")
        self.assertGreaterEqual(time.monotonic() - started, 20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f"replica(s) {on_n2} did not start in 20 s", p.stderr)
        self.assertIn("is node(s) ['n2'] up (`facesearch-cluster start-node`)? then run `up` again", p.stderr)
        # The other node's replicas are unharmed: the same actors, answering every shard.
        p, merged = self.cluster_query(probe)
        self.assertEqual((p.returncode, merged["partial"]), (0, False), p.stderr)
        self.assertEqual(matches(merged), expected)
        self.start_node("n2")
        states = self.up()
        self.assertEqual({name: s["quarantined"] for name, s in states.items()}, {name: None for name in before})
        self.assertEqual({name: states[name]["pid"] for name in before if name not in on_n2},
                         {name: before[name]["pid"] for name in before if name not in on_n2})
        p, merged = self.cluster_query(probe)
        self.assertEqual(matches(merged), expected)

    def test_9c_a_replica_of_another_embedding_mode_is_named_by_verify_and_rebuilt_by_up(self):
        # Someone re-made a replica's corpus by hand with `--embedding flip`: `facesearch verify`
        # finds it healthy, but it can take none of the cluster's (plain) imports or probes.
        corpus = self.replica_corpus(1, 1)
        shutil.rmtree(corpus)
        p = run([FACESEARCH, "--corpus", corpus, "index", "--embedding", "flip", self.images[30]])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.cli("verify")
        self.assertEqual(p.returncode, 2, p.stdout)
        self.assertIn("shard1-r1", p.stdout)
        self.assertIn("its corpus holds flip embeddings of", p.stdout)
        mine = next(i for i in self.images[40:] if self.shard_of(i) == 1)
        # At the ledger's head (its sibling's state copied), so what refuses the batch is the mode,
        # not the quarantine of a replica behind the ledger.
        state = os.path.join(self.replica_corpus(1, 0), "cluster-ledger-applied.json")
        if os.path.exists(state):  # none while the ledger is empty (only test 1 ran)
            shutil.copy(state, corpus)
        p = self.cli("ingest", mine)  # its batch is refused there, with facesearch's reason
        self.assertEqual(p.returncode, 2)
        self.assertIn("replica shard1-r1 refused a batch", p.stderr)
        self.assertIn("holds 'plain' embeddings and the corpus 'flip' ones", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        state = json.loads(p.stdout)["replicas"]["shard1-r1"]
        self.assertEqual((state["rebuilt_from"], state["quarantined"]), ("shard1-r0", None))
        self.assertEqual(json.loads(run([FACESEARCH, "--corpus", corpus, "info", "--json"]).stdout)["embedding_mode"],
                         "plain")
        self.assertEqual(self.cli("verify").returncode, 0)


    def test_9d_up_restarts_an_actor_left_by_another_version_of_facesearch_cluster(self):
        # Detached actors outlive their clients: an upgrade leaves actors running the old code,
        # whose methods the new client's calls would not fit. Stand-in: an actor of another class.
        old = int(self.on_ray(
            "import os, time\n"
            "r = c.shards[2].replicas[0]\n"
            "ray.kill(ray.get_actor(r.name, namespace=c.name), no_restart=True)\n"
            "@ray.remote(num_cpus=0)\n"
            "class ShardReplica:  # an older release's: no code(), a pid()\n"
            "    def pid(self):\n"
            "        return os.getpid()\n"
            "while True:\n"
            "    try:\n"
            "        print(ray.get(ShardReplica.options(**runtime._actor_options(r, c)).remote().pid.remote()))\n"
            "        break\n"
            "    except ray.exceptions.RayError:\n"
            "        time.sleep(0.5)  # the killed actor's name is not free yet\n").splitlines()[-1])
        p = self.cli("up")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("restarted the actor of shard2-r0: it ran another version of facesearch-cluster", p.stderr)
        self.assertNotEqual(json.loads(p.stdout)["replicas"]["shard2-r0"]["pid"], old)
        p, merged = self.cluster_query(os.path.join(TEST_IMAGES, "biden.jpg"))
        self.assertEqual((p.returncode, merged["partial"]), (0, False), p.stderr)


    def test_9e_a_client_without_the_clusters_token_is_refused(self):
        other = os.path.join(self.tmp, "other-token")
        with open(os.open(other, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(os.urandom(32).hex())
        with open(self.cluster_file) as f:
            doc = json.load(f)
        for name, token in (("wrong-token.json", other), ("no-token.json", None)):
            with self.subTest(name):
                copy = os.path.join(self.tmp, name)
                with open(copy, "w") as f:
                    json.dump(dict(doc, auth_token_file=token) if token else
                              {k: v for k, v in doc.items() if k != "auth_token_file"}, f)
                p = run(CLI + ["query", "--cluster", copy, os.path.join(TEST_IMAGES, "biden.jpg")],
                        cwd=os.path.join(REPO, "cluster"), timeout=180)
                self.assertEqual(p.returncode, 2, p.stderr[-2000:])
                self.assertIn("cannot reach the Ray cluster", p.stderr)
                if token:
                    self.assertIn(f"or {other} does not hold the cluster's token", p.stderr)


if __name__ == "__main__":
    unittest.main()
