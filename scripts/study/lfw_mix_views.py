#!/usr/bin/env python3
"""Average the LFW embeddings of several corpora into an SQL script for the first one.

    scripts/study/lfw_mix_views.py OUT.sql NAME=CORPUS.sqlite... -- NAME:WEIGHT...

For every LFW image, takes the face nearest the image centre in each named corpus (as
`facesearch eval lfw` picks it), and writes "UPDATE faces SET embedding = ..." statements that set
the first corpus's face to the weighted sum of the named views. Applied to a copy of the first
corpus (sqlite3 COPY/corpus.sqlite < OUT.sql), `eval lfw` then measures that mix of views on the
same detections. Weights are plain multipliers: NAME:0.5 NAME2:0.5 is the mean of two views, and a
view can be subtracted (flip:2 plain:-1 is the mirror view alone). Used for docs/benchmarks.md
("What closes the gap"); study-only, not part of the product.
"""
import sqlite3
import struct
import sys


def centre_faces(db):
    best = {}
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = con.execute(
        "SELECT f.id, i.path, f.x, f.y, f.w, f.h, f.embedding FROM faces f JOIN images i ON i.id = f.image_id")
    for fid, path, x, y, w, h, emb in rows:
        key = "/".join(path.split("/")[-2:])  # Name/Name_NNNN.jpg
        d = (x + w / 2 - 125) ** 2 + (y + h / 2 - 125) ** 2  # LFW images are 250x250
        if key not in best or d < best[key][0]:
            best[key] = (d, fid, struct.unpack("<128f", emb))
    con.close()
    return best


def main(argv):
    if "--" not in argv or len(argv) < 4:
        sys.exit(__doc__)
    sep = argv.index("--")
    out = argv[0]
    corpora = dict(a.split("=", 1) for a in argv[1:sep])
    weights = [(w.rsplit(":", 1)[0], float(w.rsplit(":", 1)[1])) for w in argv[sep + 1:]]
    views = {name: centre_faces(db) for name, db in corpora.items()}
    first = views[next(iter(corpora))]
    written = 0
    with open(out, "w") as f:
        f.write("BEGIN;\n")
        for key, (_, fid, _) in sorted(first.items()):
            if not all(key in views[v] for v, _ in weights):
                continue
            vec = [0.0] * 128
            for v, wt in weights:
                e = views[v][key][2]
                for k in range(128):
                    vec[k] += wt * e[k]
            f.write("UPDATE faces SET embedding = X'%s' WHERE id = %d;\n" % (struct.pack("<128f", *vec).hex(), fid))
            written += 1
        f.write("COMMIT;\n")
    print("%d faces written to %s" % (written, out), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
