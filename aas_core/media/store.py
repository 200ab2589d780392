"""Image storage on disk under the data dir, with non-guessable names; paths go in the DB.

Paths stored in the DB are relative to the data dir so the folder can be moved.

Nothing half-written, nothing unaccounted for
--------------------------------------------
* Every image is written to ``<name>.part`` in its final folder, fsynced, then renamed over
  the final name (``os.replace``) and the folder fsynced: a crash never leaves a truncated
  image under a name a row may point to. A batch (``save_many``: the face crops of a
  snapshot) is encoded first, its files written one after the other, fsynced together (in
  a small thread pool: the journal commits of concurrent fsyncs are shared, one commit
  instead of one per file), and only then renamed: still no name before its bytes are on disk.
* *Before* any byte of an image is written, its relative path is recorded in the pending
  journal: one small marker file per ``save``/``save_many`` call in ``<data>/.pending/``
  (JSON: the paths, the writer's host, pid and process start time), itself written to a
  temp name, fsynced and renamed. The marker is removed once the file is settled: its row
  committed (:func:`discard_on_rollback` hooks the session's commit), or the file deleted
  again. A process killed at any point (``kill -9``, power loss, disk full) therefore leaves
  a marker naming every file it may have orphaned; ``services.privacy.sweep_orphan_files``
  deletes those no row refers to as soon as the writer is gone, whatever their age
  (:meth:`ImageStore.pending_entries` tells live writers from dead ones).

Decoded images kept in memory
-----------------------------
The images this process wrote or read lately stay decoded in a small cache (:data:`DECODED`,
bounded in bytes): a snapshot shown right after it was taken (the Live Session page and its
review) is not decoded again (a 1080p JPEG at quality 95: 13-37 ms on 2 cores). An entry is
used only while the file is exactly the one this process wrote or read (same inode, mtime and
size): a file another process replaced, blacked out or deleted is read from disk again.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Folder of the data dir holding the pending journal (bookkeeping, never images).
PENDING_DIR = ".pending"
_TMP = ".part"  # suffix of a file being written; never referenced by a row

#: Threads that encode and fsync the images of one ``save_many`` call (both release the GIL;
#: fsync mostly waits on the disk). Created on first use, shared by every store of the process.
_IO_WORKERS = 8
_pool: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _io_pool() -> ThreadPoolExecutor:
    global _pool
    with _POOL_LOCK:
        if _pool is None:
            _pool = ThreadPoolExecutor(_IO_WORKERS, thread_name_prefix="aas-store")
        return _pool


def _write_file(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) and write ``data``; the caller fsyncs it
    (:func:`_fsync_file`) before any rename makes it visible under a final name.

    The one place bytes reach the disk (tests make it fail with ENOSPC to simulate a full disk).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk (fsync works on the file, through any descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(paths: Sequence[Path]) -> None:
    """fsync every file of ``paths``, concurrently when there are several; raises the first error
    after every fsync has finished (none is left running when the caller cleans up)."""
    if len(paths) <= 1:
        for p in paths:
            _fsync_file(p)
        return
    futures = [_io_pool().submit(_fsync_file, p) for p in paths]
    wait(futures)
    for f in futures:
        f.result()


def _encode(ext: str, params: list[int], image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError(f"could not encode image as {ext}")
    return buf.tobytes()


def _fsync_dir(path: Path) -> None:
    """Make a rename/creation in ``path`` durable (not supported everywhere: best effort there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. filesystems that refuse fsync on a directory
        pass
    finally:
        os.close(fd)


class DecodedCache:
    """Decoded images by absolute path, each valid for one version of its file; least recently
    used dropped first once ``max_bytes`` are held. Entries are read-only copies: a caller gets
    its own copy (:meth:`ImageStore.load`) and can never change what another one reads."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[tuple[int, int, int], np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def identity(path: Path) -> tuple[int, int, int] | None:
        """(inode, mtime ns, size) of the file now, None when it is gone."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def put(self, path: Path, ident: tuple[int, int, int] | None, image: np.ndarray) -> None:
        if ident is None or image.nbytes > self.max_bytes // 4:
            return
        kept = image.copy()
        kept.flags.writeable = False
        with self._lock:
            self._drop(str(path))
            self._items[str(path)] = (ident, kept)
            self._bytes += kept.nbytes
            while self._bytes > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old.nbytes

    def get(self, path: Path, ident: tuple[int, int, int] | None) -> np.ndarray | None:
        with self._lock:
            item = self._items.get(str(path))
            if item is None:
                return None
            if item[0] != ident:  # another version of the file (or none): never the old picture
                self._drop(str(path))
                return None
            self._items.move_to_end(str(path))
            return item[1]

    def drop(self, path: Path) -> None:
        with self._lock:
            self._drop(str(path))

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1].nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


