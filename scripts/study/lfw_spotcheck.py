#!/usr/bin/env python3
"""Spot-check `facesearch query` on LFW people nobody tuned for, in every output format.

    scripts/study/lfw_spotcheck.py --corpus DIR [--lfw DIR] [--people N] [--binary PATH] [--models DIR]

The corpus must hold LFW (facesearch --corpus DIR index .../lfw/images). For N people with at least
two photos (names sorted, spread over the alphabet) it queries with the person's first photo, which
is itself in the corpus, and checks that:
  * the probe's own image comes back first, at distance ~0 (the index finds exact copies), and
  * the nearest *other* image is a photo of the same person (rank-1 identification, leave-one-out).
The four output formats take turns (table, json, jsonl, csv) and each is parsed. Prints one line
per person and a summary; exit 0 when every query ran, 1 otherwise. Needs only the Python stdlib.
"""
import argparse
import csv
import io
import json
import os
import subprocess
import sys

FORMATS = ["table", "json", "jsonl", "csv"]


def person_of(path):
    return os.path.basename(os.path.dirname(path))


def parse(fmt, out):
    """Returns [(image, distance)] in rank order, whatever the format."""
    if fmt == "json":
        doc = json.loads(out)
        return [(m["image"], m["distance"]) for r in doc["results"] for m in r["matches"]]
    if fmt == "jsonl":
        return [(d["image"], d["distance"]) for d in map(json.loads, out.splitlines()) if d]
    if fmt == "csv":
        return [(row["image"], float(row["distance"])) for row in csv.DictReader(io.StringIO(out))]
    rows = []  # table: RANK DISTANCE FMR CONFIDENCE BOX IMAGE; the image path is the last column
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[0].isdigit():
            rows.append((parts[-1], float(parts[1])))
    return rows


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # the repository
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--lfw", default=os.path.join(root, "..", "shared", "data", "lfw", "images"))
    ap.add_argument("--people", type=int, default=40)
    ap.add_argument("--binary", default=os.path.join(root, "build", "facesearch"))
    ap.add_argument("--models", default=None)
    args = ap.parse_args()

    lfw = os.path.realpath(args.lfw)
    people = sorted(p for p in os.listdir(lfw) if len(os.listdir(os.path.join(lfw, p))) >= 2)
    step = max(1, len(people) // args.people)
    chosen = people[::step][: args.people]
    base = [args.binary, "--corpus", args.corpus, "-q"] + (["--models", args.models] if args.models else [])

    self_first = same_person_next = ran = 0
    for i, name in enumerate(chosen):
        fmt = FORMATS[i % len(FORMATS)]
        probe = os.path.join(lfw, name, name + "_0001.jpg")
        proc = subprocess.run(base + ["query", "--format", fmt, "--top-k", "5", probe],
                              capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            print(f"{name}: query failed ({proc.returncode}): {proc.stderr.strip()}")
            continue
        ran += 1
        rows = parse(fmt, proc.stdout)
        first_is_self = bool(rows) and os.path.realpath(rows[0][0]) == probe and rows[0][1] < 1e-3
        others = [r for r in rows if os.path.realpath(r[0]) != probe]
        next_same = bool(others) and person_of(others[0][0]) == name
        self_first += first_is_self
        same_person_next += next_same
        nxt = f"{person_of(others[0][0])} at {others[0][1]:.3f}" if others else "none within threshold"
        print(f"{name:32s} {fmt:6s} self-first={'yes' if first_is_self else 'NO ':3s} next: {nxt}")

    print(f"\nqueries run: {ran}/{len(chosen)}; probe's own image first: {self_first}/{ran}; "
          f"nearest other image is the same person: {same_person_next}/{ran}")
    return 0 if ran == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
