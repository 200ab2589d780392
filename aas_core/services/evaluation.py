"""Recognition evaluation for the dashboard: who may evaluate what, and uploads of labelled photos.

Only an admin may point the evaluation at a folder on the server (it reads any path the server
can); an instructor uploads a zip of ``<identity>/<photo>`` folders, which is unpacked into a
private temporary folder with limits. ``zipfile`` (stdlib) reads it; the checks are ours
because zipfile itself trusts member names and declared sizes (zip-slip, zip bombs).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from aas_core.db.models import Role
from aas_core.services.auth import AuthUser, require_role
from aas_core.tools.evaluation import EvalReport, evaluate_folder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MAX_ZIP_FILES = 5_000
MAX_ZIP_BYTES = 500 * 1024 * 1024  # uncompressed, in all
MAX_PHOTO_BYTES = 30 * 1024 * 1024


def evaluate_server_folder(user: AuthUser, folder: Path, backend: str, models_dir: Path,
                           run: Callable[..., EvalReport] = evaluate_folder, **kw) -> EvalReport:  # type: ignore[no-untyped-def]
    """Evaluate a labelled folder on the server (admins only: it reads any path the server can).
    ``run``: the evaluation (the dashboard passes a cached one; the check stays here, outside it)."""
    require_role(user, Role.ADMIN)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder on the server")
    return run(folder, backend, models_dir, **kw)


def unpack_labelled_zip(data: bytes, dest: Path) -> int:
    """Unpack a zip of ``<identity>/<photo>`` (one extra top folder allowed) into ``dest``; returns
    the photos written. Refuses absolute or ``..`` names, links, non-image files, more than
    ``MAX_ZIP_FILES`` photos or ``MAX_ZIP_BYTES`` uncompressed (counted while reading, whatever
    the headers claim)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("this is not a zip file") from None
    members = [m for m in zf.infolist() if not m.is_dir()]
    photos = []
    for m in members:
        name = PurePosixPath(m.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or ":" in m.filename:
            raise ValueError(f"unsafe name in the zip: {m.filename!r}")
        if (m.external_attr >> 16) & 0o170000 == 0o120000:
            raise ValueError(f"links are not allowed in the zip: {m.filename!r}")
        if name.name.startswith(".") or "__MACOSX" in name.parts:
            continue
        if name.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{m.filename!r} is not a photo (allowed: {', '.join(sorted(IMAGE_SUFFIXES))})")
        photos.append((m, name))
    if not photos:
        raise ValueError("the zip holds no photos: it needs one folder per person, <identity>/<photo>.jpg")
    if len(photos) > MAX_ZIP_FILES:
        raise ValueError(f"the zip holds {len(photos)} photos; at most {MAX_ZIP_FILES}")
    depth = {len(n.parts) for _, n in photos}
    if depth == {3} and len({n.parts[0] for _, n in photos}) == 1:
        photos = [(m, PurePosixPath(*n.parts[1:])) for m, n in photos]  # "faces/<identity>/x.jpg"
    elif depth != {2}:
        raise ValueError("every photo must be in a folder named after its person: <identity>/<photo>.jpg")
    total = 0
    for m, name in photos:
        target = dest.joinpath(*name.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(m) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                total += len(chunk)
                if written > MAX_PHOTO_BYTES:
                    raise ValueError(f"{m.filename!r} is larger than {MAX_PHOTO_BYTES // 2**20} MB")
                if total > MAX_ZIP_BYTES:
                    raise ValueError(f"the zip unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
                out.write(chunk)
    return len(photos)


def evaluate_upload(user: AuthUser, data: bytes, backend: str, models_dir: Path,
                    run: Callable[..., EvalReport] = evaluate_folder, **kw) -> EvalReport:  # type: ignore[no-untyped-def]
    """Evaluate an uploaded zip of labelled photos (instructors and admins); nothing is kept."""
    require_role(user, Role.INSTRUCTOR)
    tmp = Path(tempfile.mkdtemp(prefix="aas-eval-"))
    try:
        unpack_labelled_zip(data, tmp)
        return run(tmp, backend, models_dir, **kw)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
