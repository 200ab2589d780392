"""End-to-end overhead of one snapshot: everything a session does beyond the pipeline itself.

    .venv/bin/python benchmarks/e2e_overhead.py [--repeats 3] [--seed 1] [--profile fast]
    .venv/bin/python benchmarks/e2e_overhead.py --rss-only        # memory of a process with the models
    .venv/bin/python benchmarks/e2e_overhead.py --rss-server      # memory of the real dashboard (Chromium)

A synthetic 1080p classroom (30 students + 3 strangers, 3 snapshots, faces 36-100 px from
../shared/data/faces_dev), students created, put on the roster and enrolled through the
service layer (``services.courses`` / ``services.students``) on a fresh SQLite database.
Then, ``--repeats`` times each, side by side in one process:

* **cli** — ``SessionService.run_from_images`` exactly as ``aas session run`` calls it.
  Per snapshot: ``pipe`` = the time inside ``Pipeline.run``, ``wall`` = ``store_snapshot``
  (JPEG + row, committed) + ``process_snapshot`` (pipeline, crops, observation rows, commit).
* **dash** — the Live Session page's upload flow, in process without a browser, through the
  very calls the page makes: the same ``run_from_images`` with the page's ``on_processed``
  (``review.processed_jpeg`` and ``st.image`` of those bytes, Streamlit running bare), then
  once per session the review the page shows after its rerun (``ui.resources.session_review``
  with its ``st.cache_data`` entry, ``st.image`` of each snapshot's JPEG, ``editor_rows``),
  spread over the session's snapshots. **dash-cold** — the same with the store's decoded
  images dropped before the review (``media.store.DECODED``), as when the review is opened
  by another server process than the one that took the snapshots.

overhead = (wall - pipe) / pipe, per snapshot; the table gives medians over every snapshot
of every repeat. ``session`` adds what a session costs once (start: roster embeddings
check and gallery; finalize), spread over its snapshots. The RSS figure is of a separate
process that loads every model of the profile (as the dashboard's ``get_pipeline`` does),
processes one snapshot and reports VmRSS / VmHWM from /proc/self/status.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from aas_core.config import PROJECT_ROOT, get_settings
from aas_core.db import init_db
from aas_core.db.models import Role
from aas_core.media.decode import read_image
from aas_core.media.store import DECODED, ImageStore
from aas_core.services import courses, review, students
from aas_core.services.auth import AuthUser
from aas_core.services.sessions import SessionService
from aas_core.tools.bench import default_dataset
from aas_core.tools.synthetic import make_session, scrfd_locator
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import resolve_profile

ADMIN = AuthUser(0, "bench", Role.ADMIN)
MODELS = PROJECT_ROOT.parent / "shared" / "models"


def quiet_streamlit() -> None:
    """Streamlit running bare (no server): ``st.image`` and ``st.cache_data`` do all their work,
    only the warnings about the missing script context are silenced."""
    from streamlit.logger import set_log_level

    set_log_level("error")


class Timed(SessionService):
    """The service unchanged, with a stopwatch around its per-snapshot steps."""

    def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **k)
        self.t: dict[str, list[float]] = defaultdict(list)
        run = self.pipeline.run

        def timed_run(*args, **kw):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return run(*args, **kw)
            finally:
                self.t["pipe"].append(time.perf_counter() - t0)

        self._run = run
        self.pipeline.run = timed_run  # type: ignore[method-assign]

    def close(self) -> None:
        self.pipeline.run = self._run  # type: ignore[method-assign]

    def _step(self, name: str, fn, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            self.t[name].append(time.perf_counter() - t0)

    def start(self, *a, **k):  # type: ignore[no-untyped-def]
        return self._step("start", super().start, *a, **k)

    def store_snapshot(self, *a, **k):  # type: ignore[no-untyped-def]
        return self._step("store", super().store_snapshot, *a, **k)

    def _process_snapshot(self, *a, **k):  # type: ignore[no-untyped-def]
        # run_from_images calls the private step (it also returns the stored frame of a burst)
        return self._step("process", super()._process_snapshot, *a, **k)

    def finalize_or_abort(self, *a, **k):  # type: ignore[no-untyped-def]
        return self._step("finalize", super().finalize_or_abort, *a, **k)


def setup(profile: str, seed: int, *, url: str | None = None,
          store: ImageStore | None = None) -> tuple[str, ImageStore, Pipeline, list[np.ndarray], int]:
    """The course "C" with its roster enrolled, on a fresh database (or on ``url`` / ``store``)."""
    settings = get_settings()
    cfg, _ = resolve_profile(profile, MODELS)
    pipe = Pipeline(cfg, MODELS)
    pipe.warm_up()
    ss = make_session(default_dataset(), scrfd_locator(MODELS), seed=seed)
    if url is None or store is None:
        tmp = Path(tempfile.mkdtemp(prefix="aas_e2e_"))
        url = f"sqlite:///{tmp / 'aas.db'}"
        init_db(url)
        store = ImageStore(tmp / "data")
    courses.create_course(url, ADMIN, settings, "C", "synthetic")
    for sid, paths in ss.enroll.items():
        students.create_student(url, ADMIN, sid, sid, consent=True, course_code="C")
        students.enroll_photos(url, ADMIN, sid, [(p.name, read_image(p)) for p in paths], pipe, store, settings)
    images = [sc.image for sc in ss.snapshots]
    return url, store, pipe, images, sum(len(sc.faces) for sc in ss.snapshots)


def run_cli(url: str, store: ImageStore, pipe: Pipeline, images: list[np.ndarray]) -> dict[str, list[float]]:
    svc = Timed(url, store, pipe, get_settings())
    try:
        out = svc.run_from_images("C", images, actor="bench")
    finally:
        svc.close()
    assert len(out.statuses) == 30, out.statuses
    return svc.t


def run_dash(url: str, store: ImageStore, pipe: Pipeline, images: list[np.ndarray], *,
             cold: bool = False) -> dict[str, list[float]]:
    """The Live Session page's upload flow, call for call (pages/live_session.py)."""
    import streamlit as st

    from aas_core.ui.resources import session_review

    svc = Timed(url, store, pipe, get_settings())
    roster = courses.roster(url, ADMIN, "C").rows
    names = {r["student_id"]: review.box_label(r["student_id"], r["name"]) for r in roster}

    def on_processed(k: int, img: np.ndarray, result) -> None:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        st.image(review.processed_jpeg(img, result, names), width="stretch")
        svc.t["draw"].append(time.perf_counter() - t0)

    try:
        out = svc.run_from_images("C", images, actor="bench", on_processed=on_processed)
    finally:
        svc.close()
    if cold:
        DECODED.clear()
    # after st.rerun(): session_review (its cache is keyed on a fingerprint that changed), the
    # snapshots shown, the editor rows (data-URI thumbnails)
    t0 = time.perf_counter()
    rv = session_review(url, store, ADMIN, out.session_id)
    for v in rv.snapshots:
        if v.jpeg is not None:
            st.image(v.jpeg, width="stretch")
    review.editor_rows(rv)
    svc.t["review"].append(time.perf_counter() - t0)
    assert all(v.jpeg is not None for v in rv.snapshots) and len(rv.rows) == 30
    return svc.t


