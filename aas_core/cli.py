"""The ``aas`` command line (Typer). A stable contract: scripts and benchmarks rely on
these command names and on the JSON printed with ``--json``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from aas_core.config import Settings, get_settings, redact_url

app = typer.Typer(help="AAS: automated classroom attendance by face recognition.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
course_app = typer.Typer(help="Courses.", no_args_is_help=True)
student_app = typer.Typer(help="Students.", no_args_is_help=True)
session_app = typer.Typer(help="Class sessions.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluation on labelled folders.", no_args_is_help=True)
models_app = typer.Typer(help="Model weights: list, fetch.", no_args_is_help=True)
user_app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)
app.add_typer(course_app, name="course")
app.add_typer(student_app, name="student")
app.add_typer(session_app, name="session")
app.add_typer(eval_app, name="eval")
app.add_typer(models_app, name="models")
app.add_typer(user_app, name="user")


@dataclass
class Ctx:
    settings: Settings

    @property
    def url(self) -> str:
        return self.settings.database_url


def _ctx(ctx: typer.Context) -> Ctx:
    obj = ctx.find_root().obj
    assert isinstance(obj, Ctx)
    return obj


def fail(msg: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Overrides AAS_DATABASE_URL.")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="Overrides AAS_MODELS_DIR.")] = None,
) -> None:
    settings = get_settings()
    update = {}
    if database_url:
        update["database_url"] = database_url
    if models_dir:
        update["models_dir"] = models_dir
    ctx.obj = Ctx(settings.model_copy(update=update) if update else settings)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create or upgrade the database schema (idempotent)."""
    from aas_core.db import init_db

    c = _ctx(ctx)
    try:
        init_db(c.url)
    except Exception as exc:
        raise fail(f"could not initialise {redact_url(c.url)}: {exc.__class__.__name__}: {exc}") from None
    typer.echo(f"database ready: {redact_url(c.url)}")


# --- courses ---------------------------------------------------------------------------------