#: The process's decoded images (see the module doc): ~10 snapshots of 1080p with their crops.
DECODED = DecodedCache(int(os.environ.get("AAS_DECODED_CACHE_MB", "96")) * 2**20)


def _reduced_flag(path: Path, max_side: int) -> tuple[int, int]:
    """The cheapest ``cv2.imread`` flag whose picture still has at least ``max_side`` px on its
    longer side (JPEG decoders scale by 1/2, 1/4, 1/8 while decoding), and that factor."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "JPEG":
                return cv2.IMREAD_COLOR, 1
            longest = max(im.size)
    except (OSError, ValueError):
        return cv2.IMREAD_COLOR, 1
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest // factor >= max_side:
            return flag, factor
    return cv2.IMREAD_COLOR, 1


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


# --- who wrote a marker, and is it still running -----------------------------------------------

def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may contain spaces and ')'
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _writer() -> dict[str, object]:
    """Identity of this process as a writer: a pid alone could be reused after a crash."""
    pid = os.getpid()  # asked every time: a forked child is another writer
    stat = _proc_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "start": stat[1] if stat else None}


def writer_alive(host: str | None, pid: int | None, start: str | None) -> bool | None:
    """True/False when we can tell whether that writer is still running, None when we cannot
    (another host sharing the data dir)."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return None
    if Path("/proc/self/stat").exists():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or dead and not yet reaped
            return False
        return start is None or stat[1] == start  # same pid, other start time: pid reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class PendingEntry:
    """One marker of the pending journal."""

    marker: Path
    paths: tuple[str, ...]  # relative paths the writer meant to write (and maybe did)
    alive: bool | None  # the writer: running, gone, or unknown (another host)
    age_s: float


