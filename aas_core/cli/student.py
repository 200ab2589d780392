"""``aas student`` (add, list, show; admin commands add consent/withdraw/erase) and ``aas enroll``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli import common
from aas_core.cli.common import CLI_ADMIN, IMAGE_EXT, ctx_of, fail, store

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



@app.command("show")
def student_show(ctx: typer.Context, sid: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One student: consent, courses and every face sample with its review status and reason."""
    from aas_core.services.students import student_overview

    c = ctx_of(ctx)
    try:
        info = student_overview(c.url, CLI_ADMIN, sid)
    except (LookupError, PermissionError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(info))
        return
    consent = info["consent"]
    typer.echo(f"{info['student_number']}\t{info['name']}")
    typer.echo(f"consent: {'given ' + consent['given_at'] if consent['given'] else 'not given'}")
    typer.echo(f"courses: {', '.join(info['courses']) or '-'}")
    typer.echo(f"samples: {len(info['samples'])}")
    for x in info["samples"]:
        why = f": {x['reason']}" if x["reason"] else ""
        typer.echo(f"  #{x['id']}\t{x['status']}\t{x['source']}\t{x['model']}\t{x['created_at']}{why}")


@app.command("review")
def student_review(
    ctx: typer.Context, sid: str,
    accept: Annotated[list[int] | None, typer.Option("--accept", help="Sample id to accept (repeatable).")] = None,
    reject: Annotated[list[int] | None, typer.Option("--reject", help="Sample id to reject (repeatable).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (needed to reject; the student sees it).")] = None,
    accept_all: Annotated[bool, typer.Option("--accept-all", help="Accept every photo of SID held for review.")] = False,
) -> None:
    """Photos of a student held for review: list them, or accept / reject them (audited).

    Without options it lists the held photos with the reason each was held; look at them
    (`aas student show SID`) before accepting: a held photo may show someone else.
    """
    from aas_core.services.students import review_sample, student_overview

    c = ctx_of(ctx)
    try:
        held = [x for x in student_overview(c.url, CLI_ADMIN, sid)["samples"] if x["status"] == "pending"]
        todo = [(i, True) for i in (accept or [])] + [(i, False) for i in (reject or [])]
        if accept_all:
            todo += [(x["id"], True) for x in held]
        if not todo:
            for x in held:
                typer.echo(f"#{x['id']}\theld for review: {x['reason']}")
            typer.echo(f"{len(held)} photo(s) of {sid} held for review")
            return
        ids = {x["id"] for x in held}
        if stray := [i for i, _ in todo if i not in ids]:
            raise fail(f"not held for review for {sid}: {', '.join(map(str, stray))}")
        for sample_id, ok in todo:
            status = review_sample(c.url, store(c), CLI_ADMIN, sample_id, accept=ok, reason=reason)
            typer.echo(f"#{sample_id}: {status}")
    except (ValueError, LookupError, PermissionError) as exc:
        raise fail(str(exc)) from None


def _read_lazily(paths: list[Path], max_pixels: int):  # type: ignore[no-untyped-def]  # -> Iterator
    """(name, image or the ImageError saying why not) per path, read only when enrollment asks for it."""
    from aas_core.media.decode import ImageError, read_image

    for p in paths:
        try:
            yield p.name, read_image(p, max_pixels=max_pixels)
        except ImageError as exc:
            yield p.name, exc


def enroll_paths(c: common.Ctx, s, student, paths: list[Path], pipeline, store, *,  # type: ignore[no-untyped-def]
                 prefix: str = "") -> tuple[int, int, int]:
    """Enroll the photos as the CLI's administrator (they count at once, after the duplicate and
    identity checks); prints ``NAME: accepted`` / ``held for review: REASON`` / ``rejected: REASON``
    per photo. Returns (accepted, held, rejected)."""
    from aas_core.db.models import Role
    from aas_core.services.enrollment import enroll_images

    outcomes = enroll_images(s, student, _read_lazily(paths, c.settings.max_image_pixels), pipeline, store,
                             c.settings, actor=CLI_ADMIN.username, added_by=Role.ADMIN,
                             each=lambda o, _img: typer.echo(f"{prefix}{o.line()}"))
    ok = sum(o.accepted for o in outcomes)
    held = sum(o.pending for o in outcomes)
    return ok, held, len(outcomes) - ok - held


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
            ok, held, bad = enroll_paths(c, s, st, list(images), pipeline, store(c))
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{sid}: {ok} accepted, {held} held for review, {bad} rejected")
    if ok == 0:  # nothing usable for recognition: scripts must notice
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
    total_ok = total_held = total_bad = 0
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
                ok, held, bad = enroll_paths(c, s, st, files, pipeline, store, prefix=f"{st.student_number}/")
            total_ok += ok
            total_held += held
            total_bad += bad
    except (LookupError, PermissionError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"enrolled {len(subdirs)} students: {total_ok} samples accepted, {total_held} held for review, "
               f"{total_bad} rejected")


