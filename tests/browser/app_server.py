"""Starting the real dashboard (`streamlit run Home.py`) for the browser tests."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


_TEMPLATE: Path | None = None


def _migrated_template(models_dir: Path) -> Path:
    """An empty database made by ``aas init`` once per test session (the migrations take seconds);
    each dashboard starts from a copy of it."""
    global _TEMPLATE
    if _TEMPLATE is None or not _TEMPLATE.is_file():
        root = Path(tempfile.mkdtemp(prefix="aas_browser_template_"))
        atexit.register(shutil.rmtree, root, True)
        env = {**os.environ, "AAS_DATABASE_URL": f"sqlite:///{root / 'template.db'}",
               "AAS_DATA_DIR": str(root / "data"), "AAS_MODELS_DIR": str(models_dir)}
        subprocess.run([sys.executable, "-m", "aas_core.cli", "init"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=120)
        _TEMPLATE = root / "template.db"
    return _TEMPLATE


def _add_admin(url: str, password: str) -> None:
    """What ``aas user add admin --role admin`` does (tests/services/test_auth.py runs the command)."""
    from aas_core.cli.common import CLI_ADMIN
    from aas_core.db import session_scope
    from aas_core.db.engine import get_engine
    from aas_core.services.auth import create_user

    with session_scope(url) as s:
        create_user(s, "admin", password, "admin", actor=CLI_ADMIN.username)
    get_engine(url).dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(root: Path, models_dir: Path, password: str, *, db_name: str = "app.db", admin: bool = True,
                extra_env: dict[str, str] | None = None, secrets_file: Path | None = None,
                port: int | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh database with an admin account and the dashboard serving it on a free port.

    Served as ``make run`` serves it: ``streamlit run app.py`` (Home.py plus the sign-in cookie
    routes). ``admin=False`` leaves the database without any account (the first-run page);
    ``secrets_file`` replaces ``.streamlit/secrets.toml`` (e.g. an ``[auth]`` section); the
    server's console is ``root / "streamlit.log"``.

    Yields (base URL, environment used); the server is stopped afterwards and its log path printed.
    """
    env = {**os.environ, "AAS_DATABASE_URL": f"sqlite:///{root / db_name}", "AAS_DATA_DIR": str(root / "data"),
           "AAS_MODELS_DIR": str(models_dir), "AAS_NEW_PASSWORD": password, "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    py = sys.executable
    # `aas init` ran once for the session's template: a copy is the same migrated, empty database.
    shutil.copyfile(_migrated_template(models_dir), root / db_name)
    if admin:
        _add_admin(env["AAS_DATABASE_URL"], password)
    port = port or free_port()
    log_path = root / "streamlit.log"
    log = log_path.open("w")
    extra = ["--secrets.files", str(secrets_file)] if secrets_file else []
    proc = subprocess.Popen([py, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/_stcore/health", timeout=2).text.strip() == "ok":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print(f"streamlit log: {log_path}")
