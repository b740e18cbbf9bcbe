#!/usr/bin/env python3
"""Which detector finds which faces: HOG, CNN and YuNet on small faces and on group photos.

    scripts/study/small_faces.py --lfw DIR --work DIR [--sizes 20,30,40,60,80] [--per-size 24]
        [--group-dir DIR] [--mode LABEL=ARGS]... [--cnn-photos K] [--binary PATH] [--models DIR]

Small faces: the same --per-size LFW faces (sources picked with a fixed seed) scaled so that
each face is S pixels wide (S in --sizes; the width of dlib HOG's box on the full 250x250 LFW
image, the face size the docs quote), pasted in a grid on one 1200x800-ish grey canvas per
size (under --detect-max-side, so detected as they are). Group photos: the photos of
scripts/bench/make_group_photos.py in --group-dir, whose sources.tsv says where each LFW crop
went. In both, a face's true box is HOG's box on its LFW source, scaled and moved as the crop
was: detectors are scored against it (a detection whose centre lies in the box and whose width
is 0.5-2x the box's; one detection per face), so only the main face of each crop counts
(bystanders in a crop are neither found nor missed; detections that match no true face are
counted as "other").

Each --mode (default: hog, cnn and yunet: "hog=--detector hog" ...) runs `facesearch faces
--jsonl ARGS` on every photo; the cnn modes (ARGS containing "cnn") on the first --cnn-photos
photos of each set only (dlib's CNN costs seconds of CPU per megapixel). Prints, per mode and
set: faces found of the true faces per size, the smallest true face found, other detections,
and CPU seconds per photo (user + sys of the facesearch processes). Needs numpy and Pillow
(run it with the virtualenv's python that bench-ingest.sh --keep leaves, or any with both).
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LFW_SIDE = 250
COLUMNS = 6


def run_faces(args, extra, photos):
    """{photo: [(x, y, w, h)]} from `facesearch faces --jsonl`, and its CPU seconds."""
    cmd = [args.binary] + (["--models", args.models] if args.models else []) + \
        ["-q", "faces", "--jsonl"] + extra + photos
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):  # 1: some image without a face
        sys.exit("small_faces.py: %s exited with %d" % (" ".join(cmd[:6]), proc.returncode))
    boxes = {p: [] for p in photos}
    for line in proc.stdout.decode().splitlines():
        r = json.loads(line)
        if "box" in r:
            b = r["box"]
            boxes.setdefault(r["image"], []).append((b["x"], b["y"], b["w"], b["h"]))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return boxes, cpu


def lfw_face(args, sources):
    """{source: HOG box of the face nearest the centre} on the full-size LFW images."""
    found, _ = run_faces(args, ["--detector", "hog"], [os.path.join(args.lfw, s) for s in sources])
    centre = LFW_SIDE / 2
    out = {}
    for s in sources:
        faces = found.get(os.path.join(args.lfw, s), [])
        if faces:
            out[s] = min(faces, key=lambda b: (b[0] + b[2] / 2 - centre) ** 2 + (b[1] + b[3] / 2 - centre) ** 2)
    return out


def make_small_faces(args, sizes):
    """One canvas per size with the same faces; returns [(photo, true box)]."""
    import numpy as np
    from PIL import Image

    everything = sorted(os.path.relpath(os.path.join(root, f), args.lfw)
                        for root, _dirs, files in os.walk(args.lfw) for f in files if f.endswith(".jpg"))
    candidates = random.Random(17).sample(everything, 2 * args.per_size)
    truth = lfw_face(args, candidates)
    picked = [s for s in candidates if s in truth][:args.per_size]
    # The largest crop decides the grid's cell.
    cell = max(round(LFW_SIDE * max(sizes) / truth[s][2]) for s in picked) + 16
    rows = (len(picked) + COLUMNS - 1) // COLUMNS
    out_dir = os.path.join(args.work, "small")
    os.makedirs(out_dir, exist_ok=True)
    faces = []
    for size in sizes:
        noise = np.random.default_rng(size).normal(128, 4, (rows * cell, COLUMNS * cell, 3))
        canvas = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        photo = os.path.join(out_dir, "faces-%03dpx.png" % size)
        for k, s in enumerate(picked):
            x, y, w, h = truth[s]
            scale = size / w
            side = round(LFW_SIDE * scale)
            ox = (k % COLUMNS) * cell + (cell - side) // 2
            oy = (k // COLUMNS) * cell + (cell - side) // 2
            canvas.paste(Image.open(os.path.join(args.lfw, s)).convert("RGB").resize((side, side), Image.LANCZOS),
                         (ox, oy))
            faces.append((photo, (ox + x * scale, oy + y * scale, w * scale, h * scale)))
        canvas.save(photo)  # PNG: no JPEG loss on top of the scaling
    return faces


def group_faces(args):
    """[(photo, true box)] of make_group_photos.py's photos, from their sources.tsv."""
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(args.group_dir, "sources.tsv"))][1:]
    truth = lfw_face(args, sorted({r[4] for r in rows}))
    faces = []
    for photo, x, y, side, source in rows:
        if source in truth:
            bx, by, bw, bh = truth[source]
            scale = int(side) / LFW_SIDE
            faces.append((os.path.join(args.group_dir, photo),
                          (int(x) + bx * scale, int(y) + by * scale, bw * scale, bh * scale)))
    return faces


