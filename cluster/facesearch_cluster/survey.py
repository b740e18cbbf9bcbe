"""What `facesearch-cluster verify`, `audit verify` and `audit` make of every replica's answer
(docs/scale.md, "Checking a cluster"). No Ray here: the rules are unit-tested on their own.

A replica's report (ShardReplica.examine) is {"corpus": bool, "problems": [what `facesearch
verify` found], "notes": [...], "audit": `audit verify --json` or None, "seq": the ledger entry it
applied last}, or {"error": why it did not answer}. A cluster is healthy when every replica
answered, holds a corpus that verifies with an intact audit chain, is at the ledger's head (else
it is quarantined), and the replicas of each shard hold the same live faces (equal live digests).
The audit heads differ by design: each replica logs the queries it answered.
"""

from . import ledger as ledgers


def foreign_model(corpus_model, cluster_model):
    """Why a replica whose corpus holds `corpus_model` ({"model_identity", "embedding_mode"} from
    `facesearch info --json`) cannot serve a cluster that embeds with `cluster_model`; None when
    they are the same."""
    if corpus_model == cluster_model:
        return None
    return (f"its corpus holds {corpus_model['embedding_mode']} embeddings of {corpus_model['model_identity']}, "
            f"the cluster embeds {cluster_model['embedding_mode']} with {cluster_model['model_identity']} (its "
            "facesearch and models): it can take none of the cluster's imports and answer none of its probes; "
            "rebuild it from a sibling of the cluster's model (`facesearch-cluster rebuild-replica`, or `up`)")


def replica_problems(report, head_seq, chains_only=False):
    """Why one replica is not healthy ([] when it is). `chains_only`: only its audit chain counts
    (`audit verify`), not `facesearch verify`'s checks nor its place in the ledger."""
    if "error" in report:
        return [f"no answer: {report['error']}"]
    if not report["corpus"]:
        return report["problems"]
    out = []
    audit = report["audit"]
    if not audit["intact"]:
        out.append(f"audit log broken at record {audit['first_bad']}: {audit['problem']}")
    if chains_only:
        return out
    out += report["problems"]
    late = ledgers.quarantine_reason(report["seq"], head_seq)
    if late:
        out.append(late)
    return out


def _summary(replica, report, problems):
    audit = report.get("audit") or {}
    return {"shard": replica.shard, "node": replica.node, "corpus": replica.corpus, "ok": not problems,
            "problems": problems, "notes": report.get("notes", []), "seq": report.get("seq"),
            "faces": audit.get("faces"), "live_digest": audit.get("live_digest"),
            "audit_head": audit.get("head"), "audit_records": audit.get("records")}


def verdict(cluster, reports, head_seq, chains_only=False):
    """{"healthy", "ledger_head", "replicas": {name: summary}, "shards": [{"id", "agree",
    "live_digests": {name: digest or None}}]}. A shard agrees when every replica of it answered
    with a corpus at the ledger's head and their live digests are equal; `chains_only` (`audit
    verify`) reports agreement but judges the audit chains alone."""
    replicas, shards = {}, []
    for shard in cluster.shards:
        digests = {}
        for r in shard.replicas:
            report = reports[r.name]
            replicas[r.name] = _summary(r, report, replica_problems(report, head_seq, chains_only))
            current = "error" not in report and report["corpus"] and report["seq"] >= head_seq
            digests[r.name] = report["audit"]["live_digest"] if current else None
        agree = None not in digests.values() and len(set(digests.values())) == 1
        shards.append({"id": shard.id, "agree": agree, "live_digests": digests})
    healthy = all(s["ok"] for s in replicas.values()) and (chains_only or all(s["agree"] for s in shards))
    return {"healthy": healthy, "ledger_head": head_seq, "replicas": replicas, "shards": shards}


def verdict_lines(result, chains_only=False):
    """The verdict for people: a line per replica, one per shard, then the overall one."""
    lines = []
    for name, s in result["replicas"].items():
        where = f"{name:<12}{s['node']}:{s['corpus']}"
        if s["ok"]:
            lines.append(f"{where}  ok: {s['faces']} faces, ledger entry {s['seq']}, live digest "
                         f"{(s['live_digest'] or '')[:12]}, audit head {(s['audit_head'] or '-')[:12]}")
        else:
            lines += [f"{where}  problem: {p}" for p in s["problems"]]
        lines += [f"{where}  note: {n}" for n in s["notes"]]
    for shard in result["shards"]:
        digests = ", ".join(f"{n} {(d or 'none')[:12]}" for n, d in shard["live_digests"].items())
        lines.append(f"shard {shard['id']}: replicas {'agree' if shard['agree'] else 'DISAGREE'} ({digests})")
    what = "audit chains intact" if chains_only else "healthy"
    lines.append(f"cluster {what if result['healthy'] else 'NOT ' + what}: {len(result['replicas'])} replicas, "
                 f"{len(result['shards'])} shards, ledger entry {result['ledger_head']}")
    return lines


def merged_records(per_replica):
    """{(replica name, shard id): its audit records} as one list, each record with its "replica"
    and "shard", oldest first (by time, then replica, then the replica's own seq)."""
    out = [dict(record, replica=name, shard=shard) for (name, shard), records in per_replica.items()
           for record in records]
    return sorted(out, key=lambda r: (r["at"], r["replica"], r["seq"]))
