"""Fixtures of the distributed-processing tests: the REAL RabbitMQ (a vhost of our own, deleted
after), the REAL Redis (a database number of our own, flushed after), MariaDB, real models, and
real `aas worker` subprocesses.

RabbitMQ and Redis are expected on 127.0.0.1 (5672 guest/guest, 6379); `.ci/run` starts them.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from aas_core.tools.synthetic import SyntheticSession, make_session, scrfd_locator
from tests.conftest import _mysql_database

ROOT = Path(__file__).resolve().parents[2]
RABBIT = os.environ.get("AAS_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def aas(env: dict[str, str], *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "aas_core.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"aas {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def base_env(url: str, data: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AAS_")}
    env.update(AAS_DATABASE_URL=url, AAS_DATA_DIR=str(data), AAS_MODELS_DIR=str(models_dir), AAS_PROFILE="fast",
               PYTHONPATH=str(ROOT), **extra)
    return env


def wait_for(cond: Callable[[], object], timeout_s: float, what: str, poll_s: float = 0.2) -> object:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


# --- brokers ------------------------------------------------------------------------------------

def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


#: `rabbitmqctl delete_vhost` calls still running: a test does not wait for its vhost to go (each
#: call starts an Erlang VM, seconds), the session waits for all of them at its end.
_DELETING: list[subprocess.Popen[bytes]] = []


@pytest.fixture(scope="session", autouse=True)
def _vhosts_deleted() -> Iterator[None]:
    yield
    for proc in _DELETING:
        if proc.wait(60) != 0:
            print(f"rabbitmqctl {' '.join(map(str, proc.args[2:]))} failed ({proc.returncode})")
    _DELETING.clear()


def _vhost() -> Iterator[str]:
    if not shutil.which("rabbitmqctl"):
        pytest.fail("rabbitmqctl not found: RabbitMQ must be installed and running (.ci/run starts it)")
    vhost = f"aas_test_{secrets.token_hex(4)}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"RabbitMQ is not usable: {exc.stderr!r}")
    try:
        yield f"{RABBIT}/{vhost}"
    finally:
        _DELETING.append(subprocess.Popen(["rabbitmqctl", "-q", "delete_vhost", vhost],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


@pytest.fixture
def rabbit_vhost() -> Iterator[str]:
    """A broker URL on a RabbitMQ vhost of this test's own (deleted with everything in it after)."""
    yield from _vhost()


@pytest.fixture(scope="module")
def module_rabbit_vhost() -> Iterator[str]:
    """A broker URL on a RabbitMQ vhost of this module's own (for a worker its tests share)."""
    yield from _vhost()


@pytest.fixture
def redis_db() -> Iterator[str]:
    """A broker URL on a Redis database number nobody uses (empty, claimed with a key; flushed after)."""
    import redis

    claim = f"aas_test_claim_{secrets.token_hex(4)}"
    for db in random.sample(range(1, 16), 15):
        r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)
        try:
            if r.dbsize() == 0 and r.set(claim, "1", nx=True) and r.dbsize() == 1:
                break
        except redis.ConnectionError as exc:
            pytest.fail(f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable (.ci/run starts it): {exc}")
        r.close()
    else:
        pytest.fail("no empty Redis database number left")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    finally:
        r.flushdb()
        r.close()


# --- a class: enrolled students, snapshots with known statuses ----------------------------------------

@pytest.fixture(scope="session")
def classroom(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, data_dir: Path) -> tuple[SyntheticSession, Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("classroom")
    ss = make_session(data_dir / "faces_dev", scrfd_locator(models_dir), n_students=8, n_strangers=1, seed=5)
    snaps = ss.write(tmp / "snaps")
    for sid, paths in ss.enroll.items():
        d = tmp / "enroll" / sid
        d.mkdir(parents=True)
        for p in paths:
            (d / p.name).symlink_to(p)
    return ss, tmp / "enroll", snaps


@pytest.fixture(scope="session")
def school(classroom: tuple[SyntheticSession, Path, list[Path]], models_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A MariaDB database with course CS1 and its 8 students enrolled (`aas enroll-dir`); the
    environment of an `aas` command on it (no broker)."""
    _, enroll_dir, _ = classroom
    data = tmp_path_factory.mktemp("shared") / "data"
    for url in _mysql_database():
        env = base_env(url, data, models_dir)
        aas(env, "init")
        aas(env, "course", "add", "CS1", "--name", "Synthetic class")
        out = aas(env, "enroll-dir", str(enroll_dir), "--course", "CS1").stdout
        assert "enrolled 8 students" in out
        for sid in sorted({line.split("/")[0] for line in out.splitlines() if ": held for review: " in line}):
            aas(env, "student", "review", sid, "--accept-all")
        yield env


def settings_of(env: dict[str, str], **update: object):  # type: ignore[no-untyped-def]
    """The Settings an `aas` process with ``env`` would have (for in-test producers)."""
    from aas_core.config import Settings

    values = {"database_url": env["AAS_DATABASE_URL"], "data_dir": Path(env["AAS_DATA_DIR"]),
              "models_dir": Path(env["AAS_MODELS_DIR"]), "profile": env["AAS_PROFILE"],
              "broker_url": env.get("AAS_BROKER_URL")}
    if "AAS_BROKER_VISIBILITY_TIMEOUT_S" in env:
        values["broker_visibility_timeout_s"] = float(env["AAS_BROKER_VISIBILITY_TIMEOUT_S"])
    if "AAS_CAMERAS" in env:
        import json

        values["cameras"] = json.loads(env["AAS_CAMERAS"])
    return Settings(**{**values, **update})


def burst_of(image: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of one scene with a little sensor noise each (as a camera's burst)."""
    rng = np.random.default_rng(seed)
    return [np.clip(image.astype(np.int16) + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


# --- workers ---------------------------------------------------------------------------------------

@dataclass
class Worker:
    """A real `aas worker` subprocess; its log is a file the test reads."""

    proc: subprocess.Popen[bytes]
    log: Path
    name: str

    @classmethod
    def start(cls, env: dict[str, str], log: Path, *, queues: str = "capture,process", name: str | None = None,
              concurrency: int = 1, ready_timeout_s: float = 120.0) -> Worker:
        w = cls.launch(env, log, queues=queues, name=name, concurrency=concurrency)
        w.wait_ready(ready_timeout_s)
        return w

    @classmethod
    def launch(cls, env: dict[str, str], log: Path, *, queues: str = "capture,process", name: str | None = None,
               concurrency: int = 1) -> Worker:
        """The process started, not yet ready (start several, then ``wait_ready`` each: they load
        their models at the same time)."""
        name = name or f"w{secrets.token_hex(3)}"
        fh = log.open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "aas_core.cli", "worker", "--queues", queues,
                                 "--name", f"{name}@%h", "--concurrency", str(concurrency)], env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        fh.close()
        return cls(proc, log, name)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        try:
            wait_for(lambda: " ready." in self.text() or self.proc.poll() is not None, timeout_s, f"worker {self.name}")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited ({self.proc.returncode}):\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count(self, needle: str) -> int:
        return self.text().count(needle)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finishes the task in hand
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
