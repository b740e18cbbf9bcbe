#!/usr/bin/env python3
"""Helper of scripts/bench/bench-ingest.sh (standard library only).

    bench_ingest.py run --out FILE --stats FILE -- COMMAND...
        Runs COMMAND with stdout to FILE; writes {"seconds", "cpu_seconds", "peak_rss_kib", "rc", "cmd"}
        to --stats. CPU seconds (user + sys) and peak RSS (the largest resident set) cover the command
        and all its children (getrusage), e.g. the reference's --cpus worker processes.
    bench_ingest.py boxes DIR > FILE      (run with the reference virtualenv's python)
        The reference CLI's detection for every image in DIR, as "file,top,right,bottom,left" lines:
        images over 1600 px are shrunk first (as face_recognition_cli does), then HOG with one
        upsample (face_encodings' default); boxes are scaled back to the full image.
    bench_ingest.py report --images N --ref-stats F [--ref-stats F...] --ref-boxes F
                           --ours LABEL,STATS,EXPORT,SUMMARY [--ours ...] --sample DIR [--json]
        Prints the comparison: images/s, faces/s, peak RSS, ratio, face recall, for each facesearch
        run (LABEL: its extra index arguments; SUMMARY: its `index --json` output, whose
        stage_seconds and stage_cpu_seconds give the profile: the share of each stage).
"""
import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import time


def adopt_orphans():
    """Become the reaper of orphaned descendants (Linux), so that their CPU time counts too: the
    reference CLI leaves its --cpus worker processes to exit after it, unwaited."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def cmd_run(args):
    cmd = args.command[1:] if args.command and args.command[0] == "--" else args.command
    adopt_orphans()
    start = time.monotonic()
    with open(args.out, "wb") as out:
        rc = subprocess.call(cmd, stdout=out)
    seconds = time.monotonic() - start
    while True:  # reap the adopted orphans before reading the children's usage
        try:
            os.wait()
        except ChildProcessError:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(args.stats, "w") as f:
        json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                   "peak_rss_kib": usage.ru_maxrss, "rc": rc, "cmd": cmd}, f)
    if rc != 0:
        print("bench_ingest.py: %s exited with %d" % (cmd[0], rc), file=sys.stderr)
        return 2
    return 0


def cmd_boxes(args):
    import face_recognition  # the reference virtualenv only
    import numpy as np
    import PIL.Image

    for name in sorted(os.listdir(args.dir)):
        path = os.path.join(args.dir, name)
        img = PIL.Image.open(path).convert("RGB")
        scale = 1.0
        if max(img.size) > 1600:
            full = img.size[0]
            img.thumbnail((1600, 1600), PIL.Image.LANCZOS)
            scale = full / img.size[0]
        for top, right, bottom, left in face_recognition.face_locations(np.array(img), 1, "hog"):
            print("%s,%d,%d,%d,%d" % (path, round(top * scale), round(right * scale),
                                       round(bottom * scale), round(left * scale)))
    return 0


def reference_faces(path):
    """face_recognition CLI: one "file,name" line per face ("no_persons_found" when none)."""
    faces = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line and not line.endswith(",no_persons_found"):
            faces += 1
    return faces


def reference_boxes(path, sample):
    """face_detection CLI: "file,top,right,bottom,left" per face -> {realpath: [(x, y, w, h)]}."""
    boxes = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        parts = line.strip().rsplit(",", 4)
        if len(parts) != 5:
            continue
        f, top, right, bottom, left = parts[0], *map(int, parts[1:])
        key = os.path.realpath(f if os.path.isabs(f) else os.path.join(sample, f))
        boxes.setdefault(key, []).append((left, top, right - left, bottom - top))
    return boxes


def our_boxes(path):
    boxes = {}
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        b = r["box"]
        boxes.setdefault(os.path.realpath(r["image"]), []).append((b["x"], b["y"], b["w"], b["h"]))
    return boxes


def iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def recall(ref_boxes, mine):
    """How many of ref_boxes' faces have a box in `mine` (same image, IoU >= 0.5, one-to-one)."""
    found = 0
    for image, boxes in ref_boxes.items():
        candidates = list(mine.get(image, []))
        for b in boxes:
            match = next((c for c in candidates if iou(b, c) >= 0.5), None)
            if match is not None:
                found += 1
                candidates.remove(match)
    return found


STAGES = ("read", "decode", "detect", "landmarks", "embed", "store")


