"""The Celery app: a kept engine for queues, redelivery and workers (no queue of our own).

``make_app(settings)`` builds it for ``settings.broker_url`` (RabbitMQ ``amqp://`` or Redis
``redis://``) and registers the three tasks, thin wrappers of ``tasks.work``. Delivery rules,
and why:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged after its task
  ran, so a worker killed mid-task (``kill -9``, a lost machine) leaves it with the broker, which
  hands it to another worker (RabbitMQ: as soon as the connection drops; Redis: after
  ``broker_visibility_timeout_s``). The task bodies are idempotent, so a second run is harmless.
* ``worker_prefetch_multiplier = 1``: a worker reserves one message at a time; a slow or dying
  worker never sits on a backlog the others could take.
* Two queues: ``aas.capture`` (grabbing cameras: I/O, no model) and ``aas.process`` (the models,
  and deciding a session). ``aas worker --queues process`` on a GPU machine takes only processing.
* No result backend: completion is read from the shared database (one source of truth); the
  messages carry ids only (JSON), images go through the shared data dir.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from kombu import Exchange, Queue
from sqlalchemy.exc import DBAPIError

from aas_core.config import Settings
from aas_core.tasks.dispatch import BrokerUnavailable

log = logging.getLogger(__name__)

CAPTURE_QUEUE = "aas.capture"
PROCESS_QUEUE = "aas.process"
#: ``aas worker --queues`` names -> broker queue names.
QUEUES = {"capture": CAPTURE_QUEUE, "process": PROCESS_QUEUE}

CAPTURE_TASK = "aas.capture_snapshot"
PROCESS_TASK = "aas.process_snapshot"
DECIDE_TASK = "aas.decide_session"

#: Errors after which a task is published again (with backoff) instead of failing: the database,
#: a file of the shared data dir or the broker (handing on the next step) was not reachable for
#: longer than the in-task retries.
RETRY_ON: tuple[type[BaseException], ...] = (DBAPIError, OSError, BrokerUnavailable)


def is_redis(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0] in ("redis", "rediss")


def make_app(settings: Settings) -> Celery:
    """A Celery app for ``settings.broker_url`` with the AAS tasks registered on it."""
    if not settings.broker_url:
        raise ValueError("no broker configured: set AAS_BROKER_URL (amqp://... or redis://...)")
    app = Celery("aas", broker=settings.broker_url, set_as_current=False)
    exchange = Exchange("aas", type="direct", durable=True)
    conf: dict[str, Any] = dict(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A task cut off by a lost broker connection is redelivered anyway (acks_late): stop it
        # instead of letting it finish and be run a second time.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_queues=(Queue(CAPTURE_QUEUE, exchange, routing_key=CAPTURE_QUEUE, durable=True),
                     Queue(PROCESS_QUEUE, exchange, routing_key=PROCESS_QUEUE, durable=True)),
        task_default_queue=PROCESS_QUEUE,
        task_default_exchange="aas",
        task_default_routing_key=PROCESS_QUEUE,
        task_routes={CAPTURE_TASK: {"queue": CAPTURE_QUEUE, "routing_key": CAPTURE_QUEUE},
                     PROCESS_TASK: {"queue": PROCESS_QUEUE, "routing_key": PROCESS_QUEUE},
                     DECIDE_TASK: {"queue": PROCESS_QUEUE, "routing_key": PROCESS_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_delivery_mode="persistent",  # queued snapshots survive a broker restart
        # Publishing: a few quick tries, then a clear error (the caller says what was kept).
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 1.0},
        broker_connection_timeout=5.0,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
    )
    if is_redis(settings.broker_url):
        conf["broker_transport_options"] = {"visibility_timeout": settings.broker_visibility_timeout_s,
                                            # look for abandoned messages often enough for that timeout
                                            "unacked_restore_interval": 5, "unacked_restore_throttle": 1}
    app.conf.update(conf)
    _register(app, settings)
    return app


_APPS: dict[str, Celery] = {}
_APPS_LOCK = threading.Lock()


def celery_app(settings: Settings) -> Celery:
    """The process's app for these settings (built once per distinct settings)."""
    key = settings.model_dump_json()
    with _APPS_LOCK:
        app = _APPS.get(key)
        if app is None:
            app = _APPS[key] = make_app(settings)
        return app


def _register(app: Celery, settings: Settings) -> None:
    from aas_core.tasks import work
    from aas_core.tasks.dispatch import CeleryDispatch

    def ctx() -> tuple[work.WorkEnv, CeleryDispatch]:
        env = work.env_for(settings)
        return env, CeleryDispatch(env, app)

    retry = dict(autoretry_for=RETRY_ON, retry_backoff=2, retry_backoff_max=60, retry_jitter=True, max_retries=10)

    @app.task(name=CAPTURE_TASK, **retry)
    def capture(session_id: int, index: int) -> int | None:
        env, then = ctx()
        return work.capture_snapshot(session_id, index, env=env, then=then)

    @app.task(name=PROCESS_TASK, **retry)
    def process(snapshot_id: int, decide: bool = True) -> str:
        env, then = ctx()
        return work.process_snapshot(snapshot_id, env=env, then=then, decide=decide)

    @app.task(name=DECIDE_TASK, **retry)
    def decide(session_id: int) -> dict[str, Any] | None:
        env, _ = ctx()
        return work.decide_session(session_id, env=env)


def broker_status(settings: Settings, *, timeout_s: float = 1.0) -> dict[str, Any]:
    """Queue depths from the broker and the workers that answer Celery's inspect API.

    A worker answers while busy (the ``threads`` pool keeps its consumer free); one that does
    not answer within ``timeout_s`` is not listed. Never raises: an unreachable broker is
    reported with its reason (``reachable: false``).
    """
    from aas_core.redact import redact_text, redact_url
    from aas_core.services.sessions import one_line

    out: dict[str, Any] = {"url": redact_url(str(settings.broker_url)), "checked": True, "reachable": False,
                           "error": None, "queues": {}, "workers": []}
    app = celery_app(settings)
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=max(timeout_s, 2.0))
            channel = conn.default_channel
            for q in app.conf.task_queues:
                # Declaring is idempotent (same arguments as the workers) and answers the counts on
                # both transports; a passive declare fails on Redis once a queue has been drained.
                ok = q.bind(channel).queue_declare()
                out["queues"][q.name] = {"messages": int(ok.message_count), "consumers": int(ok.consumer_count)}
        out["reachable"] = True
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the page and `aas status` show it
        out["error"] = redact_text(one_line(exc))
        return out
    inspect = app.control.inspect(timeout=timeout_s)
    try:
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
        stats = inspect.stats() or {}
    except Exception as exc:  # noqa: BLE001
        out["error"] = redact_text(one_line(exc))
        return out
    for name in sorted(set(queues) | set(active) | set(stats)):
        st = stats.get(name) or {}
        out["workers"].append({
            "name": name,
            "queues": sorted(q.get("name", "") for q in queues.get(name, [])),
            "active": len(active.get(name, [])),
            "processed": int(sum((st.get("total") or {}).values())),
            "concurrency": (st.get("pool") or {}).get("max-concurrency"),
            "pid": st.get("pid"),
        })
    return out
