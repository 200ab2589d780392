"""Starting the real dashboard (`streamlit run Home.py`) for the browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


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
    for args in (["init"], *([["user", "add", "admin", "--role", "admin"]] if admin else [])):
        subprocess.run([py, "-m", "aas_core.cli", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=120)
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
