#!/usr/bin/env python3
"""Make a smaller LFW View 2 protocol: the first N same-person and N different-person pairs of
each of the 10 folds, and a folder of symbolic links to just the images those pairs name.

    scripts/study/lfw_subset.py LFW_DIR N OUT_DIR

Writes OUT_DIR/pairs.txt ("10 N" and the pairs, in View 2's format) and OUT_DIR/images/Name/
Name_NNNN.jpg links, so that `facesearch index OUT_DIR/images` and `facesearch eval lfw --images
OUT_DIR/images --pairs OUT_DIR/pairs.txt` measure the subset with the usual 10-fold protocol.
Used where the full 13,233-image runs do not fit a session (docs/benchmarks.md says which).
"""
import os
import sys


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    lfw, n, out = argv[0], int(argv[1]), argv[2]
    with open(os.path.join(lfw, "pairs.txt")) as f:
        lines = [line.split() for line in f]
    folds, per = int(lines[0][0]), int(lines[0][1])
    kept, images = [], set()
    for k in range(folds):
        block = lines[1 + 2 * per * k: 1 + 2 * per * (k + 1)]
        for pair in block[:n] + block[per:per + n]:
            kept.append(pair)
            if len(pair) == 3:
                images.update({(pair[0], int(pair[1])), (pair[0], int(pair[2]))})
            else:
                images.update({(pair[0], int(pair[1])), (pair[2], int(pair[3]))})
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    with open(os.path.join(out, "pairs.txt"), "w") as f:
        f.write("%d\t%d\n" % (folds, n))
        f.writelines("\t".join(p) + "\n" for p in kept)
    for name, number in sorted(images):
        src = os.path.abspath(os.path.join(lfw, "images", name, "%s_%04d.jpg" % (name, number)))
        os.makedirs(os.path.join(out, "images", name), exist_ok=True)
        dst = os.path.join(out, "images", name, os.path.basename(src))
        if not os.path.lexists(dst):
            os.symlink(src, dst)
    print("%d pairs, %d images in %s" % (len(kept), len(images), out))


if __name__ == "__main__":
    main(sys.argv[1:])
