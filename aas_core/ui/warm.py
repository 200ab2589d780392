"""Import what the pages need once, in the background, when the dashboard server starts.

Streamlit runs a page's script the first time someone opens it, and the first run pays for
every module it imports for the first time in the process: plotly.express, the evaluation
tools, the pipeline stages... That made the first visit of Courses, Evaluation and the
Pipeline Inspector take 1.7-2.4 s on the 2-core machine (benchmarks/page_navigation.py,
"cold") against 0.2-0.8 s afterwards. Importing them in a daemon thread at server start
moves that cost to before the first visit (Python's import lock makes a page that arrives
meanwhile wait for the same import, never import it twice). Models are not loaded here:
that stays with ``ui.resources.get_pipeline`` where the Live Session page asks for it.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

#: Modules the pages import that Home does not (found with ``python -X importtime``).
PAGE_MODULES = (
    "pandas",
    "plotly.express",
    "plotly.graph_objects",
    "aas_core.services.courses",
    "aas_core.services.roster",
    "aas_core.services.review",
    "aas_core.services.evaluation",
    "aas_core.tools.curves",
    "aas_core.tools.evaluation",
    "aas_core.ui.stages",
    "aas_core.media.draw",
    "aas_core.vision.embed.arcface_onnx",
)

_started = threading.Event()


def _import_all() -> None:
    for name in PAGE_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a page that needs it will raise it to the user itself
            log.warning("warm import of %s failed: %s", name, exc)


def start() -> threading.Thread | None:
    """Start the background imports once per process (later calls do nothing)."""
    if _started.is_set():
        return None
    _started.set()
    t = threading.Thread(target=_import_all, name="aas-warm-imports", daemon=True)
    t.start()
    return t
