"""Hard benchmark: whole sessions in synthetic lecture halls (aas_core/tools/lecture_hall.py).

    .venv/bin/python benchmarks/lecture_hall.py [--conditions lecture_hall crowded_rows ...]
        [--seeds 1 2 3] [--frames 1] [--profile fast] [--models-dir ../shared/models]

Per condition and seed: 28 students (attended / late / left-early / absent) + 4 strangers from
../shared/data/faces_dev, 3 snapshots; enrollment through the real quality and identity gates
(first 5 photos; photos the identity check holds are accepted, as a reviewer who looked at
them would: they are the student's own photos); the session through
``SessionService.run_from_images`` on a fresh SQLite database, as ``aas session run`` does.
``--frames N`` uses the first N frames of each snapshot's burst (N=1: a single photo per
snapshot, the pre-burst behaviour); N > 1 is processed as ``aas session run`` does a folder
per snapshot: every frame detected and embedded, faces followed through the burst and their
embeddings fused by quality (``vision.fusion``; ``--stack``: plus each face's pixels stacked
over the burst, a lever measured in docs/EVALUATION.md and off in the product), matched once.

Reported per condition: statuses right, **false presences** (a student absent in truth marked
anything but absent), present students marked absent (silently; those also listed as needing
review are counted apart), students listed as **needing review** (``--no-abstain``: the
decision without "could not tell"), faces found (IoU >= 0.3 with the truth,
the burst's ground truth, scored on the fused faces) and **strangers named** (a stranger's face
matched to a student, before seat continuity). Conditions and seeds are fixed, so figures are reproducible on one machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from aas_core.config import PROJECT_ROOT, get_settings
from aas_core.db import init_db, repo, session_scope
from aas_core.db.models import FaceSample, SampleStatus
from aas_core.media.decode import read_image
from aas_core.media.store import ImageStore
from aas_core.services.enrollment import enroll_images
from aas_core.services.sessions import SessionService
from aas_core.tools.bench import default_dataset
from aas_core.tools.lecture_hall import CONDITIONS, HardSession, make_hard_session
from aas_core.tools.synthetic import score_scene, scrfd_locator
from aas_core.vision.pipeline import Pipeline, PipelineResult
from aas_core.vision.profiles import resolve_profile


def enroll_roster(url: str, store: ImageStore, pipe: Pipeline, hs: HardSession,
                  classroom: bool = True) -> tuple[int, int]:
    """Course "C" with every student enrolled; returns (photos accepted, of them held then accepted).
    ``classroom``: the course matches classroom templates too (``recognition.classroom_templates``)."""
    settings = get_settings()
    with session_scope(url) as s:
        course = repo.add_course(s, "C", hs.conditions.name)
        if not classroom:
            course.config = course.config.with_settings(["recognition.classroom_templates=false"])
        for sid, paths in hs.enroll.items():
            st = repo.add_student(s, sid, sid, consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
    with session_scope(url) as s:
        held = s.scalars(select(FaceSample).where(FaceSample.status == SampleStatus.PENDING)).all()
        for x in held:
            repo.review_sample(s, x, SampleStatus.ACCEPTED, "benchmark-reviewer")
        accepted = s.query(FaceSample).filter(FaceSample.status == SampleStatus.ACCEPTED).count()
    return accepted, len(held)


def run_one(hs: HardSession, pipe: Pipeline, frames: int, abstain: bool = True,
            classroom: bool = True, stack: bool = False,
            on_result: Callable[[int, PipelineResult], None] | None = None) -> dict[str, float]:
    """One session as ``aas session run`` processes it; ``on_result(k, result)`` also sees each
    processed snapshot's (fused) pipeline result, for studies of the faces themselves."""
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'aas.db'}"
    init_db(url)
    store = ImageStore(tmp / "data")
    enroll_roster(url, store, pipe, hs, classroom)
    enrolled = set(hs.truth)
    found = faces = strangers_named = wrong_names = 0

    def on_processed(k: int, _img, result) -> None:  # type: ignore[no-untyped-def]
        nonlocal found, faces, strangers_named, wrong_names
        if isinstance(result, Exception):
            return
        if on_result is not None:
            on_result(k, result)
        sc = score_scene(hs.bursts[k].scene(), result.faces.xyxy, result.match.assigned if result.match else [],
                         enrolled)
        found += sc.found
        faces += sc.faces
        strangers_named += sc.strangers_named
        wrong_names += sc.named_wrongly

    # one snapshot = its burst's first N frames (a list: fused by the service), or one image
    images = [b.frames[:frames] if frames > 1 else b.frames[0] for b in hs.bursts]
    t0 = time.perf_counter()
    out = SessionService(url, store, pipe, get_settings(), abstain=abstain, stack_bursts=stack).run_from_images(
        "C", images, on_processed=on_processed)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    truth = hs.truth
    right = sum(out.statuses[k] == v for k, v in truth.items())
    false_presence = sum(v == "absent" and out.statuses[k] != "absent" for k, v in truth.items())
    # Abstention: a present student marked absent *and* listed for review is no silent error;
    # "missed" counts only the silent ones.
    review = set(out.needs_review)
    missed = sum(v != "absent" and out.statuses[k] == "absent" and k not in review for k, v in truth.items())
    missed_flagged = sum(v != "absent" and out.statuses[k] == "absent" and k in review for k, v in truth.items())
    return {"students": len(truth), "right": right, "false_presence": false_presence, "missed": missed,
            "missed_flagged": missed_flagged, "needs_review": len(review),
            "faces": faces, "found": found, "strangers_named": strangers_named, "wrong_names": wrong_names,
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--frames", type=int, default=1, help="frames of each burst to use (1 = single photo)")
    ap.add_argument("--no-abstain", action="store_true",
                    help="decide without 'could not tell' (the decision before abstention)")
    ap.add_argument("--no-classroom", action="store_true",
                    help="match portraits only (no classroom-resolution templates: the matching before them)")
    ap.add_argument("--stack", action="store_true",
                    help="bursts: add each face's stacked (registered, pixel-averaged) embedding to the fused one "
                         "(vision.fusion.stack_region; off in the product)")
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    a = ap.parse_args()
    cfg, _ = resolve_profile(a.profile, a.models_dir)
    pipe = Pipeline(cfg, a.models_dir)
    pipe.warm_up()
    locate = scrfd_locator(a.models_dir)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name in a.conditions:
        for seed in a.seeds:
            hs = make_hard_session(default_dataset(), locate, CONDITIONS[name], seed=seed, burst=a.frames)
            r = run_one(hs, pipe, a.frames, abstain=not a.no_abstain, classroom=not a.no_classroom,
                        stack=a.stack)
            for k, v in r.items():
                totals[name][k] += v
            print(f"{name} seed {seed}: {r['right']}/{r['students']} statuses right, "
                  f"false presences {r['false_presence']}, present marked absent {r['missed']} "
                  f"(+{r['missed_flagged']} flagged), needs review {r['needs_review']}, "
                  f"faces found {r['found']}/{r['faces']}, strangers named {r['strangers_named']}, "
                  f"wrong names {r['wrong_names']} ({r['wall_s']:.1f} s)", flush=True)
    print(f"\nprofile {a.profile}, frames per snapshot {a.frames}, seeds {a.seeds}, "
          f"abstention {'off' if a.no_abstain else 'on'}, classroom templates {'off' if a.no_classroom else 'on'}, "
          f"burst stacking {'on' if a.stack and a.frames > 1 else 'off'}")
    print("| condition | statuses right | false presences | present → absent | present → absent, needs review | "
          "needs review | faces found | strangers named | wrong names |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, t in totals.items():
        print(f"| {name} | {t['right'] / t['students']:.1%} ({int(t['right'])}/{int(t['students'])}) | "
              f"{int(t['false_presence'])} | {int(t['missed'])} | {int(t['missed_flagged'])} | "
              f"{int(t['needs_review'])} | {int(t['found'])}/{int(t['faces'])} | "
              f"{int(t['strangers_named'])} | {int(t['wrong_names'])} |")


if __name__ == "__main__":
    main()
