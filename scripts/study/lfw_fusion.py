#!/usr/bin/env python3
"""Fuse two models' LFW embeddings and measure the 10-fold verification accuracy.

    scripts/study/lfw_fusion.py PAIRS.txt A.sqlite B.sqlite [STEPS]

A and B are two corpora of the same LFW images (e.g. `--detector yunet` with dlib's model and
`--model sface`, so both hold YuNet's faces). For every image it takes the face nearest the centre
in each (as `facesearch eval lfw` does), L2-normalises both embeddings and concatenates them
weighted, [sqrt(w) a, sqrt(1 - w) b]: the squared distance of the fused vector is
w |a - a'|^2 + (1 - w) |b - b'|^2, so no vector is built. For w = 0, 1/STEPS, ..., 1 it prints the
10-fold accuracy (threshold chosen on the other 9 folds, pairs with a missing face counted as
errors) and TAR at FAR 0.1% / 1%, then the accuracy when the weight too is chosen on the
training folds (the honest figure for a fused mode). Study-only, not part of the product.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lfw_mix_views import centre_faces  # noqa: E402


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def read_pairs(path):
    with open(path) as f:
        lines = [line.split() for line in f]
    folds, per = int(lines[0][0]), int(lines[0][1])
    pairs = []
    for k in range(folds):
        for i, p in enumerate(lines[1 + 2 * per * k: 1 + 2 * per * (k + 1)]):
            if len(p) == 3:
                a, b = (p[0], int(p[1])), (p[0], int(p[2]))
            else:
                a, b = (p[0], int(p[1])), (p[2], int(p[3]))
            pairs.append((k, i < per, a, b))
    return folds, pairs


def key(person):
    name, number = person
    return "%s/%s_%04d.jpg" % (name, name, number)


def sq(u, v):
    return sum((x - y) ** 2 for x, y in zip(u, v))


def best_threshold(rows):
    """rows: (same, d2 or None). The threshold that maximises accuracy over rows."""
    found = sorted((d, same) for same, d in rows if d is not None)
    correct = sum(1 for _, same in found if not same)
    best, best_t = correct, (found[0][0] - 1e-9 if found else 0)
    for i, (d, same) in enumerate(found):
        correct += 1 if same else -1
        if (i + 1 == len(found) or found[i + 1][0] > d) and correct > best:
            best = correct
            best_t = (d + found[i + 1][0]) / 2 if i + 1 < len(found) else d
    return best_t


def accuracy(rows, t):
    return sum(1 for same, d in rows if d is not None and (d <= t) == same) / len(rows)


def tar_at_far(rows, far):
    genuine = sorted(d for same, d in rows if same and d is not None)
    impostor = sorted(d for same, d in rows if not same and d is not None)
    allowed = int(math.floor(far * len(impostor)))
    if allowed >= len(impostor):
        return 1.0
    limit = impostor[allowed]
    return sum(1 for d in genuine if d < limit) / len(genuine)


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    steps = int(argv[3]) if len(argv) == 4 else 10
    folds, pairs = read_pairs(argv[0])
    views = [{k: unit(v[2]) for k, v in centre_faces(db).items()} for db in argv[1:3]]
    parts = []  # per pair: fold, same, (d2_a, d2_b) or None
    for fold, same, a, b in pairs:
        ds = []
        for view in views:
            ea, eb = view.get(key(a)), view.get(key(b))
            ds.append(sq(ea, eb) if ea and eb else None)
        parts.append((fold, same, None if None in ds else ds))
    weights = [i / steps for i in range(steps + 1)]

    def rows_for(w, fold_filter):
        return [(same, None if d is None else w * d[0] + (1 - w) * d[1])
                for fold, same, d in parts if fold_filter(fold)]

    print("pairs %d, with a face missing in either corpus %d" % (len(parts), sum(1 for p in parts if p[2] is None)))
    print("weight_a\taccuracy\tTAR@FAR0.1%\tTAR@FAR1%")
    for w in weights:
        accs = []
        for k in range(folds):
            t = best_threshold(rows_for(w, lambda f: f != k))
            accs.append(accuracy(rows_for(w, lambda f: f == k), t))
        mean = sum(accs) / folds
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (folds - 1))
        every = rows_for(w, lambda f: True)
        print("%.2f\t%.2f%% ± %.2f%%\t%.2f%%\t%.2f%%" % (w, 100 * mean, 100 * std, 100 * tar_at_far(every, 1e-3),
                                                      100 * tar_at_far(every, 1e-2)))
    nested = []
    for k in range(folds):
        train = lambda f: f != k  # noqa: E731
        best = max(weights, key=lambda w: accuracy(rows_for(w, train), best_threshold(rows_for(w, train))))
        nested.append(accuracy(rows_for(best, lambda f: f == k), best_threshold(rows_for(best, train))))
    print("weight chosen on the training folds too: %.2f%%" % (100 * sum(nested) / folds))


if __name__ == "__main__":
    main(sys.argv[1:])
