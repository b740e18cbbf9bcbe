#!/usr/bin/env python3
"""scripts/study/cluster_metrics.py — score `facesearch cluster` against known identities.

  facesearch --corpus LFW_CORPUS cluster --min-size 1 --format jsonl | scripts/study/cluster_metrics.py

Reads the cluster JSONL on stdin (run it with --min-size 1 so that every face is listed). The true
identity of a face is the name of its image's folder (LFW: images/Name/Name_0001.jpg). Prints
pairwise precision (of the face pairs put in one cluster, the share that are one person), pairwise
recall (of the same-person face pairs, the share put in one cluster), their F1, and cluster counts.
Faces in images of several people count under the folder's name, so LFW's background faces show
up as errors here.
"""
import json
import sys
from collections import Counter
from pathlib import PurePosixPath


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def main() -> int:
    if len(sys.argv) > 1:
        print(__doc__.strip())
        return 0 if sys.argv[1] in ("-h", "--help") else 2
    identity_sizes: Counter = Counter()
    same_cluster = true_positive = faces = clusters = multi = 0
    largest = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        names = Counter(PurePosixPath(p).parent.name for p in c["images"])
        identity_sizes.update(names)
        n = len(c["images"])
        faces += n
        clusters += 1
        multi += n >= 2
        largest = max(largest, n)
        same_cluster += pairs(n)
        true_positive += sum(pairs(k) for k in names.values())
    same_identity = sum(pairs(k) for k in identity_sizes.values())
    precision = true_positive / same_cluster if same_cluster else 1.0
    recall = true_positive / same_identity if same_identity else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"faces {faces}  identities {len(identity_sizes)}  clusters {clusters}  "
          f"clusters>=2 {multi}  largest {largest}")
    print(f"pairs: same-identity {same_identity}  same-cluster {same_cluster}  both {true_positive}")
    print(f"pairwise precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
