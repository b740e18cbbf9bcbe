"""Merging the shards' answers to one probe into the cluster's answer. No Ray here.

Each shard answers with `facesearch query --embedded - --format json` (docs/output.md): its
nearest faces within the threshold, each with `distance_exact`, the distance at full float
precision. Because every shard searched with the same vector and the same threshold, the
cluster's top k are the k smallest of the union: merged by exact distance, ties broken by shard
then face id so that the order is the same on every run.
"""


def _key(match):
    return (match["distance_exact"], match["shard"], match["face_id"])


def merge(answers, top_k, missing=(), owner=None):
    """`answers`: {shard id: the shard's JSON object for the probe}. Returns the cluster's object:
    the shards' fields, corpus_faces summed over the shards that answered, expected_false_matches
    for that total, every match tagged with its shard and re-ranked, shards_answered,
    shards_missing and partial. `owner(sha256)`, when given, is the shard the map gives an image
    to: a match from another shard is dropped (a moved image still on its old shard until the
    move's forget). Dropping them keeps the top k exact: every image a shard ranks above one it
    owns is in the cluster's union too."""
    if not answers:
        raise ValueError("no shard answered")
    shard_ids = sorted(answers)
    first = answers[shard_ids[0]]
    out = {k: v for k, v in first.items() if k not in ("results", "corpus_faces", "expected_false_matches")}
    out["shards_answered"] = shard_ids
    out["shards_missing"] = sorted(missing)
    out["partial"] = bool(missing)
    errors = {s: a["error"] for s, a in answers.items() if "error" in a}
    if errors:
        out["error"] = errors[min(errors)]
        return out
    total = sum(a["corpus_faces"] for a in answers.values())
    out["corpus_faces"] = total
    out["expected_false_matches"] = first["threshold_fmr"] * total
    results = []
    for i, probe_face in enumerate(first["results"]):
        matches = []
        for s in shard_ids:
            face = answers[s]["results"][i]
            if face["probe_face"] != probe_face["probe_face"]:
                raise ValueError(f"shard {s} searched with another probe face than shard {shard_ids[0]}")
            matches += [dict(m, shard=s) for m in face["matches"] if owner is None or owner(m["sha256"]) == s]
        matches.sort(key=_key)
        matches = matches[:top_k]
        for rank, m in enumerate(matches, 1):
            m["rank"] = rank
        results.append(dict(probe_face, matches=matches))
    out["results"] = results
    return out


def any_match(merged):
    return any(r["matches"] for r in merged.get("results", []))