def matches(true_box, det):
    tx, ty, tw, th = true_box
    cx, cy = det[0] + det[2] / 2, det[1] + det[3] / 2
    return tx <= cx <= tx + tw and ty <= cy <= ty + th and 0.5 <= det[2] / tw <= 2.0


def score(faces, found):
    """[(true box width, found?)] and the count of detections that match no true face."""
    left = {p: list(v) for p, v in found.items()}
    result = []
    for photo, box in faces:
        if photo not in left:
            continue
        hit = next((d for d in left[photo] if matches(box, d)), None)
        if hit is not None:
            left[photo].remove(hit)
        result.append((box[2], hit is not None))
    return result, sum(len(v) for p, v in left.items())


def report(name, faces, modes, args, buckets):
    photos = sorted({p for p, _ in faces})
    print("\n%s: %d photos, %d true faces" % (name, len(photos), len(faces)))
    heads = ["%s px" % b[0] for b in buckets]
    print("| mode | photos | " + " | ".join(heads) + " | all | smallest found | other detections | CPU / photo |")
    print("|---" * (len(heads) + 6) + "|")
    for label, extra in modes:
        subset = photos[:args.cnn_photos] if "cnn" in extra and args.cnn_photos else photos
        found, cpu = run_faces(args, extra, subset)
        scored, other = score(faces, found)
        cells = []
        for _label, lo, hi in buckets:
            inb = [ok for w, ok in scored if lo <= w < hi]
            cells.append("%d/%d" % (sum(inb), len(inb)) if inb else "–")
        hits = [w for w, ok in scored if ok]
        print("| %s | %d | %s | %d/%d (%.1f%%) | %s | %d | %.2f s |" % (
            label, len(subset), " | ".join(cells), len(hits), len(scored), 100.0 * len(hits) / max(1, len(scored)),
            "%.0f px" % min(hits) if hits else "–", other, cpu / len(subset)))
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", required=True, help="LFW images folder (one sub-folder per person)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--sizes", default="20,30,40,60,80")
    ap.add_argument("--per-size", type=int, default=24)
    ap.add_argument("--group-dir", help="photos of scripts/bench/make_group_photos.py, with sources.tsv")
    ap.add_argument("--mode", action="append", help="LABEL=ARGS: extra `faces` arguments")
    ap.add_argument("--cnn-photos", type=int, default=0)
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "facesearch"))
    ap.add_argument("--models")
    args = ap.parse_args()
    modes = [m.split("=", 1) for m in (args.mode or ["hog=--detector hog", "cnn=--detector cnn",
                                                     "yunet=--detector yunet"])]
    modes = [(label, extra.split()) for label, extra in modes]
    sizes = sorted(int(s) for s in args.sizes.split(","))
    small = make_small_faces(args, sizes)
    report("small faces (face width = HOG's box on the LFW source, scaled)", small, modes, args,
           [(s, s - 0.5, s + 0.5) for s in sizes])
    if args.group_dir:
        report("group photos (face width in the photo's own pixels)", group_faces(args), modes, args,
               [("<60", 0, 60), ("60-80", 60, 80), ("80-120", 80, 120), ("120-160", 120, 160), (">=160", 160, 1e9)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
