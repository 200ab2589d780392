"""``aas detect IMAGE...``: the pipeline on given images, faces and per-stage timings per image.

Models are loaded once for all images. With ``--course CODE`` the faces are matched against
that course's enrolled students with the course's threshold, as a session does (samples the
profile's model lacks are embedded first, ``ensure_embeddings``); without it nothing is matched.

``--json`` is a stable contract for scripts::

    {"images": [{"image": PATH, "width": W, "height": H,
                 "faces": [{"box": [x1, y1, x2, y2], "score": s, "student": ID | null, "similarity": f | null}],
                 "timings_ms": {"persons": .., "faces": .., "enhance": .., "embed": .., "match": .., "total": ..}}
                | {"image": PATH, "error": "..."}],
     "profile": NAME, "model": EMBEDDER, "course": CODE | null, "threshold": f | null}

``similarity``: the cosine similarity to the named student, or for a face left unknown the best
one to any enrolled student; null when nothing is matched. An image that cannot be read or
processed gets ``error`` and the command exits non-zero after the other images.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail, pipeline, store

commands = typer.Typer()  # `aas detect`, merged into the root app


def _faces(result: Any) -> list[dict[str, Any]]:
    m = result.match
    out = []
    for i in range(len(result.faces)):
        student, sim = None, None
        if m is not None:
            student = m.assigned[i]
            s = float(m.assigned_similarity[i]) if student is not None else (
                float(m.top_similarity[i][0]) if m.top_similarity.shape[1] else math.nan)
            sim = None if math.isnan(s) else round(s, 4)
        out.append({"box": [round(float(v), 1) for v in result.faces.xyxy[i]],
                    "score": round(float(result.faces.confidence[i]), 4), "student": student, "similarity": sim})
    return out


def _recognition(c: Any, pipe: Any, course: str) -> tuple[Any, float]:
    """The course roster's gallery for the pipeline's model (None: nobody enrolled) and threshold."""
    from aas_core.services import courses, in_transaction, privacy
    from aas_core.services.enrollment import ensure_embeddings
    threshold = courses.get_course(c.url, CLI_ADMIN, course).config.recognition.threshold
    ensure_embeddings(c.url, course, pipe, store(c), c.settings)
    name = pipe.embedder.name
    gallery = in_transaction(c.url, privacy.course_matching_gallery, CLI_ADMIN, course, name)
    if gallery is None:
        typer.secho(f"course {course} has no accepted face samples for {name}: no face can be named",
                    fg=typer.colors.YELLOW, err=True)
    return gallery, float(pipe.threshold if threshold is None else threshold)


@commands.command("detect")
def detect(ctx: typer.Context,
           images: Annotated[list[Path], typer.Argument(help="Image files (JPEG, PNG, ...).")],
           profile: Annotated[str | None, typer.Option("--profile", help="fast | accurate | offline | auto")] = None,
           course: Annotated[str | None, typer.Option(
               "--course", help="Match against this course's enrolled students (its threshold).")] = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Faces (box, score, student, similarity) and per-stage ms for each image, models loaded once."""
    from sqlalchemy.exc import SQLAlchemyError

    from aas_core.media.decode import ImageError, read_image
    from aas_core.redact import redact_text

    c = ctx_of(ctx)
    try:
        pipe = pipeline(c, profile)
        pipe.warm_up()
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    gallery, threshold = None, None
    if course:
        try:
            gallery, threshold = _recognition(c, pipe, course)
        except (LookupError, PermissionError) as exc:
            raise fail(str(exc)) from None
        except SQLAlchemyError as exc:
            raise fail(redact_text(f"could not read course {course}: {exc.__class__.__name__}: {exc}")) from None
    entries: list[dict[str, Any]] = []
    for path in images:
        entry: dict[str, Any] = {"image": str(path)}
        try:
            img = read_image(path, max_pixels=c.settings.max_image_pixels)
            result = pipe.run(img, gallery, threshold)
        except ImageError as exc:
            entry["error"] = str(exc)
        except (ValueError, RuntimeError, MemoryError) as exc:  # onnxruntime failures are RuntimeErrors
            entry["error"] = f"processing failed: {exc.__class__.__name__}: {exc}"
        else:
            h, w = img.shape[:2]
            entry.update(width=int(w), height=int(h), faces=_faces(result),
                         timings_ms={k: round(float(v), 2) for k, v in result.timings_ms.items()})
        entries.append(entry)
        if not as_json:
            _print_entry(entry, matched=course is not None)
    bad = [e for e in entries if "error" in e]
    if as_json:
        typer.echo(json.dumps({"images": entries, "profile": pipe.config.profile, "model": pipe.embedder.name,
                               "course": course, "threshold": threshold}))
    if bad:
        raise fail(f"{len(bad)} of {len(entries)} images could not be processed")


def _print_entry(e: dict[str, Any], matched: bool) -> None:
    if "error" in e:
        typer.secho(f"{e['image']}: error: {e['error']}", fg=typer.colors.RED, err=True)
        return
    t = e["timings_ms"]
    stages = ", ".join(f"{k} {v:.0f}" for k, v in t.items() if k != "total")
    typer.echo(f"{e['image']}: {e['width']}x{e['height']}, {len(e['faces'])} face{'' if len(e['faces']) == 1 else 's'}, {t['total']:.0f} ms ({stages})")
    for i, f in enumerate(e["faces"], 1):
        x1, y1, x2, y2 = f["box"]
        who = ""
        if matched:
            sim = "" if f["similarity"] is None else f" ({f['similarity']:.2f})"
            who = f"  {f['student'] or 'unknown'}{sim}"
        typer.echo(f"  face {i}: [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}] score {f['score']:.2f}{who}")
