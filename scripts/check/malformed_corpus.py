#!/usr/bin/env python3
"""Generate a corpus of >= 1,000 malformed image files and check that `facesearch index` survives it.

    scripts/check/malformed_corpus.py [--seeds DIR] [--binary PATH] [--models DIR] [--keep] [--seed N]

Seeds are real photos (default: the face_recognition test images in the user cache, see
scripts/fetch-test-images.sh). From them it writes truncations at many offsets, bit flips, absurd
header sizes (PNG, JPEG, BMP, WebP), zero-byte files, wrong extensions, text and GIF/PPM files named
.jpg, PNG decompression bombs, a 100-level deep directory, a symlink loop and non-UTF-8 file names.
Then it runs `facesearch index` over the tree and requires: no crash (exit 0), every candidate file
accounted for (added + no face + duplicate + error = files), an intact database, and that a real
photo indexed in the same run is still found by a query. Exit 0 PASS, 1 FAIL.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import zlib


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side):
    """A valid PNG of side x side black grey pixels: a few KB on disk, side^2 pixels decoded."""
    raw = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * side
    body = b"".join(raw.compress(row) for _ in range(side)) + raw.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)) +
            png_chunk(b"IDAT", body) + png_chunk(b"IEND", b""))


def patch_jpeg_size(data, w, h):
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            break
        m = data[i + 1]
        seg = struct.unpack(">H", data[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            return data[:i + 5] + struct.pack(">HH", h, w) + data[i + 9:]
        i += 2 + seg
    return data


def generate(out, seeds, rng):
    made = 0

    def write(name, data):
        nonlocal made
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        made += 1

    for s_idx, seed in enumerate(seeds):
        data = open(seed, "rb").read()
        ext = os.path.splitext(seed)[1]
        for k in range(200):  # truncations across the whole file
            write(f"trunc/{s_idx}_{k}{ext}", data[: max(1, len(data) * k // 200)])
        for k in range(60):  # bit flips, 1 to 64 bits
            b = bytearray(data)
            for _ in range(rng.randint(1, 64)):
                p = rng.randrange(len(b))
                b[p] ^= 1 << rng.randrange(8)
            write(f"flip/{s_idx}_{k}{ext}", bytes(b))
        for k in range(8):  # header garbage: overwrite the first bytes after the magic
            b = bytearray(data)
            for p in range(4, min(len(b), 64)):
                b[p] = rng.randrange(256)
            write(f"header/{s_idx}_{k}{ext}", bytes(b))
        if ext.lower() == ".jpg":
            for k, (w, h) in enumerate([(65535, 65535), (1, 65535), (0, 0), (40000, 30000)]):
                write(f"size/{s_idx}_{k}.jpg", patch_jpeg_size(data, w, h))
        write(f"wrongext/{s_idx}.png", data)  # real image, wrong extension
    for side in (30000, 12000, 2000):
        write(f"bomb/png_{side}.png", png_bomb(side))
    for k in range(10):
        write(f"empty/{k}.jpg", b"")
        write(f"text/{k}.jpg", f"not an image {k}\n".encode() * 50)
        write(f"gif/{k}.jpg", b"GIF89a" + bytes(rng.randrange(256) for _ in range(200)))
        write(f"ppm/{k}.jpg", b"P6\n64 64\n255\n" + bytes(64 * 64 * 3))
        write(f"bmp/{k}.bmp", b"BM" + bytes(12) + struct.pack("<IiiHH", 40, 100000, -100000, 1, 24) + bytes(64))
        write(f"webp/{k}.webp", b"RIFF" + struct.pack("<I", 100) + b"WEBPVP8X" + bytes(4) +
              bytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) + bytes(80))
    deep = os.path.join("deep", *["d"] * 100)
    write(os.path.join(deep, "trunc.jpg"), open(seeds[0], "rb").read()[:500])
    os.makedirs(os.path.join(out, "loop"), exist_ok=True)
    os.symlink("..", os.path.join(out, "loop", "up"))  # a directory symlink loop
    name = os.path.join(out.encode(), b"nonutf8_\xff\xfe.jpg")
    with open(name, "wb") as f:
        f.write(open(seeds[0], "rb").read()[:1000])
    made += 1
    return made


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # the repository
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default=os.environ.get("FACESEARCH_TEST_IMAGES") or
                    os.path.join(cache, "facesearch", "test-images"))
    ap.add_argument("--binary", default=os.path.join(root, "build", "facesearch"))
    ap.add_argument("--models", default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    seeds = sorted(os.path.join(args.seeds, n) for n in ("obama.jpg", "biden.jpg", "32bit.png", "obama2.jpg"))
    work = tempfile.mkdtemp(prefix="facesearch-malformed-")
    try:
        tree = os.path.join(work, "tree")
        made = generate(tree, seeds, rng)
        good = os.path.join(tree, "good", "obama.jpg")
        os.makedirs(os.path.dirname(good))
        shutil.copy(seeds[2], good)  # obama.jpg: the control that must still be found
        corpus = os.path.join(work, "corpus")
        base = [args.binary, "-q", "--corpus", corpus] + (["--models", args.models] if args.models else [])
        proc = subprocess.run(base + ["index", "--json", tree], capture_output=True, text=True, errors="replace")
        print(f"generated {made} malformed files (+1 control photo); index exit code {proc.returncode}")
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return 1
        s = json.loads(proc.stdout)
        accounted = s["added"] + s["noface"] + s["duplicates"] + s["errors"]
        print(f"summary: {json.dumps(s)}")
        con = sqlite3.connect(f"file:{corpus}/corpus.sqlite?mode=ro", uri=True)
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        reasons = con.execute("SELECT error, count(*) FROM images WHERE status='error' GROUP BY error "
                              "ORDER BY count(*) DESC LIMIT 8").fetchall()
        con.close()
        for why, n in reasons:
            print(f"  {n:5d} x {why}")
        q = subprocess.run(base + ["query", "--format", "jsonl", "--top-k", "1000", seeds[3]],
                           capture_output=True, text=True, errors="replace")
        found = q.returncode == 0 and any(json.loads(l)["image"] == good for l in q.stdout.splitlines())
        ok = accounted == s["files"] and s["files"] >= 1000 and integrity == "ok" and found
        print(f"{'PASS' if ok else 'FAIL'}: {s['files']} files, {accounted} accounted for, "
              f"integrity {integrity}, control photo found by query: {found}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
