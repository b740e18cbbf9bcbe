"""Opt-outs across the cluster: `optout-list` merges every replica's, `optout-remove` goes through
the ledger (docs/scale.md, "Opt-outs across the cluster"). No Ray here: the rules are unit-tested
on their own.

An opt-out has a different row id on each replica (each numbers its own), so the cluster names it
by the request id of the ledger entry that added it: every replica ran that entry as `facesearch
--request-id RID optout add`, which stores RID on the row (schema v10; older rows got it from their
audit record when the corpus was upgraded). A removal is a ledger entry of its own ("optout-remove",
selector {"optout_request_id": RID}) that each replica applies as `facesearch optout remove
--request RID`, so a replica that was down is caught up by replay, and quarantined until then, as
for any erasure: a replica that kept the opt-out would go on refusing that person's faces while its
sibling took them, and the shard's replicas would part.

What each replica should hold follows from the ledger and the seq it applied: the opt-outs added
by entries up to its seq and not removed by one up to its seq. A replica's answer is {"seq": the
entry it applied last, "optouts": its `optout list --json` rows}, or {"error": why it gave none}.
"""

REMOVE_OP = "optout-remove"


def ledger_optouts(entries):
    """{request id: {"added": the seq of its `optout` entry, "removed": the seq of its
    "optout-remove" entry or None, "reason", "threshold"}} for every opt-out the ledger added."""
    out = {}
    for e in entries:
        if e["op"] == "optout":
            sel = e["selector"]
            out[e["request_id"]] = {"added": e["seq"], "removed": None, "reason": sel.get("reason", ""),
                                    "threshold": sel.get("threshold")}
        elif e["op"] == REMOVE_OP and e["selector"]["optout_request_id"] in out:
            out[e["selector"]["optout_request_id"]]["removed"] = e["seq"]
    return out


def _expected(known, seq):
    """Whether a replica at ledger entry `seq` should hold the opt-out `known` describes."""
    return known is not None and known["added"] <= seq and (known["removed"] is None or seq < known["removed"])


def merge(cluster, entries, answers):
    """Every replica's opt-outs, once each: {"optouts": [...], "failed": {replica: why},
    "consistent": whether every replica that answered holds what its seq says it should,
    "ledger_head", "replicas_answered"}.
    Each opt-out: {"request_id" (None for one added outside the ledger), "ledger": {"added",
    "removed"} or None, "reason", "threshold", "added_at" (the earliest replica's), "held_by":
    {replica: its row id there}, "missing_from": [replicas that should hold it and do not],
    "unexpected_on": [replicas that hold it though the ledger, at their seq, does not (added
    outside the ledger, or a removal that did not reach its row)], "pending_on": [replicas whose
    seq is behind the entry that added or removed it: `up` replays it]}. An opt-out removed
    everywhere is not listed. Never an embedding: `optout list --json` prints none."""
    head = entries[-1]["seq"] if entries else 0
    known = ledger_optouts(entries)
    failed = {name: a["error"] for name, a in answers.items() if "error" in a}
    answered = [r.name for r in cluster.replicas() if r.name not in failed]
    rows = {}  # key -> [(replica, row)]; a row without a request id is its own key
    for name in answered:
        for row in answers[name]["optouts"]:
            key = row.get("request_id") or (name, row["id"])
            rows.setdefault(key, []).append((name, row))
    for rid, k in known.items():
        if k["removed"] is None:
            rows.setdefault(rid, [])  # held by no replica: still listed, missing everywhere
    out = []
    for key, held in rows.items():
        rid = key if isinstance(key, str) else None
        k = known.get(rid)
        holders = {name: row["id"] for name, row in held}
        seqs = {name: answers[name]["seq"] for name in answered}
        item = {"request_id": rid, "ledger": {"added": k["added"], "removed": k["removed"]} if k else None,
                "reason": held[0][1]["reason"] if held else k["reason"],
                "threshold": held[0][1]["threshold"] if held else k["threshold"],
                "added_at": min((row["added_at"] for _, row in held), default=None),
                "held_by": holders,
                "missing_from": [n for n in answered if n not in holders and _expected(k, seqs[n])],
                "unexpected_on": [n for n in holders if not _expected(k, seqs[n])],
                "pending_on": [n for n in answered if _expected(k, seqs[n]) != _expected(k, head)]}
        out.append(item)
    out.sort(key=lambda o: (o["ledger"] is None, o["ledger"]["added"] if o["ledger"] else 0, o["added_at"] or ""))
    consistent = not any(o["missing_from"] or o["unexpected_on"] for o in out)
    return {"optouts": out, "failed": failed, "consistent": consistent, "ledger_head": head,
            "replicas_answered": len(answered)}


def removal_refused(request_id, entries, merged):
    """Why a removal of the opt-out added under `request_id` must not be appended to the ledger
    (None when it may): no replica that answered holds it. Says what the ledger knows of it."""
    if any(o["request_id"] == request_id and o["held_by"] for o in merged["optouts"]):
        return None
    known = ledger_optouts(entries).get(request_id)
    if known and known["removed"]:
        why = f"it was removed by ledger entry {known['removed']}"
    elif known:
        why = f"ledger entry {known['added']} added it, but no replica that answered holds it"
    else:
        why = "the ledger added no opt-out under that request id"
    silent = f"; replicas {sorted(merged['failed'])} did not answer" if merged["failed"] else ""
    return (f"no replica holds an opt-out added under request id {request_id}: {why}{silent} "
            "(`facesearch-cluster optout-list` shows each opt-out's request_id); nothing was appended to the ledger")


def table_lines(merged):
    """`optout-list` without --json: one line per opt-out, then what is wrong with it."""
    lines = [f"{'REQUEST':<34}{'LEDGER':<8}{'HELD BY':<9}{'ADDED':<22}REASON"]
    for o in merged["optouts"]:
        seq = str(o["ledger"]["added"]) if o["ledger"] else "-"
        held = f"{len(o['held_by'])}/{merged['replicas_answered']}"
        # repr: a reason is free text, shown with its control characters escaped
        lines.append(f"{o['request_id'] or '(none)':<34}{seq:<8}{held:<9}{o['added_at'] or '-':<22}{o['reason']!r}"[:300])
        for label, key in (("MISSING on", "missing_from"), ("UNEXPECTED on", "unexpected_on"),
                           ("pending replay on", "pending_on")):
            if o[key]:
                lines.append(f"  {label} {', '.join(sorted(o[key]))}")
    return lines
