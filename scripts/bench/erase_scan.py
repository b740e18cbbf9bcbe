#!/usr/bin/env python3
"""Byte scan for an erased face (issue #16): what of one face is in a corpus's files, before and
after `forget`.

  erase_scan.py grab CORPUS FACE_ID NEEDLES.json   # before: the face's bytes, from the corpus itself
  erase_scan.py scan CORPUS NEEDLES.json           # after: every file of CORPUS searched for them

`grab` records the face's 512-byte embedding (from corpus.sqlite) and, when the index file
(index/faces.faiss, format 3: src/index/index_file.h) holds an IVF structure, the face's entry in
its inverted list: the row number as FAISS's 8-byte label and its code (32 bytes for PQ32x8),
found where FAISS writes ArrayInvertedLists (fourcc "ilar", nlist, code_size, "full"/"sprs" sizes,
then each list's codes and ids: the lists end the section). `scan` counts each needle in every
regular file under CORPUS (mmap + find), and for the list entry also reads its bytes at the place
it was (the code zeroed and the id -1 after an in-place erasure). Standard library only.
"""
import json
import mmap
import os
import sqlite3
import struct
import sys
from array import array


def index_layout(mm):
    """(header length, rows n, structure offset, structure length) of a format-3 index file."""
    if mm[:8] != b"FSVINDEX":
        raise SystemExit("not a facesearch index file")
    n = struct.unpack_from("<Q", mm, 24)[0]
    header = struct.unpack_from("<Q", mm, 48)[0]
    structure_len = struct.unpack_from("<Q", mm, 56)[0]
    codes = struct.unpack_from("<I", mm, 80)[0] == 1
    at = header + 8 * n + 512 * n + (128 * n if codes else 0)
    return header, n, at, structure_len


def list_entry(mm, structure_at, structure_len, row):
    """(offset of the code, offset of the id, code size) of `row`'s entry, or None."""
    end = structure_at + structure_len
    pos = mm.rfind(b"ilar", structure_at, end)
    while pos >= 0:
        nlist, code_size = struct.unpack_from("<QQ", mm, pos + 4)
        kind = mm[pos + 20:pos + 24]
        count = struct.unpack_from("<Q", mm, pos + 24)[0]
        sizes = array("Q", mm[pos + 32:pos + 32 + 8 * count])
        if kind == b"full" and count == nlist:
            lists = list(enumerate(sizes))
        elif kind == b"sprs":
            lists = [(sizes[i], sizes[i + 1]) for i in range(0, len(sizes), 2)]
        else:
            lists = None
        if lists is not None:
            data = pos + 32 + 8 * count
            if data + sum(s for _, s in lists) * (code_size + 8) == end:
                at = data
                for _, size in lists:
                    ids = array("q", mm[at + size * code_size:at + size * (code_size + 8)])
                    if row in ids:
                        i = ids.index(row)
                        return at + i * code_size, at + size * code_size + 8 * i, code_size
                    at += size * (code_size + 8)
                return None
        pos = mm.rfind(b"ilar", structure_at, pos)
    return None


def grab(corpus, face_id, out):
    db = sqlite3.connect(f"file:{os.path.join(corpus, 'corpus.sqlite')}?mode=ro", uri=True)
    blob = db.execute("SELECT embedding FROM faces WHERE id = ?", (face_id,)).fetchone()
    if blob is None:
        raise SystemExit(f"no face {face_id}")
    needles = {"embedding": blob[0].hex()}
    path = os.path.join(corpus, "index", "faces.faiss")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        header, n, structure_at, structure_len = index_layout(mm)
        ids = array("q", mm[header:header + 8 * n])
        row = ids.index(face_id)
        needles["row"] = row
        entry = list_entry(mm, structure_at, structure_len, row) if structure_len else None
        if entry:
            code_at, id_at, code_size = entry
            needles.update(code=mm[code_at:code_at + code_size].hex(), code_at=code_at, id_at=id_at,
                           code_size=code_size)
    json.dump(needles, open(out, "w"))
    print(json.dumps(needles))


def scan(corpus, needles_path):
    needles = json.load(open(needles_path))
    found = {}
    for name, key in (("embedding", "embedding"), ("PQ code", "code")):
        if key not in needles:
            continue
        needle = bytes.fromhex(needles[key])
        for root, _, files in os.walk(corpus):
            for file in files:
                path = os.path.join(root, file)
                if os.path.islink(path) or os.path.getsize(path) == 0:
                    continue
                with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                    hits, at = 0, mm.find(needle)
                    while at >= 0:
                        hits += 1
                        at = mm.find(needle, at + 1)
                found[f"{name} in {os.path.relpath(path, corpus)}"] = hits
    if "code_at" in needles:
        with open(os.path.join(corpus, "index", "faces.faiss"), "rb") as f:
            f.seek(needles["code_at"])
            found["entry's code bytes now"] = f.read(needles["code_size"]).hex()
            f.seek(needles["id_at"])
            found["entry's id now"] = struct.unpack("<q", f.read(8))[0]
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "grab":
        grab(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "scan":
        scan(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
