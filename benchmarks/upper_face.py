"""Upper-face matching for faces hidden from below, measured face by face (single frames).

    .venv/bin/python benchmarks/upper_face.py [--models-dir data/models-mbf] [--cut 78]

A head in the row in front hides a student's chin and mouth (``crowded_rows`` in
``aas_core/tools/lecture_hall.py``). The lever: a second gallery whose portraits and
classroom templates are embedded with the aligned face's rows from ``--cut`` down (of 112:
78 = just under the nose) set to grey, probes embedded the same way, matched with a threshold of
its own set above every unknown person's best score on the calibration seeds (crowded_rows and
lecture_hall, seeds 11-14: strangers, and enrolled faces scored without their own student);
a face the product's matching leaves unknown is named when its upper-face score passes that
threshold. Reported on seeds 1-3 of both rooms, frame 0 of each snapshot: faces named rightly,
wrongly, strangers named, unknown-classmate probes named, product alone vs product + upper face.
Built on ``benchmarks/recognition_levers.py`` (its probes, galleries and the ``upper`` lever).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import recognition_levers as RL  # noqa: E402

from aas_core.tools.bench import default_dataset  # noqa: E402
from aas_core.tools.lecture_hall import CONDITIONS, make_hard_session  # noqa: E402
from aas_core.tools.synthetic import scrfd_locator  # noqa: E402
from aas_core.vision.pipeline import Pipeline  # noqa: E402
from aas_core.vision.profiles import resolve_profile  # noqa: E402
from aas_core.vision.templates import classroom_scale  # noqa: E402


def session_scores(hs, pipe: Pipeline, scale: float) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Per face of frame 0: (identity, enrolled, students, product scores, upper-face scores)."""
    probes = RL.session_probes(hs, pipe, ["base", "upper"], 1, None)
    out = []
    by_lever = {}
    for lever in ("base", "upper"):
        sc = RL.score_session(hs, pipe, probes, lever)
        by_lever[lever] = np.maximum(sc.portrait, sc.classroom * scale)  # as ClassroomGallery scores
    for i, p in enumerate(probes):
        out.append((p.identity, p.identity in hs.enroll, sc.students, by_lever["base"][i], by_lever["upper"][i]))
    return out


def unknown_best(rows: list[tuple], k: int) -> np.ndarray:
    """Best score of an unknown person: a stranger's, or an enrolled face's without its own student."""
    return np.array([np.delete(r[k], r[2].index(r[0])).max() if r[1] else r[k].max() for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "models")
    ap.add_argument("--cut", type=int, default=RL.UPPER_CUT, help="first greyed row of the 112 px aligned face")
    a = ap.parse_args()
    RL.UPPER_CUT = a.cut
    cfg, _ = resolve_profile("fast", a.models_dir)
    pipe = Pipeline(cfg, a.models_dir)
    pipe.warm_up()
    t = pipe.threshold
    scale = classroom_scale(pipe.embedder.name)
    if scale is None:
        raise SystemExit(f"{pipe.embedder.name} has no calibrated classroom scale")
    locate, dataset = scrfd_locator(a.models_dir), default_dataset()

    def run(seeds: list[int]) -> list[tuple]:
        return [row for cond in ("crowded_rows", "lecture_hall") for seed in seeds
                for row in session_scores(make_hard_session(dataset, locate, CONDITIONS[cond], seed=seed, burst=1),
                                          pipe, scale)]

    t0 = time.time()
    calib = run([11, 12, 13, 14])
    ub, uu = unknown_best(calib, 3), unknown_best(calib, 4)
    print(f"calibration unknown best: product p99 {np.quantile(ub, .99):.3f} max {ub.max():.3f}; "
          f"upper face p99 {np.quantile(uu, .99):.3f} max {uu.max():.3f} ({time.time() - t0:.0f} s)", flush=True)
    # The upper-face threshold sits where the product's does relative to the unknowns' 99th
    # percentile, and in any case above every calibration unknown.
    t_upper = max(float(uu.max()) + 0.005, float(np.quantile(uu, 0.99)) * t / float(np.quantile(ub, 0.99)))
    print(f"upper-face threshold {t_upper:.3f}", flush=True)
    for name, rows in (("calib", calib), ("eval 1-3", run([1, 2, 3]))):
        r = {"base": [0, 0, 0, 0], "either": [0, 0, 0, 0]}  # right, wrong, strangers named, classmates named
        n = 0
        for ident, enrolled, students, b, u in rows:
            named_b = students[int(b.argmax())] if b.max() >= t else None
            named_u = students[int(u.argmax())] if u.max() >= t_upper else None
            loo_b = enrolled and np.delete(b, students.index(ident)).max() >= t
            loo_u = enrolled and np.delete(u, students.index(ident)).max() >= t_upper
            for k, who, loo in (("base", named_b, loo_b), ("either", named_b or named_u, loo_b or loo_u)):
                if enrolled:
                    r[k][0] += who == ident
                    r[k][1] += who is not None and who != ident
                    r[k][3] += int(loo)
                else:
                    r[k][2] += who is not None
            n += enrolled
        print(f"{name}: {n} enrolled faces | product: right {r['base'][0]}, wrong {r['base'][1]}, "
              f"strangers named {r['base'][2]}, unknown classmates named {r['base'][3]} | + upper face: right "
              f"{r['either'][0]}, wrong {r['either'][1]}, strangers named {r['either'][2]}, "
              f"unknown classmates named {r['either'][3]}", flush=True)


if __name__ == "__main__":
    main()