def profile(summary_file):
    """{"wall": {stage: share}, "cpu": {stage: share}, "cpu_seconds": {...}} from `index --json`."""
    try:
        summary = json.loads(open(summary_file).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    out = {}
    for key, name in (("stage_seconds", "wall"), ("stage_cpu_seconds", "cpu")):
        st = summary.get(key)
        if not st:
            continue
        total = sum(st.get(k, 0) for k in STAGES)
        out[name] = {k: round(st.get(k, 0) / total, 4) if total else 0 for k in STAGES}
        out[name + "_seconds"] = {k: round(st.get(k, 0), 2) for k in STAGES}
    return out


def cmd_report(args):
    n = args.images
    refs = [json.load(open(p)) for p in args.ref_stats]
    best = min(refs, key=lambda r: r["seconds"])
    ref_out = best["cmd"]
    ref_faces = reference_faces(args.ref_stats[refs.index(best)].replace(".json", ".out"))
    ref_boxes = reference_boxes(args.ref_boxes, args.sample)
    total = sum(len(v) for v in ref_boxes.values())
    runs = []
    for spec in args.ours:
        label, stats_file, export_file, summary_file = spec.rsplit(",", 3)
        stats = json.load(open(stats_file))
        mine = our_boxes(export_file)
        runs.append((label, stats, mine, profile(summary_file)))
    # The boxes of the facesearch run that found the most faces (e.g. --detect-max-side 0) stand in
    # for "everything facesearch finds" when the runs are compared with each other.
    most_boxes = max((r[2] for r in runs), key=lambda m: sum(len(v) for v in m.values()))
    most_total = sum(len(v) for v in most_boxes.values())
    row = lambda s, faces: {  # noqa: E731
        "seconds": round(s["seconds"], 2),
        "cpu_seconds": round(s["cpu_seconds"], 2),
        "images_per_s": round(n / s["seconds"], 2),
        "faces": faces,
        "faces_per_s": round(faces / s["seconds"], 2),
        "peak_rss_mib": round(s["peak_rss_kib"] / 1024, 1),
    }
    result = {
        "images": n,
        "reference": dict(row(best, ref_faces), cpus=ref_out[ref_out.index("--cpus") + 1]),
        "reference_runs": [{"cpus": r["cmd"][r["cmd"].index("--cpus") + 1], "seconds": round(r["seconds"], 2),
                            "cpu_seconds": round(r["cpu_seconds"], 2)} for r in refs],
        "reference_boxes": total,
        "facesearch_runs": [],
    }
    for label, stats, mine, prof in runs:
        faces = sum(len(v) for v in mine.values())
        found = recall(ref_boxes, mine)
        result["facesearch_runs"].append(dict(
            row(stats, faces),
            args=label,
            throughput_ratio=round(best["seconds"] / stats["seconds"], 2),
            cpu_ratio=round(best["cpu_seconds"] / stats["cpu_seconds"], 2),
            face_recall=round(found / total, 4) if total else None,
            recall_vs_most=round(recall(most_boxes, mine) / most_total, 4) if most_total else None,
            profile=prof))
    result["facesearch"] = result["facesearch_runs"][0]  # the first run, as before
    result["throughput_ratio"] = result["facesearch"]["throughput_ratio"]
    result["face_recall"] = result["facesearch"]["face_recall"]
    if args.json:
        print(json.dumps(result))
        return 0
    r = result["reference"]
    print("%d images" % n)
    print("%-44s %8s %8s %9s %7s %9s %10s %6s %6s %8s %8s" % (
        "", "seconds", "CPU s", "images/s", "faces", "faces/s", "peak RSS", "ratio", "CPU r.", "recall", "vs most"))
    print("%-44s %8.1f %8.1f %9.2f %7d %9.2f %6.0f MiB" % (
        "reference face_recognition --cpus " + r["cpus"], r["seconds"], r["cpu_seconds"], r["images_per_s"],
        r["faces"], r["faces_per_s"], r["peak_rss_mib"]))
    pct = lambda x: "n/a" if x is None else "%.2f%%" % (100.0 * x)  # noqa: E731
    for o in result["facesearch_runs"]:
        print("%-44s %8.1f %8.1f %9.2f %7d %9.2f %6.0f MiB %5.2fx %5.2fx %8s %8s" % (
            ("facesearch index " + o["args"]).strip()[:44], o["seconds"], o["cpu_seconds"], o["images_per_s"],
            o["faces"], o["faces_per_s"], o["peak_rss_mib"], o["throughput_ratio"], o["cpu_ratio"],
            pct(o["face_recall"]), pct(o["recall_vs_most"])))
    print("ratio: reference time / facesearch time (CPU r.: of CPU time, user + sys, children included); "
          "recall: share of the reference's %d faces found (IoU >= 0.5); vs most: share of the faces of the "
          "facesearch run that found the most" % total)
    print("reference runs: " + ", ".join("--cpus %s %.1f s (CPU %.1f s)" % (x["cpus"], x["seconds"],
                                                                            x["cpu_seconds"])
                                         for x in result["reference_runs"]))
    for o in result["facesearch_runs"]:
        prof = o["profile"]
        if not prof:
            continue
        for kind in ("cpu", "wall"):
            if kind in prof:
                print("profile (%s time, summed over workers) of facesearch index %s: %s" % (
                    kind, o["args"] or "(defaults)",
                    ", ".join("%s %.1f%% (%.1f s)" % (k, 100 * prof[kind][k], prof[kind + "_seconds"][k])
                              for k in STAGES)))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--stats", required=True)
    r.add_argument("command", nargs=argparse.REMAINDER)
    b = sub.add_parser("boxes")
    b.add_argument("dir")
    rep = sub.add_parser("report")
    rep.add_argument("--images", type=int, required=True)
    rep.add_argument("--ref-stats", action="append", required=True)
    rep.add_argument("--ref-boxes", required=True)
    rep.add_argument("--ours", action="append", required=True)
    rep.add_argument("--sample", required=True)
    rep.add_argument("--json", action="store_true")
    args = p.parse_args()
    return {"run": cmd_run, "boxes": cmd_boxes, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
