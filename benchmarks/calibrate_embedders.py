"""Calibrate open-set thresholds of the embedders on a labelled face folder (default faces_dev).

For every photo: SCRFD-2.5g finds the face nearest the centre (small aligned crops are padded first,
detectors need context), each embedder embeds it, then all pairs are scored:

* genuine / impostor cosine statistics,
* the threshold at FAR = 1e-3 on impostor pairs (what ``default_threshold`` stores),
* the true-accept rate there and leave-one-out rank-1,
* the roster-level FAR of that threshold with :class:`~aas_core.vision.matching.Gallery`
  scoring (max over a student's mean and samples), which is what a class actually sees.

Usage::

    .venv/bin/python benchmarks/calibrate_embedders.py [--data DIR] [--models DIR]
        [--arcface mobilefacenet --arcface w600k_r50.onnx] [--no-dlib] [--far 1e-3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aas_core.vision.embed import ArcFaceOnnxEmbedder, DlibResnetEmbedder, far_threshold  # noqa: E402
from aas_core.vision.matching import Gallery  # noqa: E402
from aas_core.vision.types import Detections  # noqa: E402


def detect_faces(root: Path, models: Path) -> tuple[list[np.ndarray], list[Detections], np.ndarray]:
    from insightface.model_zoo import get_model

    det = get_model(str(models / "scrfd_2.5g.onnx"), providers=["CPUExecutionProvider"])
    det.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=0.5)
    images, faces, labels = [], [], []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(person.glob("*.jpg")):
            img = cv2.imread(str(f))
            pad = max(img.shape[:2]) // 2 if max(img.shape[:2]) <= 128 else 0
            padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else img
            boxes, kps = det.detect(padded, input_size=(640, 640))
            if not len(boxes):
                print(f"no face: {f}", file=sys.stderr)
                continue
            # the subject is centred (LFW, glint); the largest box may be a cut-off bystander
            centres = (boxes[:, :2] + boxes[:, 2:4]) / 2 - pad
            h, w = img.shape[:2]
            i = int(np.argmin(np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)))
            images.append(img)
            faces.append(Detections(boxes[i : i + 1, :4] - pad, boxes[i : i + 1, 4], kps[i : i + 1] - pad))
            labels.append(person.name)
    return images, faces, np.array(labels)


def evaluate(name: str, emb: np.ndarray, labels: np.ndarray, far: float) -> None:
    sims = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    same = (labels[:, None] == labels[None, :])[iu]
    s = sims[iu]
    gen, imp = s[same], s[~same]
    thr = far_threshold(imp, far)
    np.fill_diagonal(sims, -np.inf)
    rank1 = float((labels[sims.argmax(1)] == labels).mean())
    print(f"{name}: {len(gen)} genuine / {len(imp)} impostor pairs")
    print(f"  genuine  {gen.mean():.3f} +- {gen.std():.3f}   impostor {imp.mean():.3f} +- {imp.std():.3f}")
    print(f"  threshold at FAR={far:g}: {thr:.4f}  TAR there {(gen >= thr).mean():.3f}  "
          f"rank-1 (leave-one-out) {rank1:.3f}")
    # Roster level, as a class sees it: gallery = first 5 photos of every identity but one,
    # probes = all photos of the held-out identity (unknown people) ...
    ids = np.unique(labels)
    unknown_best = []
    for held in ids:
        keep = np.concatenate([np.flatnonzero(labels == i)[:5] for i in ids if i != held])
        g = Gallery(list(labels[keep]), emb[keep], name)
        unknown_best.append(g.match(emb[labels == held], threshold=thr, top_k=1, model_name=name).top_similarity[:, 0])
    unknown = np.concatenate(unknown_best)
    # ... and the enrolled people's other photos (known probes), against the full gallery
    enrolled = np.concatenate([np.flatnonzero(labels == i)[:5] for i in ids])
    probes = np.setdiff1d(np.arange(len(labels)), enrolled)
    g = Gallery(list(labels[enrolled]), emb[enrolled], name)
    res = g.match(emb[probes], threshold=thr, top_k=1, model_name=name)
    top_ok = np.array([t[0] == lab for t, lab in zip(res.top_ids, labels[probes])])
    known = res.top_similarity[:, 0]

    def report(t: float, what: str) -> None:
        dir_ = float((top_ok & (known >= t)).mean())
        print(f"  {what} {t:.4f}: unknown people matched to someone {(unknown >= t).mean():.3f}, "
              f"enrolled people identified (top-1 right and >= threshold) {dir_:.3f}")

    print(f"  roster level ({len(ids) - 1} enrolled x 5 samples, Gallery max(mean, samples) scoring):")
    report(thr, "pair threshold")
    report(far_threshold(unknown, 0.01), "threshold for 1% unknown-person false accepts")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(__file__).resolve().parents[2] / "shared"
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("AAS_TEST_DATA", shared / "data")) / "faces_dev")
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("AAS_MODELS_DIR", shared / "models")))
    ap.add_argument("--arcface", action="append", help="ArcFace ONNX model(s); default mobilefacenet")
    ap.add_argument("--no-dlib", action="store_true")
    ap.add_argument("--far", type=float, default=1e-3)
    a = ap.parse_args()

    t = time.perf_counter()
    images, faces, labels = detect_faces(a.data, a.models)
    print(f"{len(images)} faces of {len(set(labels))} identities detected in {time.perf_counter() - t:.1f} s")
    embedders: list[ArcFaceOnnxEmbedder | DlibResnetEmbedder] = [
        ArcFaceOnnxEmbedder(m, a.models) for m in (a.arcface or ["mobilefacenet"])
    ]
    if not a.no_dlib:
        embedders.append(DlibResnetEmbedder())
    for e in embedders:
        t = time.perf_counter()
        emb = np.concatenate([e.embed(img, f) for img, f in zip(images, faces)])
        ms = (time.perf_counter() - t) * 1000 / len(images)
        print(f"\n{e.name} ({ms:.1f} ms/face incl. alignment), current default_threshold {e.default_threshold}")
        evaluate(e.name, emb, labels, a.far)


if __name__ == "__main__":
    main()
