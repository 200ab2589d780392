"""``aas room``: rooms and their cameras (administrators; the CLI acts as one).

A camera's secrets never go through these commands: they stay in ``AAS_CAMERAS`` or
``.streamlit/secrets.toml`` under the camera's name; ``set-camera`` refuses a host holding
credentials.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

app = typer.Typer(help="Rooms and their cameras.", no_args_is_help=True)


@app.command("add")
def room_add(ctx: typer.Context, name: str,
             description: Annotated[str | None, typer.Option("--description", help="e.g. 'Building B, 120 seats'")] = None,
             ) -> None:
    """Add a room (its camera: `aas room set-camera`)."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    try:
        rooms.add_room(c.url, CLI_ADMIN, name, description)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"room {name.strip()} added")


@app.command("list")
def room_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Rooms, their cameras (no secrets: only which secret keys the environment holds) and camera health."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    views = rooms.list_rooms(c.url, CLI_ADMIN, c.settings)
    if as_json:
        typer.echo(json.dumps([v.as_json() for v in views]))
        return
    for v in views:
        cam = (f"{v.camera} ({v.kind}{', ' + v.host if v.host else ''})" if v.camera else "no camera")
        health = ""
        if v.health is not None:
            h = v.health
            health = (f"\tFAILING since {h.last_error_at:%Y-%m-%d %H:%M} UTC: {h.last_error}" if h.failing else
                      f"\tlast good grab {h.last_ok_at:%Y-%m-%d %H:%M} UTC" if h.last_ok_at else "")
        typer.echo(f"{v.name}\t{cam}{health}")


@app.command("remove")
def room_remove(ctx: typer.Context, name: str) -> None:
    """Delete a room and its camera (refused while a timetable meets there)."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    try:
        rooms.remove_room(c.url, CLI_ADMIN, name)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"room {name} removed")


def _options(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: write KEY=VALUE, e.g. timeout_s=3")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@app.command("set-camera")
def room_set_camera(
    ctx: typer.Context, room: str,
    kind: Annotated[str, typer.Option("--kind", help="stream | snapshot_url | ipwebcam | dahua | images")],
    host: Annotated[str | None, typer.Option(
        "--host", help="URL (stream, snapshot_url, ipwebcam) or host name (dahua), WITHOUT credentials")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The camera's name: its secrets go under it in AAS_CAMERAS / secrets.toml "
                       "(default: the room's name)")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", metavar="KEY=VALUE", help="Non-secret option, e.g. timeout_s=3, channel=1, verify_tls=false "
                                              "(repeatable)")] = None,
) -> None:
    """Give a room its camera (or change it)."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    try:
        view = rooms.set_camera(c.url, CLI_ADMIN, room, kind=kind, host=host, name=name,
                                options=_options(option or []))
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"room {view.name}: camera {view.camera} ({view.kind})")
    try:
        rooms.camera_config(c.settings, c.url, view.camera or "")
    except (LookupError, ValueError) as exc:
        typer.secho(f"note: {exc}", fg=typer.colors.YELLOW, err=True)


@app.command("remove-camera")
def room_remove_camera(ctx: typer.Context, room: str) -> None:
    """Take a room's camera away (its meetings then use the course's camera, if any)."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    try:
        removed = rooms.remove_camera(c.url, CLI_ADMIN, room)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"room {room}: camera removed" if removed else f"room {room} had no camera")


@app.command("test")
def room_test(ctx: typer.Context, room: str, as_json: Annotated[bool, typer.Option("--json")] = False,
              save: Annotated[Path | None, typer.Option("--save", help="Write the grabbed frame to this file.")] = None,
              ) -> None:
    """Grab one frame from the room's camera with the light on, switch it off; records the camera's health."""
    from aas_core.services import rooms

    c = ctx_of(ctx)
    try:
        result = rooms.try_camera(c.url, CLI_ADMIN, c.settings, room)
    except (ValueError, LookupError) as exc:
        raise fail(str(exc)) from None
    if save is not None and result.image is not None:
        import cv2

        cv2.imwrite(str(save), result.image)
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    elif result.ok:
        h, w = result.image.shape[:2]  # type: ignore[union-attr]
        typer.echo(f"{result.camera}: frame {w}x{h} in {result.grab_ms:.0f} ms; light: {result.light}")
    if not result.ok:
        raise fail(f"{result.error}; light: {result.light}")
