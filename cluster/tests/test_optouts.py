"""Opt-outs across the cluster (optouts.py): the merged list, the removal's ledger entry, its replay
and verdict, and what `optout-list` / `optout-remove` print and exit with. No Ray needed."""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import cli, ledger, optouts  # noqa: E402
from tests.test_ledger import cluster  # noqa: E402  (shard0-r0, shard0-r1, shard1-r0, shard1-r1)


def entries_with(*ops):
    """A chained ledger of ("optout", request id) and ("optout-remove", request id) entries."""
    out, entry = [], None
    for op, rid in ops:
        selector = {"photo": "/p.jpg", "photo_sha256": "ab", "threshold": None, "reason": f"ticket {rid}"} \
            if op == "optout" else {"optout_request_id": rid}
        entry = ledger.make_entry(entry, op, selector, request_id=rid if op == "optout" else None)
        out.append(entry)
    return out


def row(rid, row_id=1, at="2026-12-05T00:00:00Z"):
    return {"id": row_id, "threshold": 0.6, "added_at": at, "reason": f"ticket {rid}", "request_id": rid}


def answer(seq, *rows):
    return {"seq": seq, "optouts": list(rows)}


class MergeTest(unittest.TestCase):
    def test_every_replica_holding_every_opt_out_lists_each_once_with_its_row_id_per_replica(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"), ("optout", "rq-b"))
        answers = {r.name: answer(2, row("rq-a", 1 + i), row("rq-b", 7 + i)) for i, r in enumerate(c.replicas())}
        merged = optouts.merge(c, entries, answers)
        self.assertTrue(merged["consistent"])
        self.assertEqual([o["request_id"] for o in merged["optouts"]], ["rq-a", "rq-b"])
        a = merged["optouts"][0]
        self.assertEqual(a["held_by"], {"shard0-r0": 1, "shard0-r1": 2, "shard1-r0": 3, "shard1-r1": 4})
        self.assertEqual(a["ledger"], {"added": 1, "removed": None})
        self.assertEqual((a["missing_from"], a["unexpected_on"], a["pending_on"]), ([], [], []))
        self.assertNotIn("embedding", json.dumps(merged))

    def test_a_replica_lacking_one_or_holding_a_stray_is_named_and_one_behind_is_pending_not_missing(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"), ("optout", "rq-b"))
        answers = {"shard0-r0": answer(2, row("rq-a"), row("rq-b", 2)),
                   "shard0-r1": answer(2, row("rq-a")),  # lost rq-b
                   "shard1-r0": answer(1, row("rq-a")),  # behind: has not applied rq-b yet
                   "shard1-r1": answer(2, row("rq-a"), row("rq-b", 2), row(None, 3, "2026-12-06T00:00:00Z"))}
        merged = optouts.merge(c, entries, answers)
        self.assertFalse(merged["consistent"])
        by_key = {o["request_id"]: o for o in merged["optouts"]}
        self.assertEqual(by_key["rq-b"]["missing_from"], ["shard0-r1"])
        self.assertEqual(by_key["rq-b"]["pending_on"], ["shard1-r0"])
        stray = by_key[None]  # added on one replica, outside the ledger: listed last
        self.assertIs(merged["optouts"][-1], stray)
        self.assertEqual((stray["held_by"], stray["unexpected_on"], stray["ledger"]), ({"shard1-r1": 3}, ["shard1-r1"], None))
        lines = "\n".join(optouts.table_lines(merged))
        self.assertIn("MISSING on shard0-r1", lines)
        self.assertIn("UNEXPECTED on shard1-r1", lines)
        self.assertIn("pending replay on shard1-r0", lines)

    def test_a_removal_lists_nothing_once_applied_and_a_holder_behind_it_as_pending(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"), ("optout-remove", "rq-a"))
        done = {r.name: answer(2) for r in c.replicas()}
        self.assertEqual(optouts.merge(c, entries, done)["optouts"], [])
        late = dict(done, **{"shard1-r1": answer(1, row("rq-a"))})
        merged = optouts.merge(c, entries, late)
        self.assertTrue(merged["consistent"])  # it holds what its seq says; `up` replays the rest
        self.assertEqual(merged["optouts"][0]["pending_on"], ["shard1-r1"])
        kept = dict(done, **{"shard1-r1": answer(2, row("rq-a"))})  # applied the removal, kept the row
        self.assertEqual(optouts.merge(c, entries, kept)["optouts"][0]["unexpected_on"], ["shard1-r1"])

    def test_an_opt_out_no_replica_holds_is_still_listed_and_a_silent_replica_is_reported(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"))
        answers = {r.name: answer(1) for r in c.replicas()}
        answers["shard0-r0"] = {"error": "shard0-r0: RayActorError: died"}
        merged = optouts.merge(c, entries, answers)
        self.assertEqual(merged["failed"], {"shard0-r0": "shard0-r0: RayActorError: died"})
        self.assertEqual(merged["optouts"][0]["missing_from"], ["shard0-r1", "shard1-r0", "shard1-r1"])
        self.assertEqual(merged["replicas_answered"], 3)


class RemovalTest(unittest.TestCase):
    def test_a_removal_is_refused_unless_a_replica_holds_it_saying_what_the_ledger_knows(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"), ("optout", "rq-b"), ("optout-remove", "rq-b"))
        merged = optouts.merge(c, entries, {r.name: answer(3, row("rq-a")) for r in c.replicas()})
        self.assertIsNone(optouts.removal_refused("rq-a", entries, merged))
        self.assertIn("removed by ledger entry 3", optouts.removal_refused("rq-b", entries, merged))
        unknown = optouts.removal_refused("rq-zz", entries, merged)
        self.assertIn("no replica holds an opt-out added under request id rq-zz", unknown)
        self.assertIn("nothing was appended to the ledger", unknown)
        lost = optouts.merge(c, entries_with(("optout", "rq-a")), {r.name: answer(1) for r in c.replicas()})
        self.assertIn("ledger entry 1 added it", optouts.removal_refused("rq-a", entries, lost))

    def test_the_removal_is_a_chained_ledger_entry_every_replica_replays_in_order_and_a_missing_one_is_quarantined(self):
        with tempfile.TemporaryDirectory() as d:
            book = ledger.Ledger(os.path.join(d, "c.json.ledger"))
            added = book.append("optout", {"photo": "/p.jpg", "photo_sha256": "ab", "threshold": None, "reason": ""})
            removal = book.append(optouts.REMOVE_OP, {"optout_request_id": added["request_id"]})
            entries = book.entries()  # the chain checks, with the new operation
        self.assertEqual([e["op"] for e in entries], ["optout", "optout-remove"])
        self.assertTrue(all(ledger.erases_on(removal, shard) for shard in (0, 1)))  # every shard holds every opt-out
        held = set()

        def apply(e):  # a replica's side: add, then remove by the adding entry's request id
            if e["op"] == "optout":
                held.add(e["request_id"])
                return {"id": 1, "faces_erased": 0, "images_erased": 0}
            held.discard(e["selector"]["optout_request_id"])
            return {"optouts_removed": 1}

        result = ledger.replay(entries, {"seq": 0, "hash": ledger.GENESIS}, apply, lambda s: None)
        self.assertEqual((result["seq"], held), (2, set()))
        self.assertEqual(result["applied"][1]["erased"], {"optouts_removed": 1})
        c = cluster()
        receipts = {r.name: {"seq": 2, "live_digest": "d"} for r in c.replicas() if r.name != "shard1-r0"}
        verdict = ledger.evaluate(c, 2, receipts)
        self.assertEqual((verdict["complete"], verdict["quarantined"]), (False, ["shard1-r0"]))


class FakeRuntime:
    """runtime.optout_list / optout_remove answering what a test gives them."""

    def __init__(self, merged=None, removal=None):
        self.merged, self.removal = merged, removal

    def optout_list(self, c, warn):
        return self.merged

    def optout_remove(self, c, rid, request_id, warn):
        return self.removal


class CommandTest(unittest.TestCase):
    def run_command(self, argv, runtime):
        """cli.run on what the parser makes of `argv` (command, --json, REQUEST_ID), without Ray."""
        args = argparse.Namespace(command=argv[0], json="--json" in argv, request_id=None, optout_request_id=argv[-1])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.run(args, cluster(), runtime, out)
        return code, out.getvalue(), err.getvalue()

    def test_optout_list_exits_0_when_consistent_1_when_empty_and_2_naming_what_is_wrong(self):
        c = cluster()
        entries = entries_with(("optout", "rq-a"))
        good = optouts.merge(c, entries, {r.name: answer(1, row("rq-a")) for r in c.replicas()})
        code, out, _ = self.run_command(["optout-list", "--cluster", "c.json", "--json"], FakeRuntime(good))
        self.assertEqual((code, json.loads(out)["optouts"][0]["request_id"]), (cli.EXIT_MATCH, "rq-a"))
        empty = optouts.merge(c, [], {r.name: answer(0) for r in c.replicas()})
        self.assertEqual(self.run_command(["optout-list", "--cluster", "c.json"], FakeRuntime(empty))[0], cli.EXIT_NO_MATCH)
        lacking = optouts.merge(c, entries, dict({r.name: answer(1, row("rq-a")) for r in c.replicas()},
                                                  **{"shard1-r1": answer(1)}))
        code, out, err = self.run_command(["optout-list", "--cluster", "c.json"], FakeRuntime(lacking))
        self.assertEqual(code, cli.EXIT_ERROR)
        self.assertIn("MISSING on shard1-r1", out)
        self.assertIn("rebuild-replica", err)
        silent = optouts.merge(c, entries, dict({r.name: answer(1, row("rq-a")) for r in c.replicas()},
                                                 **{"shard0-r0": {"error": "no actor"}}))
        code, _, err = self.run_command(["optout-list", "--cluster", "c.json"], FakeRuntime(silent))
        self.assertEqual(code, cli.EXIT_ERROR)
        self.assertIn("['shard0-r0'] did not answer", err)

    def test_optout_remove_exits_2_naming_the_quarantined_replicas_until_every_replica_confirmed(self):
        entry = {"seq": 2, "request_id": "rm-1"}
        partial = {"complete": False, "quarantined": ["shard1-r0"], "shards_disagreeing": [], "entry": entry,
                   "erased": {"optouts_removed": 1}, "receipts": [], "failed": [{"replica": "shard1-r0", "error": "down"}]}
        code, _, err = self.run_command(["optout-remove", "--cluster", "c.json", "rq-a"], FakeRuntime(removal=partial))
        self.assertEqual(code, cli.EXIT_ERROR)
        self.assertIn("quarantined replicas ['shard1-r0']", err)
        whole = dict(partial, complete=True, quarantined=[], failed=[])
        self.assertEqual(self.run_command(["optout-remove", "--cluster", "c.json", "rq-a"],
                                          FakeRuntime(removal=whole))[0], cli.EXIT_MATCH)


if __name__ == "__main__":
    unittest.main()
