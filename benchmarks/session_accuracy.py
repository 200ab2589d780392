"""Status accuracy of whole sessions on synthetic 3-snapshot classrooms, with and without
seat continuity.

    .venv/bin/python benchmarks/session_accuracy.py [--seeds 1 2 3 ...] [--profile fast] [--no-classroom]

Each seed: 30 students (attended/late/left-early/absent mix) + 3 strangers, faces 36-100 px
from ../shared/data/faces_dev; enrollment through the real quality and identity gates (first 5
photos; photos held by the identity check are accepted, as a reviewer would),
sessions through SessionService.run_from_images on a fresh SQLite database.
"""

from __future__ import annotations

import argparse
import tempfile
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
from aas_core.tools.synthetic import make_session, scrfd_locator
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--no-classroom", action="store_true", help="portraits only (no classroom templates)")
    ap.add_argument("--models-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "models")
    a = ap.parse_args()
    settings = get_settings()
    cfg, _ = resolve_profile(a.profile, a.models_dir)
    pipe = Pipeline(cfg, a.models_dir)
    locate = scrfd_locator(a.models_dir)
    totals = {False: [0, 0], True: [0, 0]}
    for seed in a.seeds:
        ss = make_session(default_dataset(), locate, seed=seed)
        tmp = Path(tempfile.mkdtemp())
        url = f"sqlite:///{tmp / 'aas.db'}"
        init_db(url)
        store = ImageStore(tmp / "data")
        with session_scope(url) as s:
            course = repo.add_course(s, "C", "synthetic")
            if a.no_classroom:
                course.config = course.config.with_settings(["recognition.classroom_templates=false"])
            for sid, paths in ss.enroll.items():
                st = repo.add_student(s, sid, sid, consent=True)
                repo.enroll_in_course(s, course, st)
                enroll_images(s, st, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
        with session_scope(url) as s:
            # Photos the identity check held are the student's own (dataset labels): accept them,
            # as a reviewer who looked at them would, so the figure measures recognition.
            for x in s.scalars(select(FaceSample).where(FaceSample.status == SampleStatus.PENDING)):
                repo.review_sample(s, x, SampleStatus.ACCEPTED, "benchmark-reviewer")
        for seat in (False, True):
            out = SessionService(url, store, pipe, settings, seat_continuity=seat).run_from_images(
                "C", [x.image for x in ss.snapshots])
            wrong = {k: (v, out.statuses[k]) for k, v in ss.truth.items() if out.statuses[k] != v}
            totals[seat][0] += len(ss.truth) - len(wrong)
            totals[seat][1] += len(ss.truth)
            print(f"seed {seed} {'seat' if seat else 'plain'}: {len(ss.truth) - len(wrong)}/{len(ss.truth)} "
                  f"unknown_faces={out.unknown_faces} wrong={wrong}", flush=True)
    for seat, (ok, n) in totals.items():
        print(f"{'with' if seat else 'without'} seat continuity: {ok}/{n} statuses right = {ok / n:.1%}")


if __name__ == "__main__":
    main()
