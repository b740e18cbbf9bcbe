#!/usr/bin/env python3
"""Synthetic "group photos" for the ingest benchmark: LFW faces placed on large canvases.

    python3 scripts/bench/make_group_photos.py --lfw DIR --out DIR [--count N] [--seed S]

No real group or crowd photos with a licence that lets us ship or fetch them are reachable from
the build machines (PyPI's face_recognition sdist holds only the single-face test photos), so
this script builds stand-ins: each photo is a smooth random background of one of three sizes
(1600x1067, 2400x1600, 3200x2133 — 1.7 to 6.8 megapixels) with 6 to 14 LFW images (each a
250x250 head-and-shoulders crop with one main face, sometimes a bystander) pasted without
overlap at random scales, so that the faces are about 55 to 225 pixels wide. Photos are JPEG
(quality 90), named group-NNN.jpg; the LFW images used are listed in sources.tsv beside them.

Needs Pillow and numpy (scripts/bench/bench-ingest.sh runs it with its throw-away virtualenv's Python).
Deterministic for a given --seed and LFW folder. Exit 0 on success, 2 on error.
"""
import argparse
import os
import random
import sys

SIZES = [(1600, 1067), (2400, 1600), (3200, 2133)]
TILE_MIN, TILE_MAX = 130, 520  # pasted crop side; LFW's face is ~0.43 of the crop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", required=True, help="LFW images folder (one sub-folder per person)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()
    try:
        import numpy as np
        from PIL import Image, ImageFilter
    except ImportError as e:
        print(f"make_group_photos.py: needs Pillow and numpy ({e})", file=sys.stderr)
        return 2

    sources = []
    for root, _dirs, files in os.walk(args.lfw):
        sources += [os.path.join(root, f) for f in files if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    sources.sort()
    if not sources:
        print(f"make_group_photos.py: no images under {args.lfw}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sources.tsv"), "w") as listing:
        listing.write("photo\tx\ty\tside\tsource\n")
        for n in range(args.count):
            w, h = SIZES[n % len(SIZES)]
            # A smooth background: a few random colours, upscaled and blurred, plus mild noise.
            small = np.array([[rng.randrange(40, 220) for _ in range(3)] for _ in range(12)], dtype=np.uint8)
            bg = Image.fromarray(small.reshape(3, 4, 3)).resize((w, h), Image.BICUBIC)
            bg = bg.filter(ImageFilter.GaussianBlur(8))
            noise = np.random.default_rng(args.seed * 1000 + n).normal(0, 4, (h, w, 3))
            canvas = Image.fromarray(np.clip(np.asarray(bg, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
            placed = []
            want = rng.randint(6, 14)
            for _attempt in range(400):
                if len(placed) >= want:
                    break
                side = rng.randint(TILE_MIN, min(TILE_MAX, h // 2))
                x, y = rng.randrange(0, w - side), rng.randrange(0, h - side)
                if any(x < px + ps and px < x + side and y < py + ps and py < y + side for px, py, ps in placed):
                    continue
                src = rng.choice(sources)
                tile = Image.open(src).convert("RGB").resize((side, side), Image.LANCZOS)
                canvas.paste(tile, (x, y))
                placed.append((x, y, side))
                listing.write(f"group-{n:03d}.jpg\t{x}\t{y}\t{side}\t{os.path.relpath(src, args.lfw)}\n")
            canvas.save(os.path.join(args.out, f"group-{n:03d}.jpg"), quality=90)
    print(f"wrote {args.count} photos to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
