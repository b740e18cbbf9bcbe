"""Moving buckets between shards (move.py): what a new map may change, the ledger's "move" entry
and a move's forget restricted to the old shard, the digest that checks a copy, and the merge's
bucket filter between the switch and the forget. No Ray needed (ctest's fast tier)."""

import base64
import copy
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import clusterfile, ledger, merge, move  # noqa: E402
from tests.test_clusterfile import answer, good  # noqa: E402


def parse(doc, path="c.json"):
    return clusterfile.parse(json.dumps(doc), path)


def grown():
    """good() (8 buckets, 2 shards) with buckets 6-7 given to a new shard 2: map version 2."""
    doc = copy.deepcopy(good())
    doc["map_version"] = 2
    doc["nodes"]["n3"] = {}
    doc["shards"][1]["buckets"] = [4, 5]
    doc["shards"].append({"id": 2, "buckets": [6, 7], "replicas": [{"node": "n3", "corpus": "/c/s2"},
                                                                   {"node": "n1", "corpus": "/a/s2"}]})
    return doc


def sha_in_bucket(bucket, salt="0"):
    return f"{bucket:08x}" + salt * 56  # int(sha[:8], 16) % 8 == bucket for bucket < 8


class PlanTest(unittest.TestCase):
    def test_a_new_shard_taking_buckets_of_one_shard_is_the_moves_selector(self):
        self.assertEqual(move.plan(parse(good()), parse(grown(), "c2.json"), []),
                         {"from_shard": 1, "to_shard": 2, "buckets": [[6, 7]], "bucket_count": 8,
                          "from_map_version": 1, "to_map_version": 2})
        self.assertEqual(move.ranges([7, 1, 2, 3, 5]), [[1, 3], [5, 5], [7, 7]])

    def refused(self, mutate, message, entries=()):
        doc = grown()
        mutate(doc)
        with self.assertRaises(clusterfile.ClusterFileError) as e:
            move.plan(parse(good()), parse(doc, "c2.json"), list(entries))
        self.assertIn(message, str(e.exception))

    def test_a_map_that_changes_more_than_buckets_or_skips_a_version_is_refused(self):
        self.refused(lambda d: d.update(map_version=3), "map_version must go from 1 to 2")
        self.refused(lambda d: d.update(ray_address="10.0.0.9:6379"), "not 'ray_address'")
        self.refused(lambda d: d["shards"][0]["replicas"][1].update(corpus="/b/elsewhere"),
                     "shard 0 must keep its id and replicas")

    def test_buckets_from_two_shards_or_none_at_all_are_refused(self):
        def two_sources(d):  # bucket 3 from shard 0 to 1, bucket 7 from 1 to 2
            d["shards"][0]["buckets"] = [0, 2]
            d["shards"][1]["buckets"] = [3, 6]
            d["shards"][2]["buckets"] = [7, 7]
        self.refused(two_sources, "one shard's buckets to one shard at a time")
        self.refused(lambda d: (d["shards"].pop(), d["shards"][1].update(buckets=[4, 7])), "no bucket changes shard")

    def test_buckets_go_back_only_to_a_shard_that_never_gave_them_away(self):
        earlier = ledger.make_entry(None, "move", {"from_shard": 2, "to_shard": 1, "buckets": [[7, 7]],
                                                   "bucket_count": 8, "from_map_version": 0, "to_map_version": 1})
        self.refused(lambda d: None, "shard 2 gave some of these buckets away (ledger entry 1)", [earlier])


