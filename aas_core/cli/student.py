"""``aas student`` (add, list; admin commands add consent/withdraw/erase) and ``aas enroll``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli import common
from aas_core.cli.common import CLI_ADMIN, IMAGE_EXT, ctx_of, fail, read_images, store

app = typer.Typer(help="Students.", no_args_is_help=True)
enroll_cmds = typer.Typer()  # top-level `aas enroll` / `aas enroll-dir`, merged into the root app


@app.command("add")
def student_add(
    ctx: typer.Context, sid: str, name: Annotated[str, typer.Option("--name")],
    course: Annotated[str | None, typer.Option("--course")] = None,
    email: Annotated[str | None, typer.Option("--email")] = None,
    consent: Annotated[bool, typer.Option("--consent/--no-consent",
                                          help="Record that the student consented to face enrollment.")] = True,
) -> None:
    """Add a student (and put them on a course roster)."""
    from aas_core.db import repo, session_scope

    c = ctx_of(ctx)
    try:
        with session_scope(c.url) as s:
            st = repo.add_student(s, sid, name, email=email, consent=consent, actor=CLI_ADMIN.username)
            if course:
                repo.enroll_in_course(s, repo.get_course(s, course), st, actor=CLI_ADMIN.username)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"student {sid} added" + (f" to {course}" if course else ""))


@app.command("list")
def student_list(ctx: typer.Context) -> None:
    from aas_core.db import repo, session_scope

    with session_scope(ctx_of(ctx).url) as s:
        for st in repo.list_students(s):
            typer.echo(f"{st.student_number}\t{st.name}\t{len(st.samples)} samples")



def enroll_paths(c: common.Ctx, s, student, paths: list[Path], pipeline, store) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from aas_core.services.enrollment import enroll_images

    images, bad = [], 0
    for name, img in read_images(paths, c.settings.max_image_pixels):
        if isinstance(img, Exception):
            typer.echo(f"{student.student_number}/{name}: rejected: {img}")
            bad += 1
        else:
            images.append((name, img))
    outcomes = enroll_images(s, student, images, pipeline, store, c.settings, actor=CLI_ADMIN.username)
    for o in outcomes:
        typer.echo(f"{student.student_number}/{o.line()}")
    ok = sum(o.accepted for o in outcomes)
    return ok, bad + len(outcomes) - ok




@enroll_cmds.command()
def enroll(ctx: typer.Context, sid: str, images: list[Path],
           course: Annotated[str | None, typer.Option("--course")] = None,
           profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Enroll face photos of one student (quality-gated; prints accepted/rejected per image)."""
    from aas_core.db import repo, session_scope

    c = ctx_of(ctx)
    pipeline = common.pipeline(c, profile)
    try:
        with session_scope(c.url) as s:
            st = repo.get_student(s, sid)
            if course:
                repo.enroll_in_course(s, repo.get_course(s, course), st, actor=CLI_ADMIN.username)
            ok, bad = enroll_paths(c, s, st, list(images), pipeline, store(c))
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{sid}: {ok} accepted, {bad} rejected")
    if ok == 0:
        raise typer.Exit(2)


@enroll_cmds.command("enroll-dir")
def enroll_dir(ctx: typer.Context, directory: Path, course: Annotated[str, typer.Option("--course")],
               limit: Annotated[int | None, typer.Option("--limit", help="At most this many photos per student.")] = None,
               profile: Annotated[str | None, typer.Option("--profile")] = None) -> None:
    """Enroll DIR/<student id>/* for every sub-folder (students are created if new, name = id)."""
    from aas_core.db import repo, session_scope

    c = ctx_of(ctx)
    if not directory.is_dir():
        raise fail(f"{directory} is not a folder")
    subdirs = sorted(d for d in directory.iterdir() if d.is_dir())
    if not subdirs:
        raise fail(f"{directory} has no <student id>/ sub-folders")
    pipeline = common.pipeline(c, profile)
    store = common.store(c)
    total_ok = total_bad = 0
    try:
        with session_scope(c.url) as s:
            crs = repo.get_course(s, course)
        for d in subdirs:
            files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXT),
                           key=lambda p: (int(p.stem) if p.stem.isdigit() else 10**9, p.name))[:limit]
            with session_scope(c.url) as s:  # one transaction per student: a bad folder loses nothing else
                crs = repo.get_course(s, course)
                st, _ = repo.get_or_create_student(s, d.name, consent=True, actor=CLI_ADMIN.username)
                repo.enroll_in_course(s, crs, st, actor=CLI_ADMIN.username)
                ok, bad = enroll_paths(c, s, st, files, pipeline, store)
            total_ok += ok
            total_bad += bad
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"enrolled {len(subdirs)} students: {total_ok} samples accepted, {total_bad} rejected")