@course_app.command("add")
def course_add(ctx: typer.Context, code: str, name: Annotated[str, typer.Option("--name")],
               schedule: Annotated[str | None, typer.Option("--schedule")] = None) -> None:
    """Create a course."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    try:
        with session_scope(c.url) as s:
            repo.add_course(s, code, name, schedule=schedule, actor="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"course {code} created")


@course_app.command("list")
def course_list(ctx: typer.Context) -> None:
    """List courses with roster sizes."""
    from aas_core.db import repo, session_scope

    with session_scope(_ctx(ctx).url) as s:
        for course in repo.list_courses(s):
            typer.echo(f"{course.code}\t{course.name}\t{len(course.enrollments)} students")


# --- students --------------------------------------------------------------------------------

@student_app.command("add")
def student_add(
    ctx: typer.Context, sid: str, name: Annotated[str, typer.Option("--name")],
    course: Annotated[str | None, typer.Option("--course")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    consent: Annotated[bool, typer.Option("--consent/--no-consent",
                                          help="Record that the student consented to face enrollment.")] = True,
) -> None:
    """Add a student (and put them on a course roster)."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    try:
        with session_scope(c.url) as s:
            st = repo.add_student(s, sid, name, email=email, consent=consent, actor="cli")
            if course:
                repo.enroll_in_course(s, repo.get_course(s, course), st, actor="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"student {sid} added" + (f" to {course}" if course else ""))


@student_app.command("list")
def student_list(ctx: typer.Context) -> None:
    from aas_core.db import repo, session_scope

    with session_scope(_ctx(ctx).url) as s:
        for st in repo.list_students(s):
            typer.echo(f"{st.student_number}\t{st.name}\t{len(st.samples)} samples")



# --- pipeline-backed commands ---------------------------------------------------------------

def _pipeline(c: Ctx, profile: str | None = None):  # type: ignore[no-untyped-def]
    from aas_core.vision.pipeline import Pipeline
    from aas_core.vision.profiles import resolve_profile

    cfg, notes = resolve_profile(profile or c.settings.profile, c.settings.models_dir)
    cfg = cfg.with_(face_conf=c.settings.face_conf, person_conf=c.settings.person_conf,
                    threshold=c.settings.recognition_threshold if c.settings.recognition_threshold is not None else cfg.threshold)
    for n in notes:
        typer.secho(n, fg=typer.colors.BLUE, err=True)
    return Pipeline(cfg, c.settings.models_dir)


def _store(c: Ctx):  # type: ignore[no-untyped-def]
    from aas_core.storage import ImageStore

    return ImageStore(c.settings.data_dir)


def _read_images(paths: list[Path]) -> list[tuple[str, "object"]]:
    from aas_core.imageio import ImageError, read_image

    out = []
    for p in paths:
        try:
            out.append((p.name, read_image(p, max_pixels=get_settings().max_image_pixels)))
        except ImageError as exc:
            out.append((p.name, exc))
    return out


def _enroll_paths(c: Ctx, s, student, paths: list[Path], pipeline, store) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from aas_core.enrollment import enroll_images

    images, bad = [], 0
    for name, img in _read_images(paths):
        if isinstance(img, Exception):
            typer.echo(f"{student.student_number}/{name}: rejected: {img}")
            bad += 1
        else:
            images.append((name, img))
    outcomes = enroll_images(s, student, images, pipeline, store, c.settings, actor="cli")
    for o in outcomes:
        typer.echo(f"{student.student_number}/{o.line()}")
    ok = sum(o.accepted for o in outcomes)
    return ok, bad + len(outcomes) - ok


IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@app.command()
def enroll(ctx: typer.Context, sid: str, images: list[Path],
           course: Annotated[str | None, typer.Option("--course")] = None,
           profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Enroll face photos of one student (quality-gated; prints accepted/rejected per image)."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    pipeline = _pipeline(c, profile)
    try:
        with session_scope(c.url) as s:
            st = repo.get_student(s, sid)
            if course:
                repo.enroll_in_course(s, repo.get_course(s, course), st, actor="cli")
            ok, bad = _enroll_paths(c, s, st, list(images), pipeline, _store(c))
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{sid}: {ok} accepted, {bad} rejected")
    if ok == 0:
        raise typer.Exit(2)


@app.command("enroll-dir")
def enroll_dir(ctx: typer.Context, directory: Path, course: Annotated[str, typer.Option("--course")],
               limit: Annotated[int | None, typer.Option("--limit", help="At most this many photos per student.")] = None,
               profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Enroll DIR/<student id>/* for every sub-folder (students are created if new, name = id)."""
    from aas_core.db import repo, session_scope

    c = _ctx(ctx)
    if not directory.is_dir():
        raise fail(f"{directory} is not a folder")
    subdirs = sorted(d for d in directory.iterdir() if d.is_dir())
    if not subdirs:
        raise fail(f"{directory} has no <student id>/ sub-folders")
    pipeline = _pipeline(c, profile)
    store = _store(c)
    total_ok = total_bad = 0
    try:
        with session_scope(c.url) as s:
            crs = repo.get_course(s, course)
        for d in subdirs:
            files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT),
                           key=lambda p: (int(p.stem) if p.stem.isdigit() else 10**9, p.name))[:limit]
            with session_scope(c.url) as s:  # one transaction per student: a bad folder loses nothing else
                crs = repo.get_course(s, course)
                st, _ = repo.get_or_create_student(s, d.name, consent=True, actor="cli")
                repo.enroll_in_course(s, crs, st, actor="cli")
                ok, bad = _enroll_paths(c, s, st, files, pipeline, store)
            total_ok += ok
            total_bad += bad
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"enrolled {len(subdirs)} students: {total_ok} samples accepted, {total_bad} rejected")


@session_app.command("run")
def session_run(ctx: typer.Context, images: list[Path], course: Annotated[str, typer.Option("--course")],
                as_json: Annotated[bool, typer.Option("--json")] = False,
                profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Run a session from stored snapshots (in order) instead of a camera."""
    from aas_core.sessions import SessionService

    c = _ctx(ctx)
    loaded = _read_images(list(images))
    bad = [f"{n}: {e}" for n, e in loaded if isinstance(e, Exception)]
    if bad:
        raise fail("; ".join(bad))
    svc = SessionService(c.url, _store(c), _pipeline(c, profile), c.settings)
    try:
        outcome = svc.run_from_images(course, [img for _, img in loaded], actor="cli")  # type: ignore[misc]
    except (LookupError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(outcome.as_json()))
        return
    typer.echo(f"session {outcome.session_id}: {len(outcome.statuses)} students, {outcome.unknown_faces} unknown faces")
    for sid, st in sorted(outcome.statuses.items()):
        typer.echo(f"  {sid}\t{st}")


@session_app.command("capture")
def session_capture(ctx: typer.Context, course: Annotated[str, typer.Option("--course")],
                    camera: Annotated[str, typer.Option("--camera", help="Name from AAS_CAMERAS / secrets.toml.")],
                    now: Annotated[bool, typer.Option("--now", help="Take the snapshots right away, a few seconds apart (demo).")] = False,
                    offsets: Annotated[str | None, typer.Option("--offsets", help="Explicit schedule in seconds, e.g. 0,5,10.")] = None,
                    seed: Annotated[int | None, typer.Option("--seed")] = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False,
                    profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Run a real capture plan against a configured camera (light on for each shot, off after)."""
    import random

    from aas_core.capture.cameras import get_camera_config
    from aas_core.capture.factory import make_camera
    from aas_core.capture.plan import CapturePlan
    from aas_core.db import repo, session_scope
    from aas_core.live import CameraSession
    from aas_core.sessions import SessionService

    c = _ctx(ctx)
    try:
        cfg = get_camera_config(c.settings, camera)
        with session_scope(c.url) as s:
            plan_cfg = dict(repo.get_course(s, course).capture_plan or {})
    except (LookupError, ValueError) as exc:
        raise fail(str(exc)) from None
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    if offsets:
        sched = [float(x) for x in offsets.split(",")]
    elif now:
        sched = [float(3 * i) for i in range(int(plan_cfg.get("n", c.settings.snapshots)))]
    else:
        plan = CapturePlan.from_settings(c.settings, **{k: v for k, v in plan_cfg.items() if k in
                                                         ("n", "first_after_s", "second_after_s", "session_length_s", "margin_s")})
        sched = plan.schedule(seed)
    svc = SessionService(c.url, _store(c), _pipeline(c, profile), c.settings)

    def event(kind: str, info: dict) -> None:
        where = f"snapshot {info['index'] + 1}" if info.get("index", -1) >= 0 else "session"
        typer.echo(f"{where}: {kind}" + (f" ({info['error']})" if "error" in info else ""), err=True)

    cam = make_camera(cfg)
    try:
        live = CameraSession(svc, cam, sched, course_code=course, camera_name=camera, seed=seed,
                             settle_s=c.settings.light_settle_s, capture_window_s=c.settings.capture_window_s,
                             actor="cli", on_event=event)
        typer.echo(f"session {live.session_id}: snapshots at {', '.join(f'{x:.0f}s' for x in sched)}", err=True)
        live.start()
        outcome = live.wait()
        if outcome is None:
            raise RuntimeError(f"session {live.session_id}: no snapshot could be captured and processed; aborted")
    except Exception as exc:
        raise fail(f"{exc.__class__.__name__}: {exc}") from None
    finally:
        cam.close()
    typer.echo(json.dumps(outcome.as_json()) if as_json else
               "\n".join(f"{k}\t{v}" for k, v in sorted(outcome.statuses.items())))


@session_app.command("resume")
def session_resume(ctx: typer.Context, session_id: int, as_json: Annotated[bool, typer.Option("--json")] = False,
                   profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """After a crash or restart: process stored snapshots and close the session with the data it has."""
    from aas_core.sessions import SessionService

    c = _ctx(ctx)
    svc = SessionService(c.url, _store(c), _pipeline(c, profile), c.settings)
    try:
        outcome = svc.resume_or_close(session_id, actor="cli")
    except (LookupError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps(outcome.as_json()) if as_json else
               "\n".join(f"{k}\t{v}" for k, v in sorted(outcome.statuses.items())))


@eval_app.command("faces")
def eval_faces(ctx: typer.Context, directory: Path,
               enroll_k: Annotated[int, typer.Option("--enroll-k")] = 5,
               strangers: Annotated[float, typer.Option("--strangers", help="Fraction of identities held back.")] = 0.2,
               backends_: Annotated[list[str] | None, typer.Option("--backend", help="arcface | dlib | dlib-hog (repeatable)")] = None,
               seed: Annotated[int, typer.Option("--seed")] = 0,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Identification / verification / stranger rejection on DIR/<identity>/*.jpg, per model."""
    from aas_core.evaluation import EVAL_BACKENDS, evaluate_folder

    c = _ctx(ctx)
    if not directory.is_dir():
        raise fail(f"{directory} is not a folder")
    names = backends_ or list(EVAL_BACKENDS)
    reports = []
    for name in names:
        if name not in EVAL_BACKENDS:
            raise fail(f"unknown backend {name!r}; choose from {', '.join(EVAL_BACKENDS)}")
        try:
            rep = evaluate_folder(directory, name, c.settings.models_dir, enroll_k=enroll_k,
                                  stranger_fraction=strangers, seed=seed)
        except FileNotFoundError as exc:
            typer.secho(f"{name}: skipped: {exc}", fg=typer.colors.YELLOW, err=True)
            continue
        reports.append(rep)
    if not reports:
        raise fail("no backend could be evaluated")
    if as_json:
        typer.echo(json.dumps({"dataset": str(directory), "enroll_k": enroll_k, "results": [r.summary() for r in reports]}))
        return
    for r in reports:
        typer.echo(r.text())


@app.command()
def bench(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False,
          faces: Annotated[int, typer.Option("--faces")] = 36,
          repeats: Annotated[int, typer.Option("--repeats")] = 3,
          gallery_size: Annotated[int, typer.Option("--gallery")] = 10_000,
          dataset: Annotated[Path | None, typer.Option("--dataset", help="Labelled faces folder for the scene.")] = None,
          profiles: Annotated[list[str] | None, typer.Option("--profile")] = None) -> None:
    """Per-stage median ms on a 1920x1080 classroom snapshot per profile, and gallery matching."""
    from aas_core.bench import run_bench

    c = _ctx(ctx)
    try:
        report = run_bench(c.settings.models_dir, dataset=dataset, n_faces=faces, repeats=repeats,
                           gallery_size=gallery_size, profiles=profiles)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps(report) if as_json else _bench_text(report))


def _bench_text(r: dict) -> str:
    lines = [f"scene: {r['scene']}"]
    for name, p in r["profiles"].items():
        stages = ", ".join(f"{k} {v:.0f} ms" for k, v in p["median_ms"].items())
        lines.append(f"{name:>14}: {stages} | faces found {p['faces_found']}/{r['faces_in_scene']}, named {p['named_correctly']}")
    for k, v in r.get("ratios", {}).items():
        lines.append(f"{k}: {v:.2f}x")
    m = r["matching"]
    lines.append(f"matching {m['queries']} faces vs {m['students']} students: median {m['median_ms']:.2f} ms")
    return "\n".join(lines)


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """What the manifest knows, and whether each file is present and intact."""
    from aas_core.vision import registry

    c = _ctx(ctx)
    rows = registry.status(c.settings.models_dir)
    w = max((len(st.spec.name) for st in rows), default=10) + 2
    typer.echo(f"models dir: {c.settings.models_dir}")
    for st in rows:
        typer.echo(f"{st.spec.name:<{w}}{st.state:<11}{st.spec.stage:<8}{st.spec.file}")


@models_app.command("fetch")
def models_fetch(ctx: typer.Context, name: str) -> None:
    """Download a model from its official URL into the models dir (hash-checked)."""
    from aas_core.vision import registry

    c = _ctx(ctx)
    try:
        path = registry.fetch(name, c.settings.models_dir, progress=True)
    except Exception as exc:
        raise fail(f"{exc}") from None
    typer.echo(f"saved {path}")



@user_app.command("add")
def user_add(ctx: typer.Context, username: str,
             role: Annotated[str, typer.Option("--role", help="admin | instructor | student")] = "instructor",
             name: Annotated[str | None, typer.Option("--name")] = None,
             student: Annotated[str | None, typer.Option("--student", help="Student id this account belongs to.")] = None) -> None:
    """Create an account. Password: AAS_NEW_PASSWORD (automation) or prompted, never an argument."""
    import os

    from aas_core.auth import create_user
    from aas_core.db import session_scope

    c = _ctx(ctx)
    password = os.environ.get("AAS_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise fail("no password: set AAS_NEW_PASSWORD or run in a terminal to be prompted")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope(c.url) as s:
            create_user(s, username, password, role, name=name, student_number=student, actor="cli")
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"user {username} ({role}) created")


from aas_core.cli_admin import register as _register_admin  # noqa: E402

_register_admin(app, user_app=user_app, student_app=student_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
