#!/usr/bin/env python3
"""Crash campaign: kill -9 `facesearch index` at random moments and prove nothing is lost.

    scripts/crash_campaign.py [--images DIR] [--count 1000] [--kills 50] [--binary PATH] [--models DIR]
                              [--seed N] [--keep]

1. Picks COUNT images under DIR (default: LFW, ../shared/data/lfw/images; sorted, evenly spread) and
   indexes them once, uninterrupted, into a reference corpus.
2. Into a second corpus, starts the same `facesearch index` KILLS times and SIGKILLs it after a
   random delay, uniform between 0.2 s and max(3 s, 15% of the reference run's time), so that model
   loading, batch commits, the end-of-run index save and the all-duplicates reruns all get hit.
   After every kill: SQLite `PRAGMA integrity_check` must say ok, `facesearch info --json` must
   succeed, and every face row must still belong to an image row.
3. Runs the index to completion, then requires the two corpora to be identical: the same images
   (SHA-256, status), the same faces (box, landmarks) with bit-identical embeddings, an index in
   state "fresh" and a query that returns the same matches from both.
Prints one line per kill and a verdict; exit 0 PASS, 1 FAIL. Needs only the Python stdlib.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time


def pick_images(root, count):
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, n) for n in names if n.lower().endswith((".jpg", ".jpeg", ".png"))]
    files.sort()
    step = max(1, len(files) // count)
    return files[::step][:count]


def snapshot(db):
    """The corpus content that must survive: images and faces, embeddings as raw bytes."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    images = sorted(con.execute("SELECT sha256, status FROM images"))
    faces = sorted(con.execute(
        "SELECT i.sha256, f.x, f.y, f.w, f.h, f.landmarks, f.embedding FROM faces f JOIN images i ON i.id = f.image_id"))
    con.close()
    return images, faces


def check_consistent(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    orphans = con.execute("SELECT count(*) FROM faces WHERE image_id NOT IN (SELECT id FROM images)").fetchone()[0]
    counts = con.execute("SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM faces)").fetchone()
    con.close()
    return ok, orphans, counts


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=os.path.join(root, "..", "shared", "data", "lfw", "images"))
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--binary", default=os.path.join(root, "build", "facesearch"))
    ap.add_argument("--models", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    random.seed(args.seed)

    work = tempfile.mkdtemp(prefix="facesearch-crash-")
    try:
        images = pick_images(os.path.realpath(args.images), args.count)
        listing = os.path.join(work, "inputs.txt")
        with open(listing, "w") as f:
            f.write("\n".join(images) + "\n")
        base = [args.binary, "-q"] + (["--models", args.models] if args.models else [])

        def index_cmd(corpus):
            return base + ["--corpus", corpus, "index", "-"]

        ref, crash = os.path.join(work, "reference"), os.path.join(work, "crashed")
        t0 = time.time()
        with open(listing) as stdin:
            subprocess.run(index_cmd(ref), stdin=stdin, check=True, stdout=subprocess.DEVNULL)
        ref_seconds = time.time() - t0
        max_delay = max(3.0, 0.15 * ref_seconds)
        print(f"reference: {len(images)} images indexed uninterrupted in {ref_seconds:.1f} s; "
              f"kills come after 0.2-{max_delay:.1f} s", flush=True)

        failures, completed = [], 0
        for k in range(1, args.kills + 1):
            delay = random.uniform(0.2, max_delay)
            with open(listing) as stdin:
                proc = subprocess.Popen(index_cmd(crash), stdin=stdin, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                try:
                    proc.wait(timeout=delay)
                    completed += 1
                    state = f"finished before the kill (exit {proc.returncode})"
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    state = "killed"
            db = os.path.join(crash, "corpus.sqlite")
            if not os.path.exists(db):
                print(f"kill {k:2d} after {delay:.2f}s: {state}; no database yet", flush=True)
                continue
            ok, orphans, (n_img, n_face) = check_consistent(db)
            info = subprocess.run(base + ["--corpus", crash, "info", "--json"], capture_output=True, text=True)
            index_state = json.loads(info.stdout)["index_state"] if info.returncode == 0 else "INFO FAILED"
            bad = ok != "ok" or orphans or info.returncode != 0
            if bad:
                failures.append(k)
            print(f"kill {k:2d} after {delay:.2f}s: {state}; integrity {ok}, {n_img} images, {n_face} faces, "
                  f"index {index_state}{'  <-- FAIL' if bad else ''}", flush=True)

        with open(listing) as stdin:
            subprocess.run(index_cmd(crash), stdin=stdin, check=True, stdout=subprocess.DEVNULL)
        same = snapshot(os.path.join(ref, "corpus.sqlite")) == snapshot(os.path.join(crash, "corpus.sqlite"))
        info = json.loads(subprocess.run(base + ["--corpus", crash, "info", "--json"], capture_output=True,
                                         text=True, check=True).stdout)
        probe = images[len(images) // 2]
        answers = []
        for corpus in (ref, crash):
            out = subprocess.run(base + ["--corpus", corpus, "query", "--format", "jsonl", probe],
                                 capture_output=True, text=True).stdout
            answers.append([(d["image"], d["distance"]) for d in map(json.loads, out.splitlines())])
        print(f"\nafter completion: corpora identical: {same}; index {info['index_state']}; "
              f"query answers identical: {answers[0] == answers[1]} ({len(answers[0])} matches)")
        passed = same and not failures and info["index_state"] == "fresh" and answers[0] == answers[1]
        print(f"{'PASS' if passed else 'FAIL'}: {args.kills} kills ({args.kills - completed} during the run), "
              f"{len(failures)} inconsistent states{': ' + str(failures) if failures else ''}")
        return 0 if passed else 1
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
