"""Corrections that teach, measured: one round of an instructor's corrections, then the next lecture.

    .venv/bin/python benchmarks/corrections_round.py [--conditions lecture_hall crowded_rows]
        [--seeds 1 2 3] [--thresholds default 0.25] [--profile fast] [--models-dir ../shared/models]

Per condition, seed and course threshold, on a fresh SQLite database (as ``aas session run``):

1. day 0: the class of the hard benchmark (``aas_core/tools/lecture_hall.py``, 28 students +
   4 strangers) has a lecture; every face the machine named wrongly (its box matches a face of
   another person in the ground truth, or none) is corrected by the "instructor" as a person
   would: reassigned to the right student when they are enrolled (``review.correct_face``, no
   gallery update), else rejected ("that face is not X", ``corrections.reject_face``);
2. day 1 (same class and seats, another day: attendance, light, noise and photos drawn again,
   ``make_hard_session(day=1)``) is run twice on the same database: once *before* the day-0
   corrections are applied and once after (the day-1 session of the first run is deleted
   first, so each run sees the same roster and gallery).

Printed: day-1 false presences (absent in truth, marked otherwise), wrong names (faces named
as someone they are not, after seat continuity), strangers named, statuses right and students
needing review, before / after the corrections. Lower thresholds name more faces, wrongly too:
that is where corrections have something to teach.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lecture_hall import enroll_roster  # noqa: E402  (the hard benchmark's own enrollment)

from aas_core.config import PROJECT_ROOT, get_settings  # noqa: E402
from aas_core.db import init_db, repo, session_scope  # noqa: E402
from aas_core.db.models import ClassSession, FaceCorrection, FaceObservation, Role, Snapshot  # noqa: E402
from aas_core.media.store import ImageStore  # noqa: E402
from aas_core.services import corrections  # noqa: E402
from aas_core.services.auth import AuthUser  # noqa: E402
from aas_core.services.review import correct_face  # noqa: E402
from aas_core.services.sessions import SessionService  # noqa: E402
from aas_core.tools.bench import default_dataset  # noqa: E402
from aas_core.tools.lecture_hall import CONDITIONS, HardSession, make_hard_session  # noqa: E402
from aas_core.tools.synthetic import scrfd_locator  # noqa: E402
from aas_core.vision.pipeline import Pipeline  # noqa: E402
from aas_core.vision.profiles import resolve_profile  # noqa: E402

INSTRUCTOR = AuthUser(0, "benchmark-instructor", Role.ADMIN)


def _iou(a, b) -> float:  # type: ignore[no-untyped-def]
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def wrong_names(url: str, session_id: int, hs: HardSession) -> list[tuple[int, str, str | None]]:
    """(observation id, name given, true identity or None) for every face named wrongly."""
    out = []
    with session_scope(url) as s:
        for snap in s.scalars(select(Snapshot).where(Snapshot.session_id == session_id)):
            truth = hs.bursts[snap.index].faces
            for o in snap.observations:
                if o.student_id is None or o.match_source == "manual":
                    continue
                box = (o.x1, o.y1, o.x2, o.y2)
                best = max(truth, key=lambda f: _iou(box, f.box), default=None)
                who = best.identity if best is not None and _iou(box, best.box) >= 0.3 else None
                if o.student.student_number != who:
                    out.append((o.id, o.student.student_number, who))
    return out


def day_figures(url: str, out, hs: HardSession) -> dict[str, float]:  # type: ignore[no-untyped-def]
    wrong = wrong_names(url, out.session_id, hs)
    return {"false_presence": sum(v == "absent" and out.statuses[k] != "absent" for k, v in hs.truth.items()),
            "wrong_names": len(wrong), "strangers_named": sum(w is None or w in hs.strangers for _, _, w in wrong),
            "right": sum(out.statuses[k] == v for k, v in hs.truth.items()), "students": len(hs.truth),
            "needs_review": len(out.needs_review)}


def run_round(cond: str, seed: int, threshold: float | None, pipe: Pipeline, locate) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    day0 = make_hard_session(default_dataset(), locate, CONDITIONS[cond], seed=seed, burst=1)
    day1 = make_hard_session(default_dataset(), locate, CONDITIONS[cond], seed=seed, burst=1, day=1)
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'aas.db'}"
    init_db(url)
    store = ImageStore(tmp / "data")
    enroll_roster(url, store, pipe, day0)
    if threshold is not None:
        with session_scope(url) as s:
            course = repo.get_course(s, "C")
            rec = course.config.recognition.model_copy(update={"threshold": threshold})
            course.config = course.config.model_copy(update={"recognition": rec})
    svc = SessionService(url, store, pipe, get_settings())
    first = svc.run_from_images("C", [b.frames[0] for b in day0.bursts])
    to_correct = wrong_names(url, first.session_id, day0)
    before = svc.run_from_images("C", [b.frames[0] for b in day1.bursts])
    figures = {"day0": day_figures(url, first, day0), "before": day_figures(url, before, day1)}
    with session_scope(url) as s:  # the "before" run leaves nothing the "after" run could learn from
        s.delete(s.get(ClassSession, before.session_id))
    enrolled = set(day0.truth)
    for obs_id, _named, who in to_correct:
        with session_scope(url) as s:  # an earlier correction of the same snapshot may have unnamed it
            if s.get(FaceObservation, obs_id).student_id is None:
                continue
        if who in enrolled:
            correct_face(svc, INSTRUCTOR, obs_id, who)
        else:
            corrections.reject_face(svc, INSTRUCTOR, obs_id)
    with session_scope(url) as s:
        n_corr = s.query(FaceCorrection).count()
    after = svc.run_from_images("C", [b.frames[0] for b in day1.bursts])
    figures["after"] = day_figures(url, after, day1)
    figures["after"]["corrections"] = n_corr
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", nargs="+", default=["lecture_hall", "crowded_rows"], choices=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--thresholds", nargs="+", default=["default", "0.25"],
                    help="course thresholds to run ('default' = the embedder's calibrated one)")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    a = ap.parse_args()
    cfg, _ = resolve_profile(a.profile, a.models_dir)
    pipe = Pipeline(cfg, a.models_dir)
    pipe.warm_up()
    locate = scrfd_locator(a.models_dir)
    totals: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float)))
    for th in a.thresholds:
        threshold = None if th == "default" else float(th)
        for cond in a.conditions:
            for seed in a.seeds:
                r = run_round(cond, seed, threshold, pipe, locate)
                for phase, fig in r.items():
                    for k, v in fig.items():
                        totals[(th, cond)][phase][k] += v
                print(f"threshold {th}, {cond} seed {seed}: day-0 wrong names {r['day0']['wrong_names']} "
                      f"-> {r['after']['corrections']} corrections; day 1 before/after: false presences "
                      f"{r['before']['false_presence']}/{r['after']['false_presence']}, wrong names "
                      f"{r['before']['wrong_names']}/{r['after']['wrong_names']}, strangers named "
                      f"{r['before']['strangers_named']}/{r['after']['strangers_named']}, statuses right "
                      f"{r['before']['right']}/{r['after']['right']} of {r['before']['students']}, needs review "
                      f"{r['before']['needs_review']}/{r['after']['needs_review']}", flush=True)
    print(f"\nprofile {a.profile}, seeds {a.seeds}, one frame per snapshot; day 1 before -> after one round of "
          "corrections from day 0")
    print("| threshold | condition | corrections | false presences | wrong names | strangers named | "
          "statuses right | needs review |")
    print("|---|---|---|---|---|---|---|---|")
    for (th, cond), t in totals.items():
        b, f = t["before"], t["after"]
        print(f"| {th} | {cond} | {int(f['corrections'])} | {int(b['false_presence'])} → {int(f['false_presence'])} | "
              f"{int(b['wrong_names'])} → {int(f['wrong_names'])} | {int(b['strangers_named'])} → "
              f"{int(f['strangers_named'])} | {b['right'] / b['students']:.1%} → {f['right'] / f['students']:.1%} | "
              f"{int(b['needs_review'])} → {int(f['needs_review'])} |")


if __name__ == "__main__":
    main()
