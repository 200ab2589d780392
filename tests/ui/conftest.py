"""Fixtures shared by the UI tests: accounts and a populated database (built once per run).

The populated database (course CS101, 5 consenting students enrolled from real photos, one
session from 3 synthetic snapshots in which every face was placed, run with the real models)
is built once per test session and copied into each test's ``tmp_path`` as ``ui.db`` + ``data/``
(the paths the page tests' environment points at).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

COURSE = "CS101"
PASSWORD = "plum-orbit-lantern-42"  # noqa: S105 - passes the password policy (zxcvbn >= 2)


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ui.db'}"


# --- populated database (built once) ------------------------------------------------------------------

@pytest.fixture(scope="session")
def populated_template(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, data_dir: Path) -> dict[str, Any]:
    from aas_core.config import Settings
    from aas_core.db import init_db, repo, session_scope
    from aas_core.db.engine import get_engine
    from aas_core.db.models import Role
    from aas_core.media.decode import read_image
    from aas_core.media.store import ImageStore
    from aas_core.services.auth import create_user
    from aas_core.services.enrollment import enroll_images
    from aas_core.services.sessions import SessionService
    from aas_core.tools.synthetic import make_session, scrfd_locator
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    root = tmp_path_factory.mktemp("populated")
    url = f"sqlite:///{root / 'ui.db'}"
    settings = Settings(database_url=url, data_dir=root / "data", models_dir=models_dir)
    store = ImageStore(root / "data")
    init_db(url)
    cfg, _ = resolve_profile("auto", models_dir)
    pipe = Pipeline(cfg, models_dir)
    syn = make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=5, n_strangers=1, enroll_k=4,
                       seed=8, status_mix={"attended": 2, "late": 1, "left_early": 1, "absent": 1})
    students = sorted(syn.enroll)
    with session_scope(url) as s:
        create_user(s, "admin", PASSWORD, Role.ADMIN)
        teach = create_user(s, "teach", PASSWORD, Role.INSTRUCTOR)
        create_user(s, "stranger_teacher", PASSWORD, Role.INSTRUCTOR)
        s.flush()
        from aas_core.services.auth import to_auth_user

        course = repo.add_course(s, COURSE, "Intro", instructor_id=to_auth_user(s, teach).instructor_id)
        for sn in students:
            st = repo.add_student(s, sn, sn.removeprefix("glint_").replace("_", " "), consent=True)
            repo.enroll_in_course(s, course, st)
            enroll_images(s, st, [(p.name, read_image(p)) for p in syn.enroll[sn]], pipe, store, settings)
        create_user(s, "stud", PASSWORD, Role.STUDENT, student_number=students[0])
    svc = SessionService(url, store, pipe, settings)
    outcome = svc.run_from_images(COURSE, [sc.image for sc in syn.snapshots], actor="teach")
    get_engine(url).dispose()
    return {"root": root, "students": students, "truth": syn.truth, "session_id": outcome.session_id,
            "statuses": outcome.statuses, "snapshot": syn.snapshots[0].image,
            "snapshots": [sc.image for sc in syn.snapshots]}


@pytest.fixture
def populated(populated_template: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A private copy of the populated database + image store at this test's env paths."""
    src: Path = populated_template["root"]
    for f in src.iterdir():
        if f.name.startswith("ui.db"):
            shutil.copy2(f, tmp_path / f.name)
    shutil.copytree(src / "data", tmp_path / "data", dirs_exist_ok=True)
    return {**populated_template, "url": _url(tmp_path)}
