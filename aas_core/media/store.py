"""Image storage on disk under the data dir, with non-guessable names; paths go in the DB.

Paths stored in the DB are relative to the data dir so the folder can be moved.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, kind: str, image_bgr: np.ndarray, ext: str = ".jpg", quality: int = 92) -> str:
        """Write an image and return its relative path, e.g. ``snapshots/2026/11/<random>.jpg``."""
        if image_bgr is None or image_bgr.size == 0:
            raise ValueError("refusing to store an empty image")
        day = datetime.now(UTC)
        rel = Path(kind) / f"{day:%Y}" / f"{day:%m}" / f"{secrets.token_urlsafe(18)}{ext}"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
        ok, buf = cv2.imencode(ext, image_bgr, params)
        if not ok:
            raise ValueError(f"could not encode image as {ext}")
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(buf.tobytes())
        tmp.replace(path)  # atomic: a crash never leaves a half-written image under the final name
        return rel.as_posix()

    def overwrite(self, rel: str, image_bgr: np.ndarray, quality: int = 92) -> None:
        """Replace the content of an existing stored image in place (e.g. a face blacked out), atomically."""
        path = self.path(rel)
        if not path.is_file():
            raise FileNotFoundError(f"stored image missing: {rel}")
        ext = path.suffix.lower() or ".jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext, image_bgr, params)
        if not ok:
            raise ValueError(f"could not encode image as {ext}")
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(buf.tobytes())
        tmp.replace(path)

    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError("path escapes the data dir")
        return p

    def load(self, rel: str) -> np.ndarray:
        img = cv2.imread(str(self.path(rel)), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"stored image missing or unreadable: {rel}")
        return img

    def delete(self, rel: str | None) -> bool:
        if not rel:
            return False
        try:
            self.path(rel).unlink()
            return True
        except FileNotFoundError:
            return False

    def all_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file()] if self.root.exists() else []


_PENDING_KEY = "aas_files_to_discard_on_rollback"


def discard_on_rollback(session: Session, store: ImageStore, rel: str) -> None:
    """Delete the stored file ``rel`` if ``session``'s transaction rolls back instead of committing.

    Call it right after ``store.save`` for a file that a row of this transaction will point
    to: a failure later in the transaction (or in its commit) then leaves neither the row
    nor an orphan image on disk. After a commit the file is kept and forgotten here.
    """
    if not session.in_transaction():
        session.begin()  # so that a rollback of this unit of work is an event we see
    pending = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []
        event.listen(session, "after_commit", _forget_pending)
        event.listen(session, "after_soft_rollback", _discard_pending)
    pending.append((store, rel))


def _forget_pending(session: Session) -> None:
    session.info.get(_PENDING_KEY, []).clear()


def _discard_pending(session: Session, previous_transaction: object) -> None:
    if getattr(previous_transaction, "parent", None) is not None:  # a savepoint: the outer one decides
        return
    pending = session.info.get(_PENDING_KEY, [])
    while pending:
        store, rel = pending.pop()
        store.delete(rel)
