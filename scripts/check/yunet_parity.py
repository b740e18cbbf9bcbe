#!/usr/bin/env python3
"""scripts/check/yunet_parity.py — does our YuNet decoder (src/face/yunet_detector.cpp, on Debian's
OpenCV 4.6 DNN) find what OpenCV >= 4.8's cv2.FaceDetectorYN finds? (issue #17)

  scripts/check/yunet_parity.py [--build DIR] [--models DIR] [--lfw DIR] [--count N] [--spec "PIP_SPEC..."]

Makes a throw-away virtualenv with opencv-python-headless from PyPI (PIP_SPEC, default
"opencv-python-headless>=4.8,<5"; several requirements separated by spaces, e.g.
"opencv-python-headless==4.8.1.78 numpy<2" for a build made against NumPy 1), runs
cv2.FaceDetectorYN on the test images (~/.cache/facesearch/test-images) and the first N LFW images
(default 300, sorted by path, from ../shared/data/lfw/images beside the checkout), at the
default score threshold 0.9 and at the retry threshold 0.5, and compares with DIR/yunet_dump (built
with `cmake --build build --target yunet_dump`). Both sides see the same pixels: each image is
decoded once by cv2.imread and written as a lossless PNG, which both then read. Exit status 0 when
every image has the same number of faces, boxes and landmarks within 0.01 px and scores within 1e-4.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import venv

BOX_TOL = 0.01
SCORE_TOL = 1e-4
THRESHOLDS = (0.9, 0.5)


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "facesearch", name)


def images(lfw, count):
    test = sorted(glob.glob(os.path.join(os.environ.get("FACESEARCH_TEST_IMAGES") or cache_dir("test-images"), "*.jpg")))
    return test + sorted(glob.glob(os.path.join(lfw, "*", "*.jpg")))[:count]


def reference(args, work):
    """Runs inside the virtualenv: writes the PNGs and cv2's detections per threshold."""
    import cv2  # noqa: only in the virtualenv

    model = os.path.join(args.models, "face_detection_yunet_2023mar.onnx")
    with open(os.path.join(work, "list.txt")) as f:
        sources = f.read().split("\n")[:-1]
    out = {"version": cv2.__version__, "pngs": [], "faces": {str(t): [] for t in THRESHOLDS}}
    for i, src in enumerate(sources):
        img = cv2.imread(src)
        png = os.path.join(work, "%04d.png" % i)
        cv2.imwrite(png, img)
        out["pngs"].append(png)
        h, w = img.shape[:2]
        for t in THRESHOLDS:
            det = cv2.FaceDetectorYN.create(model, "", (w, h), t, 0.3, 5000)
            _, faces = det.detect(img)
            out["faces"][str(t)].append([] if faces is None else faces.tolist())
    with open(os.path.join(work, "reference.json"), "w") as f:
        json.dump(out, f)


def ours(args, pngs, threshold):
    r = subprocess.run([os.path.join(args.build, "yunet_dump"), args.models, "--score", str(threshold)],
                       input="\n".join(pngs) + "\n", capture_output=True, text=True, check=True)
    return [json.loads(line) for line in r.stdout.splitlines()]


def compare(sources, ref, mine):
    worst = {"box": 0.0, "landmark": 0.0, "score": 0.0}
    bad = []
    faces = 0
    for src, a, b in zip(sources, ref, mine):
        if "error" in b:
            bad.append("%s: ours failed: %s" % (src, b["error"]))
            continue
        b = b["faces"]
        if len(a) != len(b):
            bad.append("%s: cv2 found %d faces, ours %d" % (src, len(a), len(b)))
            continue
        faces += len(a)
        for fa, fb in zip(a, b):
            worst["box"] = max(worst["box"], *(abs(x - y) for x, y in zip(fa[:4], fb[:4])))
            worst["landmark"] = max(worst["landmark"], *(abs(x - y) for x, y in zip(fa[4:14], fb[4:14])))
            worst["score"] = max(worst["score"], abs(fa[14] - fb[14]))
    return faces, worst, bad


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--models", default=os.environ.get("FACESEARCH_MODELS") or cache_dir("models"))
    p.add_argument("--lfw", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "lfw", "images"))
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--spec", default="opencv-python-headless>=4.8,<5")
    p.add_argument("--reference", metavar="WORK", help=argparse.SUPPRESS)  # the in-venv half
    args = p.parse_args()
    if args.reference:
        return reference(args, args.reference)

    sources = images(args.lfw, args.count)
    if len(sources) < 200:
        sys.exit("yunet_parity.py: only %d images found (--lfw %s); 200 or more are needed" % (len(sources), args.lfw))
    with tempfile.TemporaryDirectory(prefix="yunet-parity.") as work:
        env_dir = os.path.join(work, "venv")
        venv.create(env_dir, with_pip=True)
        py = os.path.join(env_dir, "bin", "python")
        subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args.spec.split()],
                       check=True)
        with open(os.path.join(work, "list.txt"), "w") as f:
            f.write("".join(s + "\n" for s in sources))
        subprocess.run([py, os.path.abspath(__file__), "--models", args.models, "--reference", work], check=True)
        with open(os.path.join(work, "reference.json")) as f:
            ref = json.load(f)
        ok = True
        print("cv2 %s vs yunet_dump, %d images (%d test images + LFW)" % (ref["version"], len(sources),
              len(sources) - min(args.count, len(sources))))
        for t in THRESHOLDS:
            faces, worst, bad = compare(sources, ref["faces"][str(t)], ours(args, ref["pngs"], t))
            print("score >= %.1f: %d faces, %d images differ in count or failed; max |diff|: box %.2g px, "
                  "landmark %.2g px, score %.2g" % (t, faces, len(bad), worst["box"], worst["landmark"], worst["score"]))
            for line in bad[:10]:
                print("  " + line)
            ok = ok and not bad and worst["box"] <= BOX_TOL and worst["landmark"] <= BOX_TOL and worst["score"] <= SCORE_TOL
        print("parity: " + ("yes" if ok else "NO"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
