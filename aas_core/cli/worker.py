"""``aas worker`` (a Celery worker for the AAS queues) and ``aas status`` (operations facts)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from aas_core.cli.common import CLI_ADMIN, ctx_of, fail

commands = typer.Typer()

#: Pools a worker may run: one process holds the models once. ``threads`` keeps the consumer free
#: while tasks run (it answers `aas status` and the broker's heartbeats); ``solo`` runs one task in
#: the consumer itself. More CPU: start more `aas worker` processes (each loads the models once).
POOLS = ("threads", "solo")


@commands.command("worker")
def worker(ctx: typer.Context,
           queues: Annotated[str, typer.Option(
               "--queues", help="Comma-separated: capture (cameras, no model), process (models; GPU machines).")]
           = "capture,process",
           concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64,
                                                    help="Tasks run at once in this process.")] = 1,
           pool: Annotated[str, typer.Option("--pool", help="threads | solo")] = "threads",
           name: Annotated[str | None, typer.Option("--name", help="Worker name (default aas-PID@HOST).")] = None,
           loglevel: Annotated[str, typer.Option("--loglevel")] = "INFO",
           warm: Annotated[bool, typer.Option("--warm/--no-warm",
                                              help="Load the models before taking the first task.")] = True) -> None:
    """Consume the AAS queues of the broker in AAS_BROKER_URL (runs until stopped)."""
    from aas_core.config import redact_url
    from aas_core.redact import install_log_redaction
    from aas_core.tasks.app import PROCESS_QUEUE, QUEUES, celery_app
    from aas_core.tasks.dispatch import BrokerUnavailable, check_broker
    from aas_core.tasks.work import env_for

    c = ctx_of(ctx)
    if not c.settings.broker_url:
        raise fail("aas worker needs a broker: set AAS_BROKER_URL (amqp://user:pw@host:5672/vhost or "
                   "redis://host:6379/0)")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown or not wanted:
        raise fail(f"unknown queue {', '.join(unknown) or '(none)'}: choose from {', '.join(QUEUES)}")
    if pool not in POOLS:
        raise fail(f"pool {pool!r}: choose from {', '.join(POOLS)}")
    names = [QUEUES[q] for q in wanted]
    app = celery_app(c.settings)
    try:
        check_broker(app)
    except BrokerUnavailable as exc:
        raise fail(str(exc)) from None
    install_log_redaction()
    if warm and PROCESS_QUEUE in names:
        try:
            loaded = env_for(c.settings).service(None).pipeline.warm_up()
        except Exception as exc:  # missing weights and the like: say so before consuming anything
            raise fail(f"the models could not be loaded: {exc.__class__.__name__}: {exc}") from None
        typer.echo(f"models loaded: {', '.join(loaded)}", err=True)
    typer.echo(f"aas worker: queues {', '.join(names)}; broker {redact_url(c.settings.broker_url)}; "
               f"database {redact_url(c.url)}", err=True)
    argv = ["worker", f"--queues={','.join(names)}", f"--concurrency={concurrency}", f"--pool={pool}",
            f"--loglevel={loglevel}", f"--hostname={name or f'aas-{os.getpid()}@%h'}",
            "--without-gossip", "--without-mingle"]
    app.worker_main(argv)


@commands.command("status")
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False,
           broker: Annotated[bool, typer.Option("--broker/--no-broker",
                                                help="Ask the broker and the workers (when configured).")] = True,
           timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for workers to answer.")] = 1.0
           ) -> None:
    """Today's sessions, sessions awaiting review, queued/failed snapshots, workers and queue depth."""
    from aas_core.services.operations import operations_status

    c = ctx_of(ctx)
    try:
        facts = operations_status(c.url, CLI_ADMIN, c.settings, broker=broker, broker_timeout_s=timeout)
    except Exception as exc:  # the database unreachable: one line, no traceback
        from aas_core.redact import redact_text
        from aas_core.services.sessions import one_line

        raise fail(redact_text(f"could not read the status: {one_line(exc)}")) from None
    if as_json:
        typer.echo(json.dumps(facts))
        return
    typer.echo(f"{facts['date']}: {len(facts['sessions_today'])} sessions today")
    for x in facts["sessions_today"]:
        snaps = ", ".join(f"{n} {k}" for k, n in x["snapshots"].items() if n)
        typer.echo(f"  {x['session_id']}\t{x['course']}\t{x['started_at']}\t{x['status']}\t{snaps or 'no snapshot yet'}")
    typer.echo(f"awaiting review: {len(facts['awaiting_review'])} sessions")
    for x in facts["awaiting_review"]:
        typer.echo(f"  {x['session_id']}\t{x['course']}\t{x['students']} students to review")
    sn = facts["snapshots"]
    typer.echo(f"snapshots: {sn['queued']} queued, {sn['failed_today']} failed and {sn['missing_today']} missing today")
    b = facts["broker"]
    if b is None:
        typer.echo("broker: none (processing runs in the process that captures)")
    elif not b.get("checked"):
        typer.echo(f"broker: {b['url']} (not asked)")
    elif not b["reachable"]:
        typer.echo(f"broker: {b['url']} NOT REACHABLE: {b['error']}")
    else:
        depth = ", ".join(f"{q} {v['messages']} waiting" for q, v in b["queues"].items())
        typer.echo(f"broker: {b['url']}: {depth}; {len(b['workers'])} workers answering")
        for w in b["workers"]:
            typer.echo(f"  {w['name']}\t{','.join(w['queues'])}\t{w['active']} running, {w['processed']} done")
