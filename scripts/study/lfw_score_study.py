#!/usr/bin/env python3
"""Score-level study for issue #7 (docs/benchmarks.md, "Score normalisation"): does another way
of comparing two stored embeddings beat the plain Euclidean distance on LFW?

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy
    /tmp/venv/bin/python scripts/study/lfw_score_study.py CORPUS/corpus.sqlite LFW_DIR

LFW_DIR holds images/ and pairs.txt. Like `facesearch eval lfw`, each image is represented by its
face nearest the centre of the 250x250 crop, the threshold is chosen on 9 folds and applied to the
10th, and pairs with a missing face count as errors; the L2 row reproduces `eval lfw`'s accuracy.
Rows:
  l2, cosine        the distance itself (cosine: 1 - cos of the angle; dlib's vectors are not unit length)
  cohort K a        d(x, y) - a * (mu_x + mu_y) / 2, mu = mean distance to the K nearest faces of a
                    cohort: every corpus face of the people who do not appear in the test fold
                    (View 2's folds are person-disjoint, so no pair sees its own images in the cohort)
  cohort K ratio    d(x, y) / ((mu_x + mu_y) / 2)
Needs numpy, which the C++ build does not.
"""
import os
import sqlite3
import sys

import numpy as np


def load(db, lfw):
    faces = {}
    root = os.path.realpath(os.path.join(lfw, "images"))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for path, x, y, w, h, emb in con.execute(
            "SELECT i.path, f.x, f.y, f.w, f.h, f.embedding FROM faces f JOIN images i ON i.id = f.image_id"):
        key = os.path.relpath(os.path.realpath(path), root)
        cx, cy = x + w / 2 - 125, y + h / 2 - 125
        off = cx * cx + cy * cy
        if key not in faces or off < faces[key][0]:
            faces[key] = (off, np.frombuffer(emb, dtype=np.float32).astype(np.float64))
    return faces


def read_pairs(lfw):
    lines = open(os.path.join(lfw, "pairs.txt")).read().split("\n")
    folds, per_fold = map(int, lines[0].split())
    name = lambda p, k: f"{p}/{p}_{int(k):04d}.jpg"
    pairs, i = [], 1
    for f in range(folds):
        for _ in range(2 * per_fold):
            t = lines[i].split()
            i += 1
            if len(t) == 3:
                pairs.append((f, 1, name(t[0], t[1]), name(t[0], t[2])))
            else:
                pairs.append((f, 0, name(t[0], t[1]), name(t[2], t[3])))
    return folds, pairs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    faces = load(sys.argv[1], sys.argv[2])
    nf, pairs = read_pairs(sys.argv[2])
    fold = np.array([p[0] for p in pairs])
    same = np.array([p[1] for p in pairs], dtype=bool)
    found = np.array([p[2] in faces and p[3] in faces for p in pairs])
    keys = sorted(faces)
    idx = {k: j for j, k in enumerate(keys)}
    emb = np.stack([faces[k][1] for k in keys])
    person = np.array([k.split("/")[0] for k in keys])
    ia = np.array([idx.get(p[2], 0) for p in pairs])
    ib = np.array([idx.get(p[3], 0) for p in pairs])
    print(f"{len(pairs)} pairs, {(~found).sum()} with a missing face")

    def tenfold(d):
        accs = []
        for f in range(nf):
            tr, te = (fold != f) & found, fold == f
            order = np.argsort(d[tr])
            ds, ss = d[tr][order], same[tr][order]
            below_same = np.concatenate([[0], np.cumsum(ss)])  # same-person pairs among the k nearest
            k = np.arange(len(ds) + 1)
            correct = below_same + (len(ds) - k) - (ss.sum() - below_same)
            b = int(np.argmax(correct))
            t = ds[0] - 1 if b == 0 else ds[-1] + 1 if b == len(ds) else (ds[b - 1] + ds[b]) / 2
            accs.append((((d[te] < t) == same[te]) & found[te]).sum() / te.sum())
        return np.mean(accs), np.std(accs, ddof=1)  # as eval lfw: the sample standard deviation

    def distances(a, b, metric):
        if metric == "l2":
            return np.sqrt(np.maximum((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T, 0))
        an = a / np.linalg.norm(a, axis=1, keepdims=True)
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        return 1 - an @ bn.T

    def pair_scores(metric):
        d = np.full(len(pairs), np.nan)
        a, b = emb[ia[found]], emb[ib[found]]
        if metric == "l2":
            d[found] = np.linalg.norm(a - b, axis=1)
        else:
            d[found] = 1 - (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return d

    fold_people = [set() for _ in range(nf)]
    for f, _, a, b in pairs:
        fold_people[f].update((a.split("/")[0], b.split("/")[0]))

    def cohort_mu(k, metric):
        mu = np.full(len(pairs), np.nan)
        for f in range(nf):
            cohort = emb[~np.isin(person, list(fold_people[f]))]
            sel = (fold == f) & found
            ma = np.partition(distances(emb[ia[sel]], cohort, metric), k, axis=1)[:, :k].mean(1)
            mb = np.partition(distances(emb[ib[sel]], cohort, metric), k, axis=1)[:, :k].mean(1)
            mu[sel] = (ma + mb) / 2
        return mu

    for metric in ("l2", "cosine"):
        base = pair_scores(metric)
        print("%-6s                 %.2f%% ± %.2f%%" % ((metric,) + tuple(100 * x for x in tenfold(base))))
        for k in (1, 10, 50, 200):
            mu = cohort_mu(k, metric)
            for a in (0.25, 0.5, 1.0):
                print("%-6s cohort %3d %.2f  %.2f%% ± %.2f%%" %
                      ((metric, k, a) + tuple(100 * x for x in tenfold(base - a * mu))))
            print("%-6s cohort %3d ratio %.2f%% ± %.2f%%" % ((metric, k) + tuple(100 * x for x in tenfold(base / mu))))


if __name__ == "__main__":
    main()