# Markers this process wrote and still holds: abs file path -> marker, marker -> unsettled files.
_LOCK = threading.Lock()
_MARKER_OF: dict[Path, Path] = {}
_OPEN: dict[Path, set[Path]] = {}


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- writing -----------------------------------------------------------------------------------
    def save(self, kind: str, image_bgr: np.ndarray, ext: str = ".jpg", quality: int = 92) -> str:
        """Write an image and return its relative path, e.g. ``snapshots/2026/11/<random>.jpg``.

        The path is journaled before the write (see the module doc); it stays journaled until
        :meth:`settle` (after its row committed) or :meth:`delete`.
        """
        [rel] = self.save_many(kind, [image_bgr], ext=ext, quality=quality)
        assert rel is not None
        return rel

    def save_many(self, kind: str, images: Sequence[np.ndarray | None], ext: str = ".jpg",
                  quality: int = 92) -> list[str | None]:
        """Write several images (None entries are skipped and give None) under one journal marker.

        All or nothing: if any write fails (a full disk, an encoding error), the files of this
        call already written are deleted, the marker removed and the error raised.
        """
        if any(img is not None and img.size == 0 for img in images):
            raise ValueError("refusing to store an empty image")
        day = datetime.now(UTC)
        rels: list[str | None] = [
            (Path(kind) / f"{day:%Y}" / f"{day:%m}" / f"{secrets.token_urlsafe(18)}{ext}").as_posix()
            if img is not None else None for img in images]
        wanted = [r for r in rels if r is not None]
        if not wanted:
            return rels
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
        todo = [(rel, img) for rel, img in zip(rels, images, strict=True) if rel is not None]
        # Encoded before anything reaches the disk (an encoding error writes nothing at all).
        if len(todo) > 1:
            data = list(_io_pool().map(lambda item: _encode(ext, params, item[1]), todo))
        else:
            data = [_encode(ext, params, img) for _, img in todo]
        marker = self._journal(wanted)  # before any image byte: a crash from here on is accounted for
        written: list[str] = []
        try:
            folders = set()
            temps = []
            # Written one after the other (the first failure, a full disk, stops the batch), ...
            for (rel, _), buf in zip(todo, data, strict=True):
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + _TMP)
                written.append(rel)
                _unlink(tmp)  # a leftover of a crashed earlier attempt at this very name
                _write_file(tmp, buf)
                temps.append(tmp)
                folders.add(path.parent)
            _fsync_all(temps)  # ... fsynced together, and only then given their final names
            for tmp in temps:
                os.replace(tmp, tmp.with_name(tmp.name.removesuffix(_TMP)))
            for folder in folders:  # one fsync per folder makes every rename of this call durable
                _fsync_dir(folder)
            for (rel, img), tmp in zip(todo, temps, strict=True):  # shown next, most likely: kept decoded
                final = tmp.with_name(tmp.name.removesuffix(_TMP))
                DECODED.put(final, DecodedCache.identity(final), img)
        except BaseException:
            # Undo this call: no file of a failed batch stays behind, and nothing to journal then.
            for rel in written:
                self._remove(self.root / rel)
            with _LOCK:
                for rel in wanted:
                    _MARKER_OF.pop(self.root / rel, None)
                _OPEN.pop(marker, None)
            _unlink(marker)
            raise
        return rels

    def overwrite(self, rel: str, image_bgr: np.ndarray, quality: int = 92) -> None:
        """Replace the content of an existing stored image in place (e.g. a face blacked out), atomically."""
        path = self.path(rel)
        if not path.is_file():
            raise FileNotFoundError(f"stored image missing: {rel}")
        ext = path.suffix.lower() or ".jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
        data = _encode(ext, params, image_bgr)
        # Journaled too: a crash mid-write would leave the temp file behind (the file itself is
        # referenced, so a sweep keeps it and only removes the temp).
        marker = self._journal([rel], track=False)
        DECODED.drop(path)
        try:
            self._replace_atomically(path, data)
        finally:
            _unlink(marker)
        DECODED.put(path, DecodedCache.identity(path), image_bgr)

    def _replace_atomically(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + _TMP)
        _unlink(tmp)  # a leftover of a crashed earlier attempt at this very name
        try:
            _write_file(tmp, data)
            _fsync_file(tmp)  # the data is on disk before the rename makes it visible under its name
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def _remove(self, path: Path) -> None:
        _unlink(path)
        _unlink(path.with_name(path.name + _TMP))

    # --- the pending journal ------------------------------------------------------------------------
    def _journal(self, rels: list[str], *, track: bool = True) -> Path:
        folder = self.root / PENDING_DIR
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / f"{secrets.token_hex(12)}.json"
        body = json.dumps({"paths": rels, **_writer(), "created": time.time()}).encode()
        tmp = marker.with_name(marker.name + _TMP)
        try:
            _write_file(tmp, body)
            _fsync_file(tmp)
            os.replace(tmp, marker)  # a marker is whole or absent (a sweep never reads half of one)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(folder)  # the marker is durable before the first image byte is written
        if not track:
            return marker
        with _LOCK:
            _OPEN[marker] = {self.root / r for r in rels}
            for r in rels:
                _MARKER_OF[self.root / r] = marker
        return marker

    def settle(self, rel: str | None) -> None:
        """``rel`` no longer needs the journal (its row committed, or it was deleted): drop its
        marker once every file of that marker is settled."""
        if not rel:
            return
        path = self.root / rel
        with _LOCK:
            marker = _MARKER_OF.pop(path, None)
            if marker is None:
                return
            left = _OPEN.get(marker)
            if left is not None:
                left.discard(path)
                if left:
                    return
                del _OPEN[marker]
        try:
            _unlink(marker)
        except OSError:  # runs in a commit hook: a marker left behind only costs a check by the next sweep
            log.warning("could not remove journal marker %s", marker, exc_info=True)

    def pending_entries(self) -> list[PendingEntry]:
        """The markers of the pending journal, with whether their writer still runs.

        Unreadable markers (not possible from :meth:`save`, which renames whole markers into
        place) are reported with no paths and an unknown writer.
        """
        folder = self.root / PENDING_DIR
        if not folder.is_dir():
            return []
        now = time.time()
        out = []
        for marker in sorted(folder.iterdir()):
            if not marker.is_file():
                continue
            try:
                age = now - marker.stat().st_mtime
            except FileNotFoundError:  # settled meanwhile
                continue
            if marker.name.endswith(_TMP):  # a marker being written (or a crash while writing one)
                out.append(PendingEntry(marker, (), None, age))
                continue
            try:
                data = json.loads(marker.read_text())
                paths = tuple(p for p in data.get("paths", []) if isinstance(p, str))
                alive = writer_alive(data.get("host"), data.get("pid"), data.get("start"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, AttributeError):
                paths, alive = (), None
            out.append(PendingEntry(marker, paths, alive, age))
        return out

    def discard_pending(self, entry: PendingEntry, *, delete: Sequence[str] = ()) -> int:
        """Clean up after a dead writer: delete the files ``delete`` (paths of ``entry`` that no
        row refers to), the temp files of every path of the entry, then the marker.
        Returns the number of files deleted."""
        n = 0
        for rel in entry.paths:
            try:
                path = self.path(rel)
            except ValueError:  # a marker naming a path outside the data dir is not ours to follow
                continue
            if rel in delete and _unlink(path):
                n += 1
            _unlink(path.with_name(path.name + _TMP))
        _unlink(entry.marker)
        return n

    # --- reading ---------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError("path escapes the data dir")
        return p

    def load(self, rel: str, *, max_side: int | None = None) -> np.ndarray:
        """The stored image (the caller's own copy), from :data:`DECODED` while the file is the
        version this process wrote or read last.

        ``max_side``: at most that many pixels on the longer side (``media.draw.fit``), for the
        screen; a JPEG not in memory is then decoded at 1/2, 1/4 or 1/8 size where that still
        leaves ``max_side`` px (:meth:`size` gives the stored image's own size).
        """
        from aas_core.media.draw import fit

        path = self.path(rel)
        ident = DecodedCache.identity(path)
        img = DECODED.get(path, ident) if ident is not None else None
        if img is None:
            flag, factor = _reduced_flag(path, max_side) if max_side else (cv2.IMREAD_COLOR, 1)
            img = cv2.imread(str(path), flag)
            if img is None:
                raise FileNotFoundError(f"stored image missing or unreadable: {rel}")
            if factor == 1:
                DECODED.put(path, ident, img)
        out = fit(img, max_side) if max_side else img
        return out.copy() if out is img and not img.flags.writeable else out

    def size(self, rel: str) -> tuple[int, int]:
        """(width, height) of the stored image, from memory or the file's header (no decoding)."""
        from PIL import Image

        path = self.path(rel)
        img = DECODED.get(path, DecodedCache.identity(path))
        if img is not None:
            return img.shape[1], img.shape[0]
        try:
            with Image.open(path) as im:
                return im.size
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"stored image missing or unreadable: {rel}") from exc

    def delete(self, rel: str | None) -> bool:
        if not rel:
            return False
        try:
            path = self.path(rel)
            DECODED.drop(path)
            path.unlink()
            return True
        except FileNotFoundError:
            return False
        finally:
            self.settle(rel)  # deleted (or never there): nothing left to account for

    def all_files(self) -> list[Path]:
        """Every stored file (the pending journal is bookkeeping, not a stored file)."""
        if not self.root.exists():
            return []
        journal = self.root / PENDING_DIR
        return [p for p in self.root.rglob("*") if p.is_file() and journal not in p.parents]


_PENDING_KEY = "aas_files_to_discard_on_rollback"


def discard_on_rollback(session: Session, store: ImageStore, rel: str) -> None:
    """Delete the stored file ``rel`` if ``session``'s transaction rolls back instead of committing.

    Call it right after ``store.save`` for a file that a row of this transaction will point
    to: a failure later in the transaction (or in its commit) then leaves neither the row
    nor an orphan image on disk. After a commit the file is kept, and its journal marker
    dropped (:meth:`ImageStore.settle`).
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
    pending = session.info.get(_PENDING_KEY, [])
    while pending:
        store, rel = pending.pop()
        store.settle(rel)  # its row is committed: a crash from now on orphans nothing


def _discard_pending(session: Session, previous_transaction: object) -> None:
    if getattr(previous_transaction, "parent", None) is not None:  # a savepoint: the outer one decides
        return
    pending = session.info.get(_PENDING_KEY, [])
    while pending:
        store, rel = pending.pop()
        store.delete(rel)
