#!/usr/bin/env python3
"""Subject study for issue #21 (docs/benchmarks.md, "Subjects: several reference photos"): how
should `query --subject` fuse the distances of a subject's references, and how much do 2 or 3
references help against one? Also writes the fused rule's calibration tables.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy==1.26.4
    facesearch --corpus /tmp/lfw index --jobs 2 LFW_DIR/images
    /tmp/venv/bin/python scripts/study/lfw_subject_study.py /tmp/lfw/corpus.sqlite LFW_DIR [--tables data]

Each image is represented by its face nearest the centre of the 250x250 crop (as `eval lfw`).
Open-set identification, FRVT style (as `eval lfw`'s 1:N figures): the gallery holds one subject per
person with >= 4 images, built from that person's first k images (k = 1, 2, 3, by file name); mated
probes are the same people's images after the third (the same probes for every k); non-mated probes
are all images of the people with fewer than 4 images. rank-1: the mate's subject is nearest;
FNIR @ FPIR 1%: the threshold lets 1% of non-mated probes hit any subject, and a mated probe is
found when its mate is nearest and within it. Rules (d_i: distance to reference i):
  best        min d_i
  mean2       mean of the 2 smallest d_i (k = 1: d_1)
  mean        mean of all d_i
  template    distance to the mean of the reference embeddings
With --tables DIR, writes DIR/calibration-subject-K.tsv for K = 2..5 under the chosen rule
(template): fmr = share of different-person (subject, face) pairs at or below the score, every
person with >= K images giving a subject of its first K images, scored against every face of the
other people; fnmr = share of the subject's own other faces above it. Needs numpy.
"""
import os
import sqlite3
import sys

import numpy as np

RULES = ("best", "mean2", "mean", "template")


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


def l2(a, b):
    return np.sqrt(np.maximum((a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T, 0))


def scores(probes, refs, rule):
    """probes: (P, 128); refs: (S, k, 128) -> (P, S) fused scores."""
    if rule == "template":
        return l2(probes, refs.mean(1))
    d = np.stack([l2(probes, refs[:, i]) for i in range(refs.shape[1])], axis=2)  # (P, S, k)
    if rule == "best":
        return d.min(2)
    if rule == "mean":
        return d.mean(2)
    d.sort(2)
    return d[:, :, :2].mean(2)


def identification(people, k, rule):
    enrolled = [p for p in people.values() if len(p) >= 4]
    refs = np.stack([np.stack(p[:k]) for p in enrolled])
    mated = [(s, e) for s, p in enumerate(enrolled) for e in p[3:]]
    mated_e = np.stack([e for _, e in mated])
    mate = np.array([s for s, _ in mated])
    non_mated = np.stack([e for p in people.values() if len(p) < 4 for e in p])
    sm = scores(mated_e, refs, rule)
    nm_best = np.sort(scores(non_mated, refs, rule).min(1))
    mate_score = sm[np.arange(len(mate)), mate]
    rank1 = sm.argmin(1) == mate
    t = np.nextafter(nm_best[int(np.floor(0.01 * len(nm_best)))], 0)
    fnir = 1 - (rank1 & (mate_score <= t)).mean()
    return len(enrolled), len(mated), len(non_mated), rank1.mean(), fnir, t


def calibration(people, k, lines):
    names = sorted(people)
    owner = np.concatenate([[i] * len(people[n]) for i, n in enumerate(names)])
    allf = np.concatenate([np.stack(people[n]) for n in names])
    bins = 12000
    genuine, impostor = np.zeros(bins + 1, np.int64), np.zeros(bins + 1, np.int64)
    subjects = [i for i, n in enumerate(names) if len(people[n]) >= k]
    for start in range(0, len(subjects), 256):
        chunk = subjects[start:start + 256]
        templates = np.stack([np.stack(people[names[i]][:k]).mean(0) for i in chunk])
        d = l2(templates, allf)
        b = np.minimum(bins, (d / 1e-4).astype(np.int64))
        for row, i in enumerate(chunk):
            own = owner == i
            own_refs = np.flatnonzero(own)[:k]
            other_own = own.copy()
            other_own[own_refs] = False
            genuine += np.bincount(b[row][other_own], minlength=bins + 1)
            impostor += np.bincount(b[row][~own], minlength=bins + 1)
    g, i = genuine.sum(), impostor.sum()
    out = [f"# facesearch calibration: subject of {k} references (fused rule: distance to the mean of the references' "
           f"embeddings), dlib ResNet plain embeddings on LFW, one face per image.",
           f"# {g} same-person (subject, face) pairs, {i} different-person pairs. fmr = share of different-person pairs "
           "at or below the score;",
           "# fnmr = share of same-person pairs above it. Regenerate: scripts/study/lfw_subject_study.py --tables data "
           "(docs/benchmarks.md).",
           "distance\tfmr\tfnmr"]
    cg, ci = np.cumsum(genuine), np.cumsum(impostor)
    for row in range(lines):
        d = row * 0.01
        last = min(bins, int(round(d / 1e-4)))
        out.append(f"{d:.2f}\t{ci[last] / max(1, i):.6g}\t{1 - cg[last] / max(1, g):.6g}")
    return "\n".join(out) + "\n"


def main():
    args = sys.argv[1:]
    tables = None
    if "--tables" in args:
        j = args.index("--tables")
        tables = args[j + 1]
        del args[j:j + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    faces = load(args[0], args[1])
    people = {}
    for key in sorted(faces):
        people.setdefault(key.split("/")[0], []).append(faces[key][1])
    print("| references | rule | subjects | mated / non-mated probes | rank-1 | FNIR @ FPIR 1% (threshold) |")
    print("|---|---|---|---|---|---|")
    for k in (1, 2, 3):
        for rule in RULES if k > 1 else ("best",):
            n, m, nm, r1, fnir, t = identification(people, k, rule)
            print(f"| {k} | {rule if k > 1 else 'single photo'} | {n} | {m} / {nm} | {100 * r1:.2f}% | "
                  f"{100 * fnir:.2f}% ({t:.3f}) |")
    if tables:
        for k in range(2, 6):
            path = os.path.join(tables, f"calibration-subject-{k}.tsv")
            with open(path, "w") as f:
                f.write(calibration(people, k, 121))
            print("wrote", path)


if __name__ == "__main__":
    main()
