"""A class session driven by a camera: the capture runner wired to the session service.

Each snapshot is stored and committed by ``SessionService.store_snapshot`` the moment the
runner delivers it, then processed; database calls are retried on transient errors (a
MariaDB restart). Killing the process loses only the snapshot in flight; ``resume`` later
processes what was stored and closes the session with the data it has.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from aas_core.capture.base import Camera
from aas_core.capture.runner import SessionRunner
from aas_core.db.retry import retrying
from aas_core.sessions import SessionOutcome, SessionService

log = logging.getLogger(__name__)


class CameraSession:
    """Start (or resume) a session and capture its plan in the background."""

    def __init__(self, svc: SessionService, camera: Camera, offsets: Sequence[float], *, course_code: str,
                 camera_name: str, seed: int | None = None, settle_s: float = 1.0, capture_window_s: float = 60.0,
                 session_id: int | None = None, on_event: Callable[[str, dict[str, Any]], None] | None = None,
                 **runner_kw: Any) -> None:
        self.svc = svc
        self.on_event = on_event or (lambda kind, info: None)
        if session_id is None:
            plan = {"offsets_s": [float(o) for o in offsets], "snapshots": len(offsets), "camera": camera_name}
            session_id = svc.start(course_code, camera_name=camera_name, plan=plan, seed=seed)
        self.session_id = session_id
        self.gallery = svc.gallery(session_id)
        self.n = len(offsets)
        self._todo: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._process_loop, name=f"process-session-{session_id}", daemon=True)
        self.runner = SessionRunner(camera, offsets, on_snapshot=self._snapshot, on_missing=self._missing,
                                    settle_s=settle_s, capture_window_s=capture_window_s, camera_label=camera_name,
                                    **runner_kw)

    def _snapshot(self, index: int, image: np.ndarray, captured_at: datetime, camera: str, light_used: bool) -> None:
        # Runner thread: store + commit only, so processing never delays the next capture.
        snap_id = retrying(self.svc.store_snapshot)(self.session_id, index, image, camera=camera,
                                                    light_used=light_used, captured_at=captured_at)
        self.on_event("stored", {"index": index, "snapshot_id": snap_id})
        self._todo.put((index, snap_id))

    def _process_loop(self) -> None:
        while True:
            item = self._todo.get()
            if item is None:
                return
            index, snap_id = item
            try:
                result = retrying(self.svc.process_snapshot)(snap_id, self.gallery)
                self.on_event("processed", {"index": index, "snapshot_id": snap_id, "faces": len(result.faces)})
            except Exception as exc:  # recorded on the snapshot row as FAILED; capture goes on
                log.exception("processing snapshot %s failed", snap_id)
                self.on_event("failed", {"index": index, "error": f"{exc.__class__.__name__}: {exc}"})

    def _missing(self, index: int, error: str) -> None:
        retrying(self.svc.record_missing)(self.session_id, index, error)
        self.on_event("missing", {"index": index, "error": error})

    def start(self, skip_indices: Sequence[int] = ()) -> None:
        self._worker.start()
        self.runner.start(skip_indices)

    def wait_and_finalize(self, actor: str = "system") -> SessionOutcome:
        self.runner.join()
        self._todo.put(None)
        self._worker.join()
        return retrying(self.svc.finalize)(self.session_id, n_snapshots=self.n, actor=actor)
