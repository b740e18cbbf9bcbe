"""The cluster ledger, the replicas' replay and the erasure verdict: no Ray needed (ctest runs these
with the system python3, label fast)."""

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import cli, clusterfile, ledger  # noqa: E402
from tests.test_clusterfile import good  # noqa: E402


def cluster():
    return clusterfile.parse(json.dumps(good()), "c.json")  # shard0-r0, shard0-r1, shard1-r0, shard1-r1


class LedgerFileTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "cluster.json.ledger")
        self.ledger = ledger.Ledger(self.path)

    def tearDown(self):
        self.dir.cleanup()

    def fill(self, n=3):
        return [self.ledger.append("forget", {"images": [f"/srv/{i}.jpg"]}) for i in range(n)]

    def rewrite(self, entries):
        with open(self.path, "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in entries)

    def test_entries_are_numbered_and_chained_from_the_genesis_hash(self):
        self.assertEqual(self.ledger.entries(), [])
        self.assertEqual(self.ledger.head(), (0, ledger.GENESIS))
        made = self.fill()
        made.append(self.ledger.append("optout", {"photo": "/p.jpg", "photo_sha256": "ab"}, request_id="case-7"))
        got = self.ledger.entries()
        self.assertEqual(got, made)
        self.assertEqual([e["seq"] for e in got], [1, 2, 3, 4])
        self.assertEqual(got[0]["prev_hash"], ledger.GENESIS)
        self.assertEqual([e["prev_hash"] for e in got[1:]], [e["hash"] for e in got[:-1]])
        self.assertEqual(got[3]["request_id"], "case-7")
        self.assertEqual(len({e["request_id"] for e in got}), 4)  # fresh ids otherwise
        self.assertEqual(self.ledger.head(), (4, got[3]["hash"]))
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_an_edited_removed_or_reordered_entry_is_named(self):
        entries = self.fill()
        edited = [dict(e) for e in entries]
        edited[1]["selector"] = {"images": ["/srv/other.jpg"]}
        self.rewrite(edited)
        with self.assertRaisesRegex(ledger.LedgerError, "entry 2 is altered or off the chain"):
            self.ledger.entries()
        self.rewrite(entries[1:])
        with self.assertRaisesRegex(ledger.LedgerError, "entry 1 is missing or out of order"):
            self.ledger.entries()
        self.rewrite([entries[0], entries[2], entries[1]])
        with self.assertRaisesRegex(ledger.LedgerError, "entry 2 is missing or out of order"):
            self.ledger.entries()
        with open(self.path, "w") as f:
            f.write("{not json\n")
        with self.assertRaisesRegex(ledger.LedgerError, "line 1 is not JSON"):
            self.ledger.append("forget", {"images": []})

    def head_file(self):
        with open(ledger.head_path(self.path)) as f:
            return json.load(f)

    def test_every_append_writes_the_head_file_and_a_query_reads_only_it(self):
        made = self.fill()
        self.assertEqual(self.head_file(), {"seq": 3, "hash": made[2]["hash"],
                                            "ledger_bytes": os.path.getsize(self.path)})
        self.assertEqual(os.stat(ledger.head_path(self.path)).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(ledger.head_path(self.path) + ".tmp"))
        # Damage an entry without changing the ledger's length: the full read refuses it, the head
        # read never looks at the entries (only at the length).
        with open(self.path, "r+b") as f:
            f.seek(30)
            byte = f.read(1)
            f.seek(30)
            f.write(b"x" if byte != b"x" else b"y")
        with self.assertRaises(ledger.LedgerError):
            self.ledger.entries()
        self.assertEqual(self.ledger.read_head(), {"seq": 3, "hash": made[2]["hash"], "note": None})

    def test_a_missing_torn_or_stale_head_file_falls_back_to_the_ledger_and_says_so(self):
        made = self.fill()
        head = ledger.head_path(self.path)
        whole = {"seq": 3, "hash": made[2]["hash"]}
        with open(head, "r+") as f:
            f.truncate(len(f.read()) // 2)  # torn
        got = self.ledger.read_head()
        self.assertEqual({k: got[k] for k in whole}, whole)
        self.assertRegex(got["note"], "is unreadable or torn .*: read the whole ledger instead \\(3 entries\\)")
        os.remove(head)
        self.assertIn("is missing: read the whole ledger", self.ledger.read_head()["note"])
        # A crash after the ledger's sync, before the head's rename: the head is one entry behind,
        # and the ledger's length gives it away.
        self.ledger.append("forget", {"images": ["/srv/4.jpg"]})
        with open(head) as f:
            stale = f.read()
        fourth = self.ledger.append("forget", {"images": ["/srv/5.jpg"]})
        with open(head, "w") as f:
            f.write(stale)
        got = self.ledger.read_head()
        self.assertEqual((got["seq"], got["hash"]), (5, fourth["hash"]))
        self.assertIn("(an append under way, or one interrupted before the head was written)", got["note"])

    def test_up_and_ledger_rewrite_a_bad_head_file_and_refuse_one_ahead_of_the_ledger(self):
        self.assertEqual(self.ledger.check_head(), ([], None))  # no ledger yet: nothing to check
        made = self.fill()
        head = ledger.head_path(self.path)
        self.assertEqual(self.ledger.check_head(), (made, None))
        os.remove(head)
        entries, note = self.ledger.check_head()
        self.assertEqual(entries, made)
        self.assertIn("is missing: rewritten from the ledger (3 entries)", note)
        self.assertEqual(self.ledger.read_head(), {"seq": 3, "hash": made[2]["hash"], "note": None})
        # The ledger lost its last entry (restored from an old copy): the head file says so.
        self.rewrite(made[:2])
        with self.assertRaisesRegex(ledger.LedgerError, "names entry 3 .* does not hold: the ledger lost"):
            self.ledger.check_head()
        os.remove(self.path)
        with self.assertRaisesRegex(ledger.LedgerError, "is missing but .* says it held 3 entries"):
            self.ledger.read_head()

    def test_an_unknown_operation_is_refused(self):
        with self.assertRaisesRegex(ledger.LedgerError, "unknown ledger operation 'delete'"):
            self.ledger.append("delete", {})
        self.assertEqual(self.ledger.entries(), [])


class ReplayTest(unittest.TestCase):
    def setUp(self):
        entry = None
        self.entries = []
        for i in range(4):
            entry = ledger.make_entry(entry, "forget", {"images": [f"/{i}.jpg"]})
            self.entries.append(entry)

    def replay(self, state, fail_at=None):
        applied, saved = [], []

        def apply(e):
            if e["seq"] == fail_at:
                raise RuntimeError("forget failed: disk full")
            applied.append(e["seq"])
            return {"faces_erased": 1}

        return ledger.replay(self.entries, state, apply, saved.append), applied, saved

    def test_a_replica_applies_only_what_it_missed_in_order_and_stops_at_the_first_failure(self):
        state = {"seq": 1, "hash": self.entries[0]["hash"]}
        result, applied, saved = self.replay(state, fail_at=3)
        self.assertEqual(applied, [2])
        self.assertEqual(saved, [{"seq": 2, "hash": self.entries[1]["hash"]}])
        self.assertEqual(result["seq"], 2)
        self.assertIn("entry 3 (forget, request", result["error"])
        self.assertIn("disk full", result["error"])
        self.assertEqual(ledger.quarantine_reason(result["seq"], 4),
                         "quarantined: applied ledger entries up to 2 of 4 (`facesearch-cluster up` replays the rest)")
        # Once the cause is fixed, the replay resumes where it stopped and the replica rejoins.
        result, applied, _ = self.replay({"seq": 2, "hash": self.entries[1]["hash"]})
        self.assertEqual(applied, [3, 4])
        self.assertEqual((result["seq"], result["hash"], result["error"]), (4, self.entries[3]["hash"], None))
        self.assertEqual([a["seq"] for a in result["applied"]], [3, 4])
        self.assertIsNone(ledger.quarantine_reason(result["seq"], 4))
        # Up to date: nothing to apply.
        result, applied, _ = self.replay({"seq": 4, "hash": self.entries[3]["hash"]})
        self.assertEqual((applied, result["applied"]), ([], []))

    def test_a_replica_of_another_ledger_is_refused(self):
        with self.assertRaisesRegex(ledger.LedgerError, "not this ledger's"):
            ledger.pending(self.entries, {"seq": 2, "hash": "f" * 64})
        with self.assertRaisesRegex(ledger.LedgerError, "applied entry 9 but the ledger has 4"):
            ledger.pending(self.entries, {"seq": 9, "hash": "f" * 64})
        self.assertEqual(ledger.pending(self.entries, {"seq": 0, "hash": ledger.GENESIS}), self.entries)

    def test_a_replica_is_sent_the_tail_of_the_ledger_from_the_entry_it_applied_last(self):
        at2 = {"seq": 2, "hash": self.entries[1]["hash"]}
        self.assertEqual(ledger.tail(self.entries, 2), self.entries[1:])
        self.assertEqual(ledger.tail(self.entries, 0), self.entries)
        self.assertEqual(ledger.tail(self.entries, 4), self.entries[3:])
        self.assertEqual(ledger.pending(ledger.tail(self.entries, 2), at2), self.entries[2:])
        self.assertEqual(ledger.pending(ledger.tail(self.entries, 4), {"seq": 4, "hash": self.entries[3]["hash"]}), [])
        # The tail's first entry is still checked against the replica's hash.
        with self.assertRaisesRegex(ledger.LedgerError, "not this ledger's"):
            ledger.pending(ledger.tail(self.entries, 2), {"seq": 2, "hash": "f" * 64})
        # A tail cut for a replica further on than this one (its corpus lost since): refused, not skipped.
        with self.assertRaisesRegex(ledger.LedgerError, "applied entries up to 1, but was sent the ledger from entry 2"):
            ledger.pending(ledger.tail(self.entries, 2), {"seq": 1, "hash": self.entries[0]["hash"]})
        with self.assertRaisesRegex(ledger.LedgerError, "up to 0, but was sent the ledger from entry 2"):
            ledger.pending(ledger.tail(self.entries, 2), {"seq": 0, "hash": ledger.GENESIS})
        # The replay of a tail applies the same entries as the replay of the whole ledger.
        whole, _, _ = self.replay(at2)
        self.assertEqual(ledger.replay(ledger.tail(self.entries, 2), at2, lambda e: {}, lambda s: None)["seq"],
                         whole["seq"])

    def test_the_state_file_survives_a_restart_and_a_damaged_one_is_refused(self):
        with tempfile.TemporaryDirectory() as corpus:
            self.assertEqual(ledger.read_state(corpus), {"seq": 0, "hash": ledger.GENESIS})
            ledger.write_state(corpus, {"seq": 3, "hash": "ab" * 32, "applied": []})
            self.assertEqual(ledger.read_state(corpus), {"seq": 3, "hash": "ab" * 32})
            self.assertEqual(os.listdir(corpus), [ledger.STATE_FILE])  # no temporary file left
            with open(os.path.join(corpus, ledger.STATE_FILE), "w") as f:
                f.write('{"seq": "3"}')
            with self.assertRaisesRegex(ledger.LedgerError, "malformed: rebuild the replica"):
                ledger.read_state(corpus)


def receipt(seq, digest="d1", corpus=True):
    # "corpus" is the replica's path in a real receipt (erase adds it): the flag has its own name.
    return {"seq": seq, "live_digest": digest, "holds_corpus": corpus, "corpus": "/srv/fs/s0"}


def ledger_empty_digest():
    return hashlib.sha256(b"").hexdigest()


class LockTest(unittest.TestCase):
    def test_a_second_move_or_rebuild_is_refused_while_one_holds_the_cluster_lock_naming_it(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cluster.json")
            with ledger.exclusive(path, "move --to cluster-v2.json"):
                self.assertEqual(os.stat(ledger.lock_path(path)).st_mode & 0o777, 0o600)
                with self.assertRaisesRegex(ledger.ClusterBusy, r"`facesearch-cluster move --to cluster-v2.json` "
                                                                 rf"\(pid {os.getpid()} on .*holds the cluster's lock"):
                    with ledger.exclusive(path, "rebuild-replica --shard 0 --replica 1"):
                        self.fail("two holders at once")
            with ledger.exclusive(path, "rebuild-replica --shard 0 --replica 1"):  # released: taken again
                pass
            with self.assertRaises(RuntimeError):  # an exception inside releases it too
                with ledger.exclusive(path, "move --to cluster-v2.json"):
                    raise RuntimeError("the move failed")
            with ledger.exclusive(path, "move --to cluster-v2.json"):
                pass


class VerdictTest(unittest.TestCase):
    def test_an_erasure_is_complete_only_when_every_replica_reached_it_and_siblings_agree(self):
        c = cluster()
        every = {r.name: receipt(5) for r in c.replicas()}
        self.assertEqual(ledger.evaluate(c, 5, every), {"complete": True, "quarantined": [], "shards_disagreeing": []})
        silent = dict(every)
        del silent["shard1-r0"]
        behind = dict(every, **{"shard0-r1": receipt(4)})
        self.assertEqual(ledger.evaluate(c, 5, silent)["quarantined"], ["shard1-r0"])
        self.assertEqual(ledger.evaluate(c, 5, behind)["quarantined"], ["shard0-r1"])
        self.assertFalse(ledger.evaluate(c, 5, behind)["complete"])
        split = dict(every, **{"shard1-r1": receipt(5, "d2")})
        self.assertEqual(ledger.evaluate(c, 5, split),
                         {"complete": False, "quarantined": [], "shards_disagreeing": [1]})

    def test_a_replica_without_a_corpus_does_not_confirm_an_erasure_while_its_sibling_holds_one(self):
        c = cluster()
        empty = receipt(5, ledger_empty_digest(), corpus=False)
        # Its sibling erased the shard's only image: both hold no live face, yet only the sibling
        # holds the tombstone.
        lone = dict({r.name: receipt(5) for r in c.replicas()}, **{"shard0-r0": empty,
                                                                   "shard0-r1": receipt(5, ledger_empty_digest())})
        self.assertEqual(ledger.evaluate(c, 5, lone), {"complete": False, "quarantined": ["shard0-r0"],
                                                       "shards_disagreeing": []})
        # A new shard before its first import: no corpus on either replica, nothing to copy.
        fresh = dict(lone, **{"shard0-r1": empty})
        self.assertTrue(ledger.evaluate(c, 5, fresh)["complete"])
        # A receipt from an actor older than the "holds_corpus" field counts as holding one.
        old = dict(lone, **{"shard0-r0": {"seq": 5, "live_digest": ledger_empty_digest()}})
        self.assertTrue(ledger.evaluate(c, 5, old)["complete"])

    def test_only_a_replica_whose_corpus_is_gone_or_broken_beside_a_healthy_sibling_is_beyond_replay(self):
        c = cluster()
        healthy, gone = {"corpus": True, "problems": []}, {"corpus": False, "problems": ["no corpus at /srv/s0"]}
        broken = {"corpus": True, "problems": ["index holds 7 vectors, the database 9 faces"]}
        self.assertEqual(ledger.beyond_replay(c, {r.name: healthy for r in c.replicas()}), {})
        # A new cluster before its first ingest: no corpus anywhere, nothing to copy.
        self.assertEqual(ledger.beyond_replay(c, {r.name: gone for r in c.replicas()}), {})
        state = {"shard0-r0": gone, "shard0-r1": healthy, "shard1-r0": healthy, "shard1-r1": broken}
        self.assertEqual(ledger.beyond_replay(c, state), {"shard0-r0": "no corpus at /srv/s0",
                                                          "shard1-r1": "index holds 7 vectors, the database 9 faces"})
        # Both replicas of a shard broken: neither is a source; they replay as they are.
        self.assertEqual(ledger.beyond_replay(c, dict(state, **{"shard0-r1": broken})),
                         {"shard1-r1": "index holds 7 vectors, the database 9 faces"})

    def test_the_ledger_command_says_which_replicas_have_not_confirmed_an_entry(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cluster.json")
            with open(path, "w") as f:
                json.dump(good(), f)
            book = ledger.Ledger(ledger.ledger_path(path))
            first = book.append("forget", {"images": ["/a.jpg"]})
            second = book.append("optout", {"photo": "/p.jpg", "photo_sha256": "ab", "threshold": None})
            receipts = ledger.receipts_path(path)
            ledger.append_receipts(receipts, first["request_id"], {n: receipt(1) for n in
                                                                   ("shard0-r0", "shard0-r1", "shard1-r0", "shard1-r1")})
            ledger.append_receipts(receipts, second["request_id"], {n: receipt(2) for n in
                                                                    ("shard0-r0", "shard0-r1", "shard1-r1")})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli.main(["ledger", "--cluster", path])
            report = json.loads(out.getvalue())
            self.assertEqual(code, cli.EXIT_ERROR)
            self.assertEqual(report["entries"], 2)
            self.assertEqual([(r["seq"], r["done"], r["waiting_for"]) for r in report["status"]],
                             [(1, True, []), (2, False, ["shard1-r0"])])
            # A receipt without a corpus while its sibling holds one does not confirm.
            ledger.append_receipts(receipts, second["request_id"], {"shard1-r0": receipt(2, corpus=False)})
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(cli.main(["ledger", "--cluster", path]), cli.EXIT_ERROR)
            ledger.append_receipts(receipts, second["request_id"], {"shard1-r0": receipt(2)})
            with contextlib.redirect_stdout(io.StringIO()):
                self.assertEqual(cli.main(["ledger", "--cluster", path]), cli.EXIT_MATCH)


if __name__ == "__main__":
    unittest.main()
