"""``aas models`` (list, fetch, quantize), ``aas eval faces`` and ``aas bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli.common import ctx_of, fail

app = typer.Typer(help="Model weights: list, fetch, quantize.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluation on labelled folders.", no_args_is_help=True)
tools = typer.Typer()  # top-level `aas bench`, merged into the root app


@eval_app.command("faces")
def eval_faces(ctx: typer.Context, directory: Path,
               enroll_k: Annotated[int, typer.Option("--enroll-k")] = 5,
               strangers: Annotated[float, typer.Option("--strangers", help="Fraction of identities held back.")] = 0.2,
               backends_: Annotated[list[str] | None, typer.Option("--backend", help="arcface | dlib | dlib-hog (repeatable)")] = None,
               seed: Annotated[int, typer.Option("--seed")] = 0,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Identification / verification / stranger rejection on DIR/<identity>/*.jpg, per model."""
    from aas_core.tools.evaluation import EVAL_BACKENDS, evaluate_folder

    c = ctx_of(ctx)
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


@tools.command()
def bench(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False,
          faces: Annotated[int, typer.Option("--faces")] = 36,
          repeats: Annotated[int, typer.Option("--repeats")] = 3,
          gallery_size: Annotated[int, typer.Option("--gallery")] = 10_000,
          dataset: Annotated[Path | None, typer.Option("--dataset", help="Labelled faces folder for the scene.")] = None,
          profiles: Annotated[list[str] | None, typer.Option("--profile")] = None,
          peers: Annotated[bool, typer.Option(
              "--peers", help="Instead: the profiles against InsightFace's FaceAnalysis loop (det 640 / 1280, "
                              "same weights) on 1080p and 4K scenes, interleaved.")] = False) -> None:
    """Per-stage median ms on a 1920x1080 classroom snapshot per profile, and gallery matching."""
    from aas_core.tools.bench import peer_text, run_bench, run_peer_bench

    c = ctx_of(ctx)
    if peers:
        if repeats < 1:
            raise fail("--repeats must be at least 1")
        try:
            report = run_peer_bench(c.settings.models_dir, dataset=dataset, n_faces=faces, repeats=repeats,
                                    profiles=profiles)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        typer.echo(json.dumps(report) if as_json else peer_text(report))
        return
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


@app.command("list")
def models_list(ctx: typer.Context) -> None:
    """What the manifest knows, and whether each file is present and intact."""
    from aas_core.vision import weights as registry

    c = ctx_of(ctx)
    rows = registry.status(c.settings.models_dir)
    w = max((len(st.spec.name) for st in rows), default=10) + 2
    typer.echo(f"models dir: {c.settings.models_dir}")
    for st in rows:
        typer.echo(f"{st.spec.name:<{w}}{st.state:<11}{st.spec.stage:<8}{st.spec.file}")
    from aas_core.vision.quantize import int8_info

    for info in int8_info(c.settings.models_dir):
        state = "STALE" if info["stale"] else "generated"
        note = (f"int8 copy of {info['source']}, made {info['made'] or '?'} by `aas models quantize`"
                + (" - its source changed since: run `aas models quantize` again" if info["stale"] else ""))
        typer.echo(f"{Path(info['file']).stem:<{w}}{state:<11}{'':<8}{info['file']}  ({note})")


@app.command("fetch")
def models_fetch(ctx: typer.Context, name: str) -> None:
    """Download a model from its official URL into the models dir (hash-checked)."""
    from aas_core.vision import weights as registry

    c = ctx_of(ctx)
    try:
        path = registry.fetch(name, c.settings.models_dir, progress=True)
    except Exception as exc:
        raise fail(f"{exc}") from None
    typer.echo(f"saved {path}")


@app.command("quantize")
def models_quantize(
    ctx: typer.Context,
    photos: Annotated[Path, typer.Option("--photos", help="folder of face photos to calibrate on "
                                         "(any depth, e.g. <person>/*.jpg; the enrollment photos are ideal)")],
    max_faces: Annotated[int, typer.Option("--max-faces", min=20, max=2000)] = 200,
    min_speedup: Annotated[float, typer.Option(
        "--min-speedup", min=0.0, max=10.0,
        help="install a copy only if it runs this many times faster than fp32 on this machine "
             "(0: whatever its speed, e.g. when the copies are made for another machine)")] = 1.2,
) -> None:
    """Make int8 copies of the fast profile's detector and embedder (1.8x / 3x faster on CPUs with VNNI).

    Calibrated on your own photos and checked against the fp32 models on a held-out part of
    them; a copy that disagrees, or that is not faster than fp32 on this machine (x86 CPUs
    without VNNI gain nothing from int8), is not installed. The fast profile uses the copies from then
    on; rosters are re-embedded at the next session start (the embedder's name changes).
    A trade-off: on the hard lecture-hall benchmark int8 got 1-2 points fewer statuses right
    (docs/EVALUATION.md, "int8 in the product"). Remove the *_int8.onnx files to go back to fp32.
    """
    from aas_core.vision.quantize import QuantizeError, build_int8_models, photos_in

    c = ctx_of(ctx)
    try:
        files = photos_in(photos)
        typer.echo(f"calibrating on {len(files)} photos from {photos} (a few minutes)...")
        report = build_int8_models(c.settings.models_dir, files, max_faces=max_faces, min_speedup=min_speedup)
    except QuantizeError as exc:
        raise fail(str(exc)) from None
    typer.echo(report.text())
    if report.refused:
        raise typer.Exit(1)