class LedgerMoveTest(unittest.TestCase):
    def test_the_move_and_its_forget_are_chained_entries_that_erase_only_on_the_old_shard(self):
        with tempfile.TemporaryDirectory() as tmp:
            book = ledger.Ledger(os.path.join(tmp, "c.json.ledger"))
            book.append("forget", {"images": ["/srv/a.jpg"]})
            selector = move.plan(parse(good()), parse(grown(), "c2.json"), book.entries())
            started = book.append("move", selector)
            self.assertEqual(move.recorded(book.entries(), 2), (started, None))
            done = book.append("forget", {"moved_images": ["/srv/b.jpg"], "shard": 1, "move": started["request_id"]})
            entries = book.entries()  # the chain verifies with both
        self.assertEqual(move.recorded(entries, 2), (started, done))
        self.assertEqual(move.recorded(entries, 3), (None, None))
        self.assertEqual([ledger.erases_on(e, s) for e in entries for s in (0, 1, 2)],
                         [True, True, True, False, False, False, False, True, False])
        # Every replica still reaches every seq: a replica of shard 2 applies the forget as nothing.
        applied = []
        result = ledger.replay(entries, {"seq": 0, "hash": ledger.GENESIS},
                               lambda e: applied.append(e["seq"]) or {}, lambda state: None)
        self.assertEqual((result["seq"], applied), (3, [1, 2, 3]))

    def test_same_map_tells_a_switched_cluster_file(self):
        self.assertTrue(move.same_map(parse(grown()), parse(grown(), "other.json")))
        self.assertFalse(move.same_map(parse(good()), parse(grown())))


def embed_text(images, tombstones=0):
    """An embed file: `images` as (path, sha256, [boxes]), then `tombstones` erased records."""
    lines = [json.dumps({"facesearch_embed": 1, "model_identity": "m", "embedding_mode": "plain", "detector": "unknown"})]
    emb = base64.b64encode(bytes(512)).decode()
    for path, sha, boxes in images:
        lines.append(json.dumps({"status": "ok", "path": path, "sha256": sha, "faces": [
            {"box": b, "embedding": emb} for b in boxes]}))
    lines += [json.dumps({"status": "erased", "sha256": "f" * 64, "reason": "r", "erased_at": "t"})] * tombstones
    return "\n".join(lines + [json.dumps({"facesearch_embed_end": len(lines) - 1})]) + "\n"


class SummaryTest(unittest.TestCase):
    def test_the_digest_is_the_content_whatever_the_order_and_counts_what_moved(self):
        a, b = ("/x/a.jpg", "a" * 64, [[1, 2, 30, 30], [50, 2, 30, 30]]), ("/x/b.jpg", "b" * 64, [[0, 0, 9, 9]])
        one = move.summary(io.StringIO(embed_text([a, b], tombstones=1)))  # an open file, a line at a time
        other = move.summary(embed_text([b, a]).splitlines())
        self.assertEqual(one["digest"], other["digest"])
        self.assertEqual((one["images"], one["faces"], one["tombstones"], one["paths"]), (2, 3, 1, ["/x/a.jpg", "/x/b.jpg"]))
        self.assertNotEqual(move.summary(embed_text([a]).splitlines())["digest"], one["digest"])
        moved_box = ("/x/b.jpg", "b" * 64, [[0, 0, 9, 10]])
        self.assertNotEqual(move.summary(embed_text([a, moved_box]).splitlines())["digest"], one["digest"])


class OwnerFilterTest(unittest.TestCase):
    def test_between_the_switch_and_the_forget_a_moved_image_is_answered_once_by_its_new_shard(self):
        c = parse(grown())
        moved, kept = sha_in_bucket(6), sha_in_bucket(4)
        old_shard = answer(10, [(1, 0.20), (2, 0.30)])
        old_shard["results"][0]["matches"][0]["sha256"] = moved
        old_shard["results"][0]["matches"][1]["sha256"] = kept
        new_shard = answer(1, [(1, 0.20)])
        new_shard["results"][0]["matches"][0]["sha256"] = moved
        merged = merge.merge({1: old_shard, 2: new_shard}, 3, owner=c.shard_of)
        got = [(m["shard"], m["sha256"], m["rank"]) for m in merged["results"][0]["matches"]]
        self.assertEqual(got, [(2, moved, 1), (1, kept, 2)])
        unfiltered = merge.merge({1: old_shard, 2: new_shard}, 3)
        self.assertEqual(len(unfiltered["results"][0]["matches"]), 3)  # without the map: twice


if __name__ == "__main__":
    unittest.main()
