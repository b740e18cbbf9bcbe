#!/usr/bin/env python3
"""parity_reference.py — the Python half of scripts/check/parity.sh (run that, not this, normally).

Subcommands:
  sample --lfw DIR --count N
      Print a deterministic sample of N LFW images, one absolute path per line: the first image
      (by name) of each person, people sorted by name, N people spread evenly over the alphabet.
  check-models --pins data/models.sha256
      Check that the installed face_recognition_models package holds exactly the pinned model files.
  reference --list FILE --out FILE
      Run the reference face_recognition pipeline (HOG detection with 1 upsample, 5-point landmarks,
      ResNet descriptor with 1 jitter) on every image listed in FILE and write one JSON line per image:
      {"path": ..., "faces": [{"box": {"x","y","w","h"}, "landmarks": [[x,y]...], "embedding": [...]}]}
      Needs dlib (dlib-bin) and face_recognition installed.
  compare REFERENCE_JSONL EXPORT_JSONL [--target 0.01] [--allow-unpaired N] [--json]
      Pair faces by image path and identical box, report embedding L2 differences; exit 1 on FAIL.

Only the standard library is needed for sample, check-models and compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

PROG = "parity_reference.py"


def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> "NoReturn":  # noqa: F821
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------- sample
IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def cmd_sample(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.lfw)
    if not os.path.isdir(root):
        die(f"LFW image directory {root} does not exist")
    people = []
    for name in sorted(os.listdir(root)):
        pdir = os.path.join(root, name)
        if not os.path.isdir(pdir):
            continue
        images = sorted(f for f in os.listdir(pdir) if f.lower().endswith(IMAGE_EXTS))
        if images:
            people.append(os.path.join(pdir, images[0]))
    if not people:
        die(f"no person folders with images under {root}")
    n = min(args.count, len(people))
    if n < args.count:
        log(f"only {len(people)} people under {root}; sampling all of them")
    # Person i*P//N for i in 0..N-1: every (P/N)-th person, so the sample spans the whole alphabet.
    for i in range(n):
        print(people[i * len(people) // n])
    log(f"sampled {n} of {len(people)} people under {root}")
    return 0


# ---------------------------------------------------------------------------------------- check-models
def read_pins(path: str) -> dict[str, str]:
    pins = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            digest, sep, name = line.partition("  ")
            if not sep or len(digest) != 64:
                die(f"{path}: malformed line {line!r}")
            pins[name] = digest
    return pins


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_check_models(args: argparse.Namespace) -> int:
    import face_recognition_models  # noqa: PLC0415

    model_dir = os.path.join(os.path.dirname(face_recognition_models.__file__), "models")
    bad = 0
    for name, want in read_pins(args.pins).items():
        path = os.path.join(model_dir, name)
        if not os.path.isfile(path):
            log(f"{name}: missing from {model_dir}")
            bad += 1
            continue
        got = sha256_file(path)
        if got != want:
            log(f"{name}: SHA-256 mismatch in {model_dir}: expected {want}, got {got}")
            bad += 1
    if bad:
        die("the reference's model files differ from data/models.sha256")
    log(f"face_recognition_models' model files in {model_dir} match {args.pins}")
    return 0


# ------------------------------------------------------------------------------------------- reference
def cmd_reference(args: argparse.Namespace) -> int:
    import dlib  # noqa: PLC0415
    import face_recognition  # noqa: PLC0415
    from face_recognition import api  # noqa: PLC0415

    with open(args.list, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    log(f"reference pipeline on {len(paths)} images (dlib {dlib.__version__}, "
        f"face_recognition from {os.path.dirname(face_recognition.__file__)})")
    start = time.monotonic()
    n_faces = errors = 0
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        for i, path in enumerate(paths, 1):
            path = os.path.abspath(path)
            rec: dict = {"path": path, "faces": []}
            try:
                img = face_recognition.load_image_file(path)  # RGB uint8, via PIL
                rec["width"], rec["height"] = int(img.shape[1]), int(img.shape[0])
                # Exactly what face_recognition.face_encodings(img) does: HOG detector with one
                # upsample, 5-point ("small") landmarks, ResNet descriptor with num_jitters=1.
                for rect in api._raw_face_locations(img, 1):
                    shape = api.pose_predictor_5_point(img, rect)
                    emb = api.face_encoder.compute_face_descriptor(img, shape, 1)
                    rec["faces"].append({
                        "box": {"x": rect.left(), "y": rect.top(),
                                "w": rect.right() - rect.left() + 1,
                                "h": rect.bottom() - rect.top() + 1},
                        "landmarks": [[p.x, p.y] for p in shape.parts()],
                        "embedding": [float(v) for v in emb],
                    })
            except Exception as e:  # noqa: BLE001 — record and go on; compare reports it
                rec["error"] = f"{type(e).__name__}: {e}"
                errors += 1
                log(f"{path}: {rec['error']}")
            n_faces += len(rec["faces"])
            out.write(json.dumps(rec) + "\n")
            if i % 25 == 0 or i == len(paths):
                log(f"{i}/{len(paths)} images, {n_faces} faces, {time.monotonic() - start:.0f} s")
    os.replace(tmp, args.out)
    log(f"wrote {args.out}")
    if errors:
        # LFW images are all valid JPEGs: a failure here means a broken reference environment
        # (e.g. a dlib build that rejects the numpy version's arrays), not a data problem.
        die(f"{errors} of {len(paths)} images failed in the reference pipeline (see above)")
    return 0


# --------------------------------------------------------------------------------------------- compare
def box_key(box: dict) -> tuple[int, int, int, int]:
    return (int(box["x"]), int(box["y"]), int(box["w"]), int(box["h"]))


def iou(a: tuple, b: tuple) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def l2(a: list, b: list) -> float:
    if len(a) != len(b):
        return math.inf
    return math.sqrt(sum((x - y) * (x - y) for x, y in zip(a, b)))


def landmark_diff(a, b) -> float | None:
    if not a or not b or len(a) != len(b):
        return None
    return max(math.hypot(p[0] - q[0], p[1] - q[1]) for p, q in zip(a, b))


def read_jsonl(path: str, what: str):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                die(f"{what} {path}:{n}: not JSON: {e}")


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_vals)))
    return sorted_vals[rank - 1]


def cmd_compare(args: argparse.Namespace) -> int:
    real = os.path.realpath
    ref: dict[str, list] = {}
    ref_errors = {}
    for rec in read_jsonl(args.reference, "reference"):
        p = real(rec["path"])
        ref[p] = rec.get("faces", [])
        if "error" in rec:
            ref_errors[p] = rec["error"]
    ours: dict[str, list] = {}
    for rec in read_jsonl(args.export, "export"):
        try:
            p = real(rec["image"])
            ours.setdefault(p, []).append(rec)
            box_key(rec["box"])
            rec["embedding"]  # noqa: B018 — presence check
        except (KeyError, TypeError, ValueError) as e:
            die(f"export line lacks image/box/embedding: {e!r}: {str(rec)[:200]}")

    n_ref_faces = sum(len(f) for f in ref.values())
    n_our_faces_all = sum(len(f) for f in ours.values())
    extra_images = sorted(set(ours) - set(ref))
    n_our_faces = sum(len(ours[p]) for p in ref if p in ours)

    dists, lm_diffs, pairs_detail = [], [], []
    ref_only, ours_only, near_misses = [], [], []
    for path in sorted(ref):
        theirs = list(ref[path])
        mine = list(ours.get(path, []))
        unmatched_mine = list(mine)
        unmatched_ref = []
        for rf in theirs:
            k = box_key(rf["box"])
            hit = next((m for m in unmatched_mine if box_key(m["box"]) == k), None)
            if hit is None:
                unmatched_ref.append(rf)
                continue
            unmatched_mine.remove(hit)
            d = l2(rf["embedding"], hit["embedding"])
            dists.append(d)
            pairs_detail.append((d, path, k))
            ld = landmark_diff(rf.get("landmarks"), hit.get("landmarks"))
            if ld is not None:
                lm_diffs.append(ld)
        for rf in unmatched_ref:
            k = box_key(rf["box"])
            ref_only.append({"image": path, "box": k})
            best = max(unmatched_mine, key=lambda m: iou(k, box_key(m["box"])), default=None)
            if best is not None and iou(k, box_key(best["box"])) > 0.5:
                near_misses.append({"image": path, "reference_box": k, "our_box": box_key(best["box"]),
                                    "iou": round(iou(k, box_key(best["box"])), 4),
                                    "l2": l2(rf["embedding"], best["embedding"])})
        for m in unmatched_mine:
            ours_only.append({"image": path, "box": box_key(m["box"])})

    s = sorted(dists)
    figures = {
        "images_compared": len(ref),
        "reference_image_errors": len(ref_errors),
        "images_only_in_export": len(extra_images),
        "faces_reference": n_ref_faces,
        "faces_ours": n_our_faces,
        "faces_ours_all_images": n_our_faces_all,
        "faces_paired": len(dists),
        "faces_reference_only": len(ref_only),
        "faces_ours_only": len(ours_only),
        "l2_max": s[-1] if s else None,
        "l2_mean": (sum(s) / len(s)) if s else None,
        "l2_p99": percentile(s, 99) if s else None,
        "landmark_max_px": max(lm_diffs) if lm_diffs else None,
        "target": args.target,
        "allow_unpaired": args.allow_unpaired,
    }
    reasons = []
    if not s:
        reasons.append("no faces paired")
    elif s[-1] > args.target or math.isnan(s[-1]):
        reasons.append(f"max L2 {s[-1]:.6f} > target {args.target}")
    n_unpaired = len(ref_only) + len(ours_only)
    if n_unpaired > args.allow_unpaired:
        reasons.append(f"{n_unpaired} faces detected by only one side (allowed: {args.allow_unpaired})")
    verdict = "FAIL" if reasons else "PASS"
    figures["verdict"] = verdict
    figures["fail_reasons"] = reasons

    if args.json:
        figures["reference_only"] = ref_only
        figures["ours_only"] = ours_only
        figures["near_misses"] = near_misses
        figures["worst_pairs"] = [{"l2": d, "image": p, "box": k}
                                  for d, p, k in sorted(pairs_detail, reverse=True)[:10]]
        print(json.dumps(figures, indent=2))
    else:
        def fmt(v):
            return "n/a" if v is None else f"{v:.6f}"

        print(f"images compared:              {len(ref)}"
              + (f" ({len(ref_errors)} failed to load in the reference)" if ref_errors else ""))
        if extra_images:
            print(f"images only in the export:    {len(extra_images)} (ignored)")
        print(f"faces, reference:             {n_ref_faces}")
        print(f"faces, facesearch:            {n_our_faces}")
        print(f"faces paired (same box):      {len(dists)}")
        print(f"faces only in the reference:  {len(ref_only)}")
        for f in ref_only:
            print(f"    {f['image']}  box x={f['box'][0]} y={f['box'][1]} w={f['box'][2]} h={f['box'][3]}")
        print(f"faces only in facesearch:     {len(ours_only)}")
        for f in ours_only:
            print(f"    {f['image']}  box x={f['box'][0]} y={f['box'][1]} w={f['box'][2]} h={f['box'][3]}")
        if near_misses:
            print(f"near misses (same face, different box): {len(near_misses)}")
        for nm in near_misses:
            print(f"    {nm['image']}: {nm['image']} reference box {nm['reference_box']} vs ours "
                  f"{nm['our_box']} (IoU {nm['iou']}, L2 {nm['l2']:.6f})")
        print(f"embedding L2, max:            {fmt(figures['l2_max'])}")
        print(f"embedding L2, mean:           {fmt(figures['l2_mean'])}")
        print(f"embedding L2, p99:            {fmt(figures['l2_p99'])}")
        print(f"landmarks, max diff (px):     {fmt(figures['landmark_max_px'])}")
        if pairs_detail:
            d, p, k = max(pairs_detail)
            print(f"worst pair:                   {p} box {k} L2 {d:.6f}")
        print(f"{verdict}: target max L2 <= {args.target}"
              + (f" — {'; '.join(reasons)}" if reasons else f" (max {fmt(figures['l2_max'])})"))
    return 0 if verdict == "PASS" else 1


# ------------------------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("sample", help="print a deterministic LFW sample")
    p.add_argument("--lfw", required=True)
    p.add_argument("--count", type=int, default=250)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("check-models", help="verify face_recognition_models against the pins")
    p.add_argument("--pins", required=True)
    p.set_defaults(func=cmd_check_models)

    p = sub.add_parser("reference", help="run the reference pipeline")
    p.add_argument("--list", required=True, help="file with one image path per line")
    p.add_argument("--out", required=True, help="JSONL output file")
    p.set_defaults(func=cmd_reference)

    p = sub.add_parser("compare", help="compare reference JSONL with 'facesearch export' JSONL")
    p.add_argument("reference")
    p.add_argument("export")
    p.add_argument("--target", type=float, default=0.01, help="max allowed L2 (default 0.01)")
    p.add_argument("--allow-unpaired", type=int, default=0,
                   help="faces detected by one side only that still PASS (default 0)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=cmd_compare)

    args = ap.parse_args()
    if getattr(args, "count", 1) < 1:
        die("--count must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
