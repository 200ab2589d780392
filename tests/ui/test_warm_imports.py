"""The dashboard's background imports (``ui.warm``): every listed module exists and imports,
and the thread starts once per process."""

from __future__ import annotations

import importlib.util

from aas_core.ui import warm


def test_every_warm_module_exists() -> None:
    missing = [m for m in warm.PAGE_MODULES if importlib.util.find_spec(m) is None]
    assert not missing


def test_the_imports_run_once_in_a_background_thread(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(warm, "_started", type(warm._started)())
    t = warm.start()
    assert t is not None and t.daemon and t.name == "aas-warm-imports"
    t.join(timeout=120)
    assert not t.is_alive()
    assert warm.start() is None  # once per process
