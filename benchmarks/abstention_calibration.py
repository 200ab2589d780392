"""Where is a face too poor to identify? Calibration of ``vision.face_quality.POOR_QUALITY``.

    .venv/bin/python benchmarks/abstention_calibration.py [--conditions lecture_hall crowded_rows]
        [--seeds 11 12 13 14] [--profile fast] [--models-dir ../shared/models]

Hard lecture halls (aas_core/tools/lecture_hall.py, frame 0 of each snapshot) on seeds that the
benchmark (seeds 1-3) does not use; the roster enrolled as benchmarks/lecture_hall.py does.
Every detected face that overlaps a ground-truth face (IoU >= 0.3) is measured
(``face_quality.measure``); per quality bin the table gives how many faces of enrolled
students were named correctly by the open-set threshold, and how many strangers' faces there
were. The cut is the quality below which even genuine faces rarely reach the threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lecture_hall import enroll_roster

from aas_core.config import PROJECT_ROOT
from aas_core.db import init_db, repo, session_scope
from aas_core.media.store import ImageStore
from aas_core.tools.bench import default_dataset
from aas_core.tools.lecture_hall import CONDITIONS, make_hard_session
from aas_core.tools.synthetic import scrfd_locator
from aas_core.vision.face_quality import measure_all
from aas_core.vision.matching import Gallery
from aas_core.vision.nms import box_iou
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

BINS = [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01]


def collect(conditions: list[str], seeds: list[int], pipe: Pipeline, locate) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = []
    for name in conditions:
        for seed in seeds:
            hs = make_hard_session(default_dataset(), locate, CONDITIONS[name], seed=seed, burst=1)
            tmp = Path(tempfile.mkdtemp())
            url = f"sqlite:///{tmp / 'aas.db'}"
            init_db(url)
            enroll_roster(url, ImageStore(tmp / "data"), pipe, hs)
            with session_scope(url) as s:
                ids, embs = repo.gallery_arrays(s, repo.get_course(s, "C"), pipe.embedder.name)
            gallery = Gallery(ids, embs, pipe.embedder.name)
            for b in hs.bursts:
                img = b.frames[0]
                r = pipe.run(img, gallery, None)
                if not len(r.faces):
                    continue
                q = measure_all(img, r.faces)
                tb = np.array([f.box for f in b.faces], np.float32).reshape(-1, 4)
                iou = box_iou(r.faces.xyxy.astype(np.float32), tb)
                for i in range(len(r.faces)):
                    j = int(iou[i].argmax())
                    if iou[i, j] < 0.3:
                        continue
                    who = b.faces[j].identity
                    named = r.match.assigned[i] if r.match else None
                    top = r.match.top_ids[i][0] if r.match and r.match.top_ids[i] else None
                    rows.append({"condition": name, "genuine": who in hs.truth, "right": named == who,
                                 "named": named is not None, "top1_right": top == who, "q": q[i].score,
                                 **{f"c_{k}": v for k, v in q[i].components.items()}})
    return rows


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties half."""
    if not len(pos) or not len(neg):
        return float("nan")
    p, n = pos[:, None], neg[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", nargs="+", default=["lecture_hall", "crowded_rows"], choices=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14])
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    ap.add_argument("--dump", type=Path, help="write the measured faces as JSON here")
    a = ap.parse_args()
    cfg, _ = resolve_profile(a.profile, a.models_dir)
    pipe = Pipeline(cfg, a.models_dir)
    pipe.warm_up()
    rows = collect(a.conditions, a.seeds, pipe, scrfd_locator(a.models_dir))
    if a.dump:
        a.dump.write_text(json.dumps(rows))
    gen = [r for r in rows if r["genuine"]]
    strangers = [r for r in rows if not r["genuine"]]
    print(f"profile {a.profile}, conditions {a.conditions}, seeds {a.seeds}: {len(gen)} genuine faces, "
          f"{len(strangers)} strangers' faces (detected, IoU >= 0.3 with the truth)")
    right = np.array([r["right"] for r in gen])
    for key in ["q", "c_size", "c_sharpness", "c_exposure", "c_detector", "c_pose"]:
        v = np.array([r[key] for r in gen])
        print(f"  AUC of {key:12s} for 'genuine face named correctly': {auc(v[right], v[~right]):.3f}")
    print("\n| quality | genuine faces | named correctly | share | strangers' faces | strangers named |")
    print("|---|---|---|---|---|---|")
    for lo, hi in itertools.pairwise(BINS):
        g = [r for r in gen if lo <= r["q"] < hi]
        st = [r for r in strangers if lo <= r["q"] < hi]
        share = f"{sum(r['right'] for r in g) / len(g):.0%}" if g else "–"
        print(f"| [{lo:.1f}, {min(hi, 1.0):.1f}) | {len(g)} | {sum(r['right'] for r in g)} | {share} | {len(st)} | "
              f"{sum(r['named'] for r in st)} |")
    print("\n| cut | genuine below: named | genuine at/above: named |")
    print("|---|---|---|")
    for cut in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
        lo = [r for r in gen if r["q"] < cut]
        hi = [r for r in gen if r["q"] >= cut]
        f = lambda xs: f"{sum(r['right'] for r in xs)}/{len(xs)}" + (f" ({sum(r['right'] for r in xs) / len(xs):.0%})" if xs else "")
        print(f"| {cut:.2f} | {f(lo)} | {f(hi)} |")


if __name__ == "__main__":
    main()
