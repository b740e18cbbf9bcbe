"""What `facesearch-cluster verify`, `audit verify` and `audit` make of the replicas' reports
(facesearch_cluster.survey): no Ray needed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import survey  # noqa: E402
from tests.test_ledger import cluster  # noqa: E402  shard0-r0, shard0-r1, shard1-r0, shard1-r1

HEAD = 3


def report(digest="d0", seq=HEAD, problems=(), intact=True):
    return {"corpus": True, "problems": list(problems), "notes": [], "seq": seq,
            "audit": {"intact": intact, "records": 9, "head": "h", "first_bad": 0 if intact else 4,
                      "problem": "" if intact else "its hash does not match", "faces": 5, "live_digest": digest}}


def healthy():
    return {"shard0-r0": report("d0"), "shard0-r1": report("d0"), "shard1-r0": report("d1"), "shard1-r1": report("d1")}


class ForeignModelTest(unittest.TestCase):
    def test_a_corpus_of_another_model_or_embedding_mode_is_named_with_both_and_what_to_do(self):
        ours = {"model_identity": "dlib_resnet_v1@55533b28+sp5@c4b1e980", "embedding_mode": "plain"}
        self.assertIsNone(survey.foreign_model(dict(ours), ours))
        why = survey.foreign_model(dict(ours, embedding_mode="flip"), ours)
        self.assertIn("holds flip embeddings of dlib_resnet_v1@55533b28+sp5@c4b1e980, the cluster embeds plain", why)
        self.assertIn("rebuild-replica", why)
        self.assertIsNotNone(survey.foreign_model(dict(ours, model_identity="sface@0a1b"), ours))


class VerdictTest(unittest.TestCase):
    def test_a_cluster_whose_replicas_verify_at_the_head_and_agree_is_healthy(self):
        result = survey.verdict(cluster(), healthy(), HEAD)
        self.assertTrue(result["healthy"])
        self.assertEqual([s["agree"] for s in result["shards"]], [True, True])
        self.assertEqual(result["replicas"]["shard1-r0"]["live_digest"], "d1")
        self.assertEqual(survey.verdict_lines(result)[-1], "cluster healthy: 4 replicas, 2 shards, ledger entry 3")

    def test_each_kind_of_problem_names_its_replica_and_makes_the_cluster_unhealthy(self):
        cases = {"shard0-r1": (report("d0", seq=HEAD - 1), "quarantined: applied ledger entries up to 2 of 3"),
                 "shard1-r0": (report("d1", problems=["index: face 17 differs"]), "index: face 17 differs"),
                 "shard1-r1": ({"error": "shard1-r1: RayActorError: gone"}, "no answer: shard1-r1: RayActorError"),
                 "shard0-r0": (report("d0", intact=False), "audit log broken at record 4")}
        for name, (bad, said) in cases.items():
            with self.subTest(replica=name):
                reports = dict(healthy(), **{name: bad})
                result = survey.verdict(cluster(), reports, HEAD)
                self.assertFalse(result["healthy"])
                self.assertEqual([n for n, s in result["replicas"].items() if not s["ok"]], [name])
                self.assertIn(said, result["replicas"][name]["problems"][0])
                self.assertTrue(any(name in line and "problem: " + said in line
                                    for line in survey.verdict_lines(result)))

    def test_replicas_of_a_shard_holding_other_faces_disagree(self):
        reports = dict(healthy(), **{"shard1-r1": report("other")})
        result = survey.verdict(cluster(), reports, HEAD)
        self.assertFalse(result["healthy"])
        self.assertTrue(all(s["ok"] for s in result["replicas"].values()))  # each replica alone is fine
        self.assertEqual([s["agree"] for s in result["shards"]], [True, False])
        self.assertIn("shard 1: replicas DISAGREE (shard1-r0 d1, shard1-r1 other)", survey.verdict_lines(result))

    def test_audit_verify_judges_the_chains_alone(self):
        reports = dict(healthy(), **{"shard0-r1": report("d0", seq=1, problems=["index: stale"])})
        self.assertTrue(survey.verdict(cluster(), reports, HEAD, chains_only=True)["healthy"])
        reports["shard1-r0"] = report("d1", intact=False)
        result = survey.verdict(cluster(), reports, HEAD, chains_only=True)
        self.assertFalse(result["healthy"])
        self.assertEqual([n for n, s in result["replicas"].items() if not s["ok"]], ["shard1-r0"])
        self.assertTrue(survey.verdict_lines(result, chains_only=True)[-1].startswith("cluster NOT audit chains intact"))

    def test_a_replica_without_a_corpus_is_a_problem_and_its_shard_does_not_agree(self):
        reports = dict(healthy(), **{"shard0-r0": {"corpus": False, "problems": ["no corpus at /srv/s0"], "notes": [],
                                                   "audit": None, "seq": None}})
        result = survey.verdict(cluster(), reports, HEAD)
        self.assertEqual(result["replicas"]["shard0-r0"]["problems"], ["no corpus at /srv/s0"])
        self.assertEqual(result["shards"][0]["live_digests"], {"shard0-r0": None, "shard0-r1": "d0"})
        self.assertFalse(result["shards"][0]["agree"])


class MergedRecordsTest(unittest.TestCase):
    def test_every_replicas_records_in_time_order_with_their_replica_and_shard(self):
        merged = survey.merged_records({
            ("shard0-r0", 0): [{"seq": 1, "at": "2026-12-04T10:00:00Z"}, {"seq": 2, "at": "2026-12-04T12:00:00Z"}],
            ("shard1-r1", 1): [{"seq": 7, "at": "2026-12-04T11:00:00Z"}, {"seq": 8, "at": "2026-12-04T12:00:00Z"}],
            ("shard0-r1", 0): []})
        self.assertEqual([(r["replica"], r["shard"], r["seq"]) for r in merged],
                         [("shard0-r0", 0, 1), ("shard1-r1", 1, 7), ("shard0-r0", 0, 2), ("shard1-r1", 1, 8)])


if __name__ == "__main__":
    unittest.main()
