"""``aas scheduler``: open each timetable meeting's session at its start and run its capture plan."""

from __future__ import annotations

import json
import logging
import signal
import threading
from typing import Annotated

import typer

from aas_core.cli.common import ctx_of, fail, pipeline, store

commands = typer.Typer()


class _BrokerWork:
    """The scheduler's work object when a broker is configured: each due snapshot becomes a
    capture task (``tasks.work.capture_snapshot`` on an ``aas worker``), which also processes
    and decides; sending is all that happens here."""

    def __init__(self, remote) -> None:  # type: ignore[no-untyped-def]
        self.remote = remote

    def capture(self, session_id: int, index: int) -> None:
        self.remote.capture(session_id, index)

    def close(self, timeout_s: float | None = None) -> None:
        """Nothing in flight here: the broker holds the tasks."""

@commands.command("scheduler")
def scheduler(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One tick, wait for the captures it started, exit (cron, tests).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=1.0, max=300.0, help="Seconds between ticks.")] = 10.0,
    grace: Annotated[float, typer.Option(
        "--grace", min=0.0, max=3600.0, help="A meeting's session is still opened this many seconds after its start; "
                                             "later it is listed as missed.")] = 300.0,
    threads: Annotated[int, typer.Option("--threads", min=1, max=64, help="Captures at the same time.")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print what the tick did.")] = False,
    profile: Annotated[str | None, typer.Option("--profile")] = None,
) -> None:
    """Run the timetable: sessions open themselves at each meeting (long-running; Ctrl-C stops it)."""
    from aas_core.db import init_db
    from aas_core.services.scheduler import LocalWork, Scheduler
    from aas_core.services.sessions import SessionService

    c = ctx_of(ctx)
    if grace < interval:
        raise fail(f"--grace ({grace:g} s) must be at least --interval ({interval:g} s), or meetings starting "
                   "between two ticks would be missed")
    # INFO for AAS only: libraries log request URLs at INFO, and a camera URL may carry its credentials.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aas_core").setLevel(logging.INFO)
    logging.getLogger("aas").setLevel(logging.INFO)
    try:
        init_db(c.url)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        raise fail(f"database not reachable: {exc.__class__.__name__}") from None
    if c.settings.broker_url:
        # Captures go to the broker's capture queue; `aas worker` processes take, process and decide.
        from aas_core.tasks.dispatch import BrokerUnavailable, check_broker, dispatcher

        remote = dispatcher(c.settings)
        try:
            check_broker(remote.app)  # type: ignore[attr-defined]
        except BrokerUnavailable as exc:
            raise fail(str(exc)) from None
        work: LocalWork | _BrokerWork = _BrokerWork(remote)
    else:  # no broker: everything in this process (`make run` on one machine)
        svc = SessionService(c.url, store(c), pipeline(c, profile), c.settings)
        work = LocalWork(svc, c.settings, threads=threads)
    sched = Scheduler(c.url, c.settings, work, grace_s=grace)
    if once:
        try:
            report = sched.tick()
        finally:
            work.close()
        if as_json:
            typer.echo(json.dumps(report.as_json()))
        else:
            typer.echo(f"opened {len(report.opened)} session(s), {len(report.missed)} meeting(s) missed, "
                       f"{len(report.dispatched)} snapshot(s) handed over")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"scheduler {sched.instance}: ticking every {interval:g} s (Ctrl-C stops)", err=True)

    def log_tick(report):  # type: ignore[no-untyped-def]
        if not report.idle:
            logging.getLogger("aas.scheduler").info(json.dumps(report.as_json()))

    sched.run(interval_s=interval, stop=stop, on_tick=log_tick)
    typer.echo("stopping: waiting for the captures in flight", err=True)
    work.close(timeout_s=c.settings.capture_window_s + 60)