def summarise(runs: list[dict[str, list[float]]], dash: bool) -> dict[str, float]:
    """Per-snapshot medians (ms) and overhead ratios over every snapshot of every run."""
    per: dict[str, list[float]] = defaultdict(list)
    for t in runs:
        n = len(t["pipe"])
        once = (sum(t["start"]) + sum(t["finalize"])) / n
        review_share = sum(t.get("review", [])) / n
        for k in range(n):
            pipe = t["pipe"][k]
            wall = t["store"][k] + t["process"][k] + (t["draw"][k] + review_share if dash else 0.0)
            per["pipe"].append(pipe)
            per["store"].append(t["store"][k])
            per["after"].append(t["process"][k] - pipe)
            per["draw"].append(t["draw"][k] if dash else 0.0)
            per["review"].append(review_share)
            per["wall"].append(wall)
            per["overhead"].append((wall - pipe) / pipe)
            per["session"].append((wall + once - pipe) / pipe)
    return {k: statistics.median(v) for k, v in per.items()}


def rss(profile: str, seed: int) -> None:
    """Run in a child process: models loaded, one snapshot processed, then VmRSS / VmHWM."""
    cfg, _ = resolve_profile(profile, MODELS)
    pipe = Pipeline(cfg, MODELS)
    names = pipe.warm_up()
    ss = make_session(default_dataset(), scrfd_locator(MODELS), seed=seed)
    result = pipe.run(ss.snapshots[0].image)
    review.processed_jpeg(ss.snapshots[0].image, result)  # as the page shows it
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    print(f"rss profile={cfg.profile} models={'+'.join(names)} faces={len(result)} "
          f"VmRSS={int(status['VmRSS'].split()[0]) / 1024:.0f} MiB VmHWM={int(status['VmHWM'].split()[0]) / 1024:.0f} MiB")


def _vm(pid: int | str) -> str:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (f"VmRSS={int(status['VmRSS'].split()[0]) / 1024:.0f} MiB "
            f"VmHWM={int(status['VmHWM'].split()[0]) / 1024:.0f} MiB")


