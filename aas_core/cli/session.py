"""``aas session``: run (given images), capture (a camera on the course plan), resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail, pipeline, read_images, store

app = typer.Typer(help="Class sessions.", no_args_is_help=True)


#: Frames one snapshot folder may hold: a burst's bound in the course plan (``plan.burst_frames``).
MAX_BURST_FRAMES = 10


def _burst_files(path: Path) -> list[Path] | str:
    """The frames of one IMAGE argument: the file itself, or a folder's images sorted by file
    name (hidden files and subfolders left out); a message when the folder cannot be a burst."""
    if not path.is_dir():
        return [path]
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        return f"{path.name}/: no image in the folder"
    if len(files) > MAX_BURST_FRAMES:
        return f"{path.name}/: {len(files)} files; a snapshot's burst has at most {MAX_BURST_FRAMES} frames"
    return files


@app.command("run")
def session_run(ctx: typer.Context, images: list[Path], course: Annotated[str, typer.Option("--course")],
                as_json: Annotated[bool, typer.Option("--json")] = False,
                profile: Annotated[str | None, typer.Option("--profile")] = None,
                wait: Annotated[float, typer.Option(
                    "--wait", help="With AAS_BROKER_URL: give up when the workers finish no snapshot "
                                   "for this many seconds.")] = 300.0) -> None:
    """Run a session from stored snapshots (in order) instead of a camera.

    Each IMAGE is one snapshot: an image file, or a folder whose images (sorted by file name)
    are the frames of that snapshot's burst, fused into one snapshot. With AAS_BROKER_URL set
    the snapshots are processed by `aas worker` processes; the output is the same.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from aas_core.redact import redact_text
    from aas_core.services.sessions import NoSnapshots, SessionFailed, SessionService, one_line

    c = ctx_of(ctx)
    bad: list[str] = []
    snapshots = []
    for path in images:
        files = _burst_files(path)
        if isinstance(files, str):
            bad.append(files)
            continue
        loaded = read_images(files, c.settings.max_image_pixels)
        prefix = f"{path.name}/" if path.is_dir() else ""  # name the folder of a bad frame
        bad += [f"{prefix}{n}: {e}" for n, e in loaded if isinstance(e, Exception)]
        snapshots.append([img for _, img in loaded])
    if bad:
        raise fail("; ".join(bad))
    svc = SessionService(c.url, store(c), pipeline(c, profile), c.settings)
    try:
        if c.settings.broker_url:  # processed by the workers, decided here: the same outcome
            from aas_core.tasks.dispatch import BrokerUnavailable, WorkersUnavailable, dispatcher, run_from_images

            try:
                outcome = run_from_images(svc, dispatcher(c.settings), course, snapshots,  # type: ignore[arg-type]
                                          actor=CLI_ADMIN.username, timeout_s=wait)
            except (BrokerUnavailable, WorkersUnavailable) as exc:
                raise fail(redact_text(str(exc))) from None
        else:
            outcome = svc.run_from_images(course, snapshots, actor=CLI_ADMIN.username)  # type: ignore[arg-type]
    except (LookupError, ValueError, NoSnapshots, SessionFailed) as exc:
        # SessionFailed: disk full, or the database lost for good; the session is aborted (or the
        # message says how to close it). Never statuses then, and never a traceback.
        raise fail(redact_text(str(exc))) from None
    except (SQLAlchemyError, OSError) as exc:  # before the session existed (opening it)
        raise fail(redact_text(f"the session could not be started: {one_line(exc)}")) from None
    if as_json:
        typer.echo(json.dumps(outcome.as_json()))
        return
    typer.echo(f"session {outcome.session_id}: {len(outcome.statuses)} students, {outcome.unknown_faces} unknown faces")
    for sid, st in sorted(outcome.statuses.items()):
        typer.echo(f"  {sid}\t{st}" + ("\tneeds review" if sid in outcome.needs_review else ""))


@app.command("capture")
def session_capture(ctx: typer.Context, course: Annotated[str, typer.Option("--course")],
                    camera: Annotated[str | None, typer.Option(
                        "--camera", help="A camera of `aas room list` or AAS_CAMERAS / secrets.toml (default: the course's camera).")] = None,
                    now: Annotated[bool, typer.Option("--now", help="Take the snapshots right away, a few seconds apart (demo).")] = False,
                    offsets: Annotated[str | None, typer.Option("--offsets", help="Explicit schedule in seconds, e.g. 0,5,10.")] = None,
                    seed: Annotated[int | None, typer.Option("--seed")] = None,
                    as_json: Annotated[bool, typer.Option("--json")] = False,
                    profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Run the course's capture plan against its camera (light on for each shot, off after)."""
    from aas_core.capture.factory import make_camera
    from aas_core.services import courses, rooms
    from aas_core.services.camera_session import start_course_capture
    from aas_core.services.sessions import SessionService

    c = ctx_of(ctx)
    try:
        config = courses.get_course(c.url, CLI_ADMIN, course).config
        camera = camera or config.camera
        if not camera:
            raise LookupError(f"course {course} has no camera: pass --camera NAME or run "
                              f"`aas course config {course} --set camera=NAME`")
        cfg = rooms.camera_config(c.settings, c.url, camera)
        sched = [float(x) for x in offsets.split(",")] if offsets else None
    except (LookupError, ValueError) as exc:
        raise fail(str(exc)) from None
    svc = SessionService(c.url, store(c), pipeline(c, profile), c.settings)

    def event(kind: str, info: dict) -> None:
        where = f"snapshot {info['index'] + 1}" if info.get("index", -1) >= 0 else "session"
        typer.echo(f"{where}: {kind}" + (f" ({info['error']})" if "error" in info else ""), err=True)

    cam = make_camera(cfg)
    try:
        live = start_course_capture(svc, cam, config.plan, course_code=course, camera_name=camera, now=now,
                                    offsets_s=sched, seed=seed, actor=CLI_ADMIN.username, start=False,
                                    settle_s=c.settings.light_settle_s, capture_window_s=c.settings.capture_window_s,
                                    on_event=event)
        typer.echo(f"session {live.session_id}: snapshots at {', '.join(f'{x:.0f}s' for x in live.offsets)}", err=True)
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


@app.command("resume")
def session_resume(ctx: typer.Context, session_id: int, as_json: Annotated[bool, typer.Option("--json")] = False,
                   profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """After a crash or restart: process stored snapshots and close the session with the data it has."""
    from aas_core.services.sessions import SessionService

    c = ctx_of(ctx)
    svc = SessionService(c.url, store(c), pipeline(c, profile), c.settings)
    try:
        outcome = svc.resume_or_close(session_id, actor=CLI_ADMIN.username)
    except (LookupError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps(outcome.as_json()) if as_json else
               "\n".join(f"{k}\t{v}" for k, v in sorted(outcome.statuses.items())))


