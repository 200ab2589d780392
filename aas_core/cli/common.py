"""What every ``aas`` command shares: the settings of this invocation, errors, pipeline, store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from aas_core.config import Settings, get_settings
from aas_core.db.models import Role
from aas_core.services.auth import AuthUser

#: The identity CLI commands act as (shell access to the server = administrator).
CLI_ADMIN = AuthUser(id=0, username="cli", role=Role.ADMIN)

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Ctx:
    settings: Settings

    @property
    def url(self) -> str:
        return self.settings.database_url


def ctx_of(ctx: typer.Context) -> Ctx:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Ctx) else Ctx(get_settings())


def fail(msg: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def pipeline(c: Ctx, profile: str | None = None):  # type: ignore[no-untyped-def]  # -> Pipeline
    from aas_core.services.pipelines import pipeline_config
    from aas_core.vision.pipeline import Pipeline

    cfg, notes = pipeline_config(c.settings, profile)
    for n in notes:
        typer.secho(n, fg=typer.colors.BLUE, err=True)
    return Pipeline(cfg, c.settings.models_dir)


def store(c: Ctx):  # type: ignore[no-untyped-def]  # -> ImageStore
    from aas_core.media.store import ImageStore

    return ImageStore(c.settings.resolved(c.settings.data_dir))


def read_images(paths: list[Path], max_pixels: int) -> list[tuple[str, Any]]:
    """(name, image or the ImageError saying why it cannot be read) per path."""
    from aas_core.media.decode import ImageError, read_image

    out: list[tuple[str, Any]] = []
    for p in paths:
        try:
            out.append((p.name, read_image(p, max_pixels=max_pixels)))
        except ImageError as exc:
            out.append((p.name, exc))
    return out
