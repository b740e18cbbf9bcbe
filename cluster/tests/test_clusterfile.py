"""The cluster file's checks, the routing and the merge: no Ray needed (ctest runs these with the
system python3, label fast)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import clusterfile, merge  # noqa: E402


def good():
    return {
        "version": 1, "map_version": 1, "ray_address": "127.0.0.1:6379", "facesearch": "/usr/bin/facesearch",
        "buckets": 8, "nodes": {"n1": {}, "n2": {}},
        "shards": [
            {"id": 0, "buckets": [0, 3], "replicas": [{"node": "n1", "corpus": "/a/s0"}, {"node": "n2", "corpus": "/b/s0"}]},
            {"id": 1, "buckets": [4, 7], "replicas": [{"node": "n2", "corpus": "/b/s1"}, {"node": "n1", "corpus": "/a/s1"}]},
        ],
    }


class ClusterFileTest(unittest.TestCase):
    def parse(self, doc):
        return clusterfile.parse(json.dumps(doc), "c.json")

    def refused(self, mutate, message):
        doc = good()
        mutate(doc)
        with self.assertRaises(clusterfile.ClusterFileError) as e:
            self.parse(doc)
        self.assertIn(message, str(e.exception))
        self.assertTrue(str(e.exception).startswith("c.json: "))

    def test_a_good_file_routes_every_bucket_to_one_shard(self):
        c = self.parse(good())
        self.assertEqual([r.name for r in c.replicas()], ["shard0-r0", "shard0-r1", "shard1-r0", "shard1-r1"])
        self.assertEqual(c.bucket_of("00000005" + "0" * 56), 5)
        self.assertEqual(c.shard_of("00000005" + "0" * 56), 1)
        self.assertEqual(c.shard_of("ffffffff" + "0" * 56), 0xFFFFFFFF % 8 // 4)
        self.assertEqual(c.node_resource("n1"), "facesearch_node_n1")

    def test_bad_files_are_refused_with_what_to_fix(self):
        self.refused(lambda d: d.update(version=2), "version 2 is not supported")
        self.refused(lambda d: d.pop("map_version"), "needs \"map_version\"")
        self.refused(lambda d: d.update(buckets="8"), "\"buckets\" must be int")
        self.refused(lambda d: d.update(ray_address="localhost"), "HOST:PORT")
        self.refused(lambda d: d.update(facesearch="facesearch"), "absolute path")
        self.refused(lambda d: d["shards"][1].update(buckets=[3, 7]), "bucket 3 belongs to shards 0 and 1")
        self.refused(lambda d: d["shards"][1].update(buckets=[5, 7]), "1 bucket(s) have no shard (first: 4)")
        self.refused(lambda d: d["shards"][1].update(buckets=[4, 8]), "must lie within 0..7")
        self.refused(lambda d: d["shards"][1].update(id=5), "numbered 0, 1, 2")
        self.refused(lambda d: d["shards"][0]["replicas"][1].update(node="n3"), "node 'n3' is not in nodes")
        self.refused(lambda d: d["shards"][0]["replicas"][1].update(node="n1"), "two replicas on node n1")
        self.refused(lambda d: d["shards"][0]["replicas"][1].update(corpus="rel/s0"), "absolute path")
        self.refused(lambda d: d["shards"][0].update(replicas=[]), "has no replicas")
        self.refused(lambda d: d["nodes"].update({"bad name": {}}), "letters, digits")
        with self.assertRaises(clusterfile.ClusterFileError):
            clusterfile.parse("{not json", "c.json")
        with self.assertRaises(clusterfile.ClusterFileError) as e:
            clusterfile.load("/nonexistent/cluster.json")
        self.assertIn("cannot read the cluster file", str(e.exception))


def answer(faces, matches):
    return {"probe": "p.jpg", "probe_sha256": "ab", "faces_detected": 1, "corpus_faces": faces, "threshold": 0.5,
            "threshold_fmr": 1e-3, "top_k": 3,
            "results": [{"probe_face": 0, "box": {}, "quality": {}, "matches": [
                {"rank": i + 1, "face_id": fid, "distance_exact": d} for i, (fid, d) in enumerate(matches)]}]}


class MergeTest(unittest.TestCase):
    def test_merge_keeps_the_k_nearest_by_exact_distance_with_a_stable_tie_order(self):
        merged = merge.merge({1: answer(10, [(7, 0.25), (8, 0.40)]), 0: answer(20, [(3, 0.25), (4, 0.30)])}, 3)
        got = [(m["shard"], m["face_id"], m["rank"]) for m in merged["results"][0]["matches"]]
        self.assertEqual(got, [(0, 3, 1), (1, 7, 2), (0, 4, 3)])
        self.assertEqual(merged["corpus_faces"], 30)
        self.assertAlmostEqual(merged["expected_false_matches"], 0.03)
        self.assertFalse(merged["partial"])

    def test_a_partial_merge_names_the_missing_shards(self):
        merged = merge.merge({0: answer(5, [])}, 3, missing=[2, 1])
        self.assertTrue(merged["partial"])
        self.assertEqual(merged["shards_missing"], [1, 2])
        self.assertFalse(merge.any_match(merged))


if __name__ == "__main__":
    unittest.main()