def rss_server(profile: str, seed: int) -> None:
    """The real dashboard: ``streamlit run app.py`` (``tests/browser/app_server.py``) with the
    profile configured, the course enrolled through the services on its database, then in
    Chromium (``tests/browser/chromium.py``): sign in, Live Session, upload one snapshot, run,
    wait for the review; then VmRSS / VmHWM of the server process from /proc."""
    import cv2

    sys.path.insert(0, str(PROJECT_ROOT))
    from tests.browser.app_server import running_app
    from tests.browser.chromium import idle, launch, sign_in

    password = "bench-password-1"
    tmp = Path(tempfile.mkdtemp(prefix="aas_rss_"))
    with running_app(tmp, MODELS, password, extra_env={"AAS_PROFILE": profile}) as (base, env):
        url, data = env["AAS_DATABASE_URL"], Path(env["AAS_DATA_DIR"])
        _, _, _, images, _ = setup(profile, seed, url=url, store=ImageStore(data))
        shot = tmp / "snapshot1.jpg"
        cv2.imwrite(str(shot), images[0], [cv2.IMWRITE_JPEG_QUALITY, 95])
        server = next(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                      and _parent(p) == os.getpid() and b"streamlit" in (p / "cmdline").read_bytes())
        print(f"rss server pid={server} started: {_vm(server)}", flush=True)
        browser_gen = launch()
        browser = next(browser_gen)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            sign_in(page, base, "admin", password)
            page.locator('[data-testid="stSidebarNav"]').get_by_text("Live Session", exact=True).click()
            page.get_by_text("Run from uploaded images").first.wait_for()
            idle(page)
            up = page.locator('[data-testid="stFileUploader"]').filter(has_text="Snapshots").first
            up.locator('input[type="file"]').set_input_files([str(shot)])
            idle(page)
            page.get_by_role("button", name="Run session with 1 snapshot(s)").click()
            page.get_by_text("Statuses and evidence").wait_for(timeout=300_000)
            idle(page)
            print(f"rss server profile={profile} after one processed snapshot and its review: {_vm(server)}",
                  flush=True)
        finally:
            next(browser_gen, None)


def _parent(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", default="fast")
    ap.add_argument("--rss-only", action="store_true")
    ap.add_argument("--rss-server", action="store_true",
                    help="RSS of the real dashboard (streamlit run app.py, driven in Chromium) instead")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rss_child:
        rss(a.profile, a.seed)
        return
    if a.rss_server:
        rss_server(a.profile, a.seed)
        return
    if not a.rss_only:
        url, store, pipe, images, faces = setup(a.profile, a.seed)
        h, w = images[0].shape[:2]
        print(f"{len(images)} snapshots {w}x{h}, {faces} faces in all, profile {pipe.config.profile}", flush=True)
        quiet_streamlit()
        run_cli(url, store, pipe, images)  # warm-up (first-run allocations, caches), not counted
        run_dash(url, store, pipe, images)  # imports Streamlit, first st.image / st.cache_data: not counted
        cli, dash, dash_cold = [], [], []
        for _ in range(a.repeats):  # interleaved: every path sees the same machine load
            cli.append(run_cli(url, store, pipe, images))
            dash.append(run_dash(url, store, pipe, images))
            dash_cold.append(run_dash(url, store, pipe, images, cold=True))
        print("\nper snapshot, medians over", a.repeats * len(images), "snapshots (ms)")
        print(f"{'path':<10}{'pipeline':>10}{'store':>8}{'after':>8}{'draw':>8}{'review':>8}{'wall':>8}"
              f"{'overhead':>10}{'+session':>10}")
        for name, runs in (("cli", cli), ("dash", dash), ("dash-cold", dash_cold)):
            if not runs:
                continue
            m = summarise(runs, name != "cli")
            print(f"{name:<10}{m['pipe'] * 1e3:>10.0f}{m['store'] * 1e3:>8.0f}{m['after'] * 1e3:>8.0f}"
                  f"{m['draw'] * 1e3:>8.0f}{m['review'] * 1e3:>8.0f}{m['wall'] * 1e3:>8.0f}"
                  f"{m['overhead']:>10.0%}{m['session']:>10.0%}")
        print("store: JPEG + row committed; after: process_snapshot minus the pipeline (crops, rows, commit); "
              "draw: on_processed (processed_jpeg + st.image); review: session_review + st.image + editor rows, "
              "per snapshot; +session: start and finalize spread over the snapshots too; dash-cold: the "
              "review reading every image from disk (another process)", flush=True)
    out = subprocess.run([sys.executable, __file__, "--rss-child", "--profile", a.profile, "--seed", str(a.seed)],
                         capture_output=True, text=True, check=True)
    print(out.stdout.strip())


if __name__ == "__main__":
    main()
