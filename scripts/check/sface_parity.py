#!/usr/bin/env python3
"""scripts/check/sface_parity.py — does `--model sface` (src/face/sface_embedder.cpp, on Debian's
OpenCV 4.6 DNN) embed faces as OpenCV's own cv2.FaceRecognizerSF does? (issue #17)

  scripts/check/sface_parity.py [--build DIR] [--models DIR] [--lfw DIR] [--count N] [--spec "PIP_SPEC..."]

Makes a throw-away virtualenv with opencv-python-headless from PyPI (default
"opencv-python-headless>=4.8,<5"), and on the first N LFW images (default 200, sorted by path)
runs cv2.FaceDetectorYN (score 0.9), FaceRecognizerSF.alignCrop and .feature, L2-normalising the
feature; then indexes the same pixels with DIR/facesearch `index --model sface --retry none` and
reads the embeddings back with `export`. Both sides see the same pixels: each image is decoded once
by cv2.imread and written as a lossless PNG. Faces are paired by their box; prints the largest and
mean Euclidean distance between paired embeddings. Exit status 0 when every image has the same
number of faces and every distance is within 0.01 (dlib's parity target).
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile
import venv

TOL = 0.01


def cache_dir(name):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "facesearch", name)


def reference(args, work):
    """Runs inside the virtualenv: writes the PNGs and cv2's faces and unit features."""
    import cv2  # noqa: only in the virtualenv
    import numpy as np  # noqa: only in the virtualenv

    det_model = os.path.join(args.models, "face_detection_yunet_2023mar.onnx")
    rec = cv2.FaceRecognizerSF.create(os.path.join(args.models, "face_recognition_sface_2021dec.onnx"), "")
    with open(os.path.join(work, "list.txt")) as f:
        sources = f.read().split("\n")[:-1]
    out = {"version": cv2.__version__, "faces": {}}
    os.makedirs(os.path.join(work, "png"))
    for i, src in enumerate(sources):
        img = cv2.imread(src)
        png = os.path.join(work, "png", "%04d.png" % i)
        cv2.imwrite(png, img)
        h, w = img.shape[:2]
        det = cv2.FaceDetectorYN.create(det_model, "", (w, h), 0.9, 0.3, 5000)
        _, faces = det.detect(img)
        rows = []
        for face in ([] if faces is None else faces):
            feature = rec.feature(rec.alignCrop(img, face)).flatten()
            rows.append({"box": face[:4].tolist(), "embedding": (feature / np.linalg.norm(feature)).tolist()})
        out["faces"][png] = rows
    with open(os.path.join(work, "reference.json"), "w") as f:
        json.dump(out, f)


def ours(args, work):
    corpus = os.path.join(work, "corpus")
    binary = os.path.join(args.build, "facesearch")
    common = [binary, "--corpus", corpus, "--models", args.models, "-q"]
    subprocess.run(common + ["index", "--model", "sface", "--retry", "none", os.path.join(work, "png")], check=True)
    r = subprocess.run(common + ["export"], capture_output=True, text=True, check=True)
    faces = {}
    for line in r.stdout.splitlines():
        row = json.loads(line)
        faces.setdefault(os.path.realpath(row["image"]), []).append(row)
    return faces


def centre(box):
    if isinstance(box, dict):
        return box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build")
    p.add_argument("--models", default=os.environ.get("FACESEARCH_MODELS") or cache_dir("models"))
    p.add_argument("--lfw", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "lfw", "images"))
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--spec", default="opencv-python-headless>=4.8,<5")
    p.add_argument("--reference", metavar="WORK", help=argparse.SUPPRESS)  # the in-venv half
    args = p.parse_args()
    if args.reference:
        return reference(args, args.reference)

    sources = sorted(glob.glob(os.path.join(args.lfw, "*", "*.jpg")))[:args.count]
    if not sources:
        sys.exit("sface_parity.py: no images under --lfw %s" % args.lfw)
    with tempfile.TemporaryDirectory(prefix="sface-parity.") as work:
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
        mine = ours(args, work)
        distances, bad = [], []
        for png, faces in sorted(ref["faces"].items()):
            got = mine.get(os.path.realpath(png), [])
            if len(got) != len(faces):
                bad.append("%s: cv2 found %d faces, ours %d" % (png, len(faces), len(got)))
                continue
            for face in faces:
                cx, cy = centre(face["box"])
                row = min(got, key=lambda r: (centre(r["box"])[0] - cx) ** 2 + (centre(r["box"])[1] - cy) ** 2)
                distances.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(face["embedding"], row["embedding"]))))
        worst = max(distances) if distances else float("nan")
        print("cv2 %s FaceRecognizerSF vs facesearch --model sface, %d LFW images: %d faces paired, %d images "
              "differ in count; distance max %.2g, mean %.2g" % (ref["version"], len(sources), len(distances),
                                                                  len(bad), worst, sum(distances) / max(1, len(distances))))
        for line in bad[:10]:
            print("  " + line)
        ok = not bad and distances and worst <= TOL
        print("parity: " + ("yes" if ok else "NO"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
