"""Model registry: which weight files exist, where they come from, and whether they are intact.

Why a registry: weights are large, not in git, often fetched by hand, and several carry
non-commercial licences. One manifest (``models/manifest.toml``) lists every known file with
its sha256, download URL, licence and pipeline stage, so that

* a missing file fails with a message that names the file and the one command that fixes it
  (``aas models fetch <name>``) instead of an opaque ONNX Runtime / torch error;
* a truncated or tampered file (``.pth`` files are pickles, i.e. code) is refused before any
  backend parses it;
* the UI can show what is installed (:func:`status`) and what each model's licence allows.

Hashing a 170 MB file takes ~0.5 s, so verified digests are cached per (path, size, mtime):
backends can call :func:`resolve` on every construction without paying for it twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import tempfile
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from aas_core.config import PROJECT_ROOT
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
#: The manifest shipped with the code; a ``manifest.toml`` inside the models dir overrides it.
DEFAULT_MANIFEST = PROJECT_ROOT / "models" / MANIFEST_NAME

Stage = Literal["person", "face", "enhance", "embed"]
STAGES: tuple[str, ...] = ("person", "face", "enhance", "embed")
State = Literal["present", "missing", "corrupt", "unverified"]

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry (see the header of ``models/manifest.toml`` for the fields)."""

    name: str
    file: str
    sha256: str  # "" = unknown: loading skips the check and reports "unverified"
    url: str  # "" = manual download only
    licence: str
    stage: str
    backend: str
    member: str = ""  # path inside a .zip download
    size: int = 0  # 0 = unknown
    package: str = ""  # python package whose models/ folder may hold the file
    notes: str = ""

    @property
    def fetch_command(self) -> str:
        return f"aas models fetch {self.name}"


@dataclass(frozen=True)
class ModelStatus:
    """What :func:`status` reports about one manifest entry (its ``spec`` plus the file's state)."""

    spec: ModelSpec
    path: Path  # where it was found, or where it is expected
    state: State
    detail: str = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def file(self) -> str:
        return self.spec.file

    @property
    def stage(self) -> str:
        return self.spec.stage

    @property
    def backend(self) -> str:
        return self.spec.backend

    @property
    def licence(self) -> str:
        return self.spec.licence


# --------------------------------------------------------------------------- manifest


def _default_models_dir() -> Path:
    from aas_core.config import get_settings

    s = get_settings()
    return s.resolved(s.models_dir)


def _as_dir(models_dir: str | Path | None) -> Path:
    return _default_models_dir() if models_dir is None else Path(models_dir)


def manifest_path(models_dir: str | Path | None = None) -> Path:
    """The manifest in effect: ``models_dir/manifest.toml`` if present, else the repo's."""
    local = _as_dir(models_dir) / MANIFEST_NAME
    return local if local.is_file() else DEFAULT_MANIFEST


def _spec_from_table(i: int, t: dict[str, object], source: Path) -> ModelSpec:
    where = f"{source}: [[model]] #{i + 1}"
    required = ("name", "file", "sha256", "url", "licence", "stage", "backend")
    missing = [k for k in required if k not in t]
    if missing:
        raise ValueError(f"{where} ({t.get('name', '?')}): missing keys {missing}")
    unknown = set(t) - {f for f in ModelSpec.__dataclass_fields__}
    if unknown:
        raise ValueError(f"{where} ({t['name']}): unknown keys {sorted(unknown)}")
    for k, v in t.items():
        want = int if k == "size" else str
        if not isinstance(v, want) or isinstance(v, bool):
            raise ValueError(f"{where} ({t['name']}): {k} must be {want.__name__}, got {v!r}")
    spec = ModelSpec(**t)  # type: ignore[arg-type]
    if spec.stage not in STAGES:
        raise ValueError(f"{where} ({spec.name}): stage {spec.stage!r} not one of {STAGES}")
    if spec.sha256 and not _SHA_RE.match(spec.sha256):
        raise ValueError(f"{where} ({spec.name}): sha256 must be 64 lower-case hex digits or \"\"")
    if spec.size < 0:
        raise ValueError(f"{where} ({spec.name}): size must be >= 0")
    if Path(spec.file).name != spec.file:
        raise ValueError(f"{where} ({spec.name}): file must be a bare file name, got {spec.file!r}")
    return spec


def load_manifest(models_dir: str | Path | None = None) -> list[ModelSpec]:
    """All known models, from ``models_dir/manifest.toml`` if present, else ``models/manifest.toml``.

    Raises ``ValueError`` naming the entry for malformed entries and duplicate names/files,
    so a bad edit is caught when the app starts rather than at the first download.
    """
    path = manifest_path(models_dir)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    tables = data.get("model", [])
    if not isinstance(tables, list):
        raise ValueError(f"{path}: expected [[model]] tables")
    specs = [_spec_from_table(i, t, path) for i, t in enumerate(tables)]
    for attr in ("name", "file"):
        seen: set[str] = set()
        for s in specs:
            v = getattr(s, attr)
            if v in seen:
                raise ValueError(f"{path}: duplicate {attr} {v!r}")
            seen.add(v)
    return specs


def find_spec(name_or_file: str, models_dir: str | Path | None = None) -> ModelSpec | None:
    """The manifest entry whose ``name`` or ``file`` equals ``name_or_file`` (or its base name)."""
    key = Path(name_or_file).name
    for s in load_manifest(models_dir):
        if key in (s.name, s.file):
            return s
    return None


# --------------------------------------------------------------------------- hashing

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so repeated resolves are free."""
    p = Path(path)
    key = _stat_key(p)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def clear_hash_cache() -> None:
    """Forget cached digests (tests; or after replacing files with identical size and mtime)."""
    with _hash_lock:
        _hash_cache.clear()


# --------------------------------------------------------------------------- resolve / status


def _package_dir(package: str) -> Path | None:
    """``<package>/models`` of an installed package (face_recognition_models keeps dlib .dat files there)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


def _locate(spec: ModelSpec, models_dir: Path) -> Path | None:
    p = models_dir / spec.file
    if p.is_file():
        return p
    if spec.package:
        pkg = _package_dir(spec.package)
        if pkg is not None and (pkg / spec.file).is_file():
            return pkg / spec.file
    return None


def _check(spec: ModelSpec, path: Path) -> str | None:
    """None when ``path`` matches the manifest (or nothing is known), else why it does not."""
    if spec.size and path.stat().st_size != spec.size:
        return f"size {path.stat().st_size} bytes, expected {spec.size}"
    if spec.sha256:
        digest = sha256_file(path)
        if digest != spec.sha256:
            return f"sha256 {digest[:16]}... does not match the manifest ({spec.sha256[:16]}...)"
    return None


def resolve(name_or_file: str | Path, models_dir: str | Path | None = None, verify: bool = True) -> Path:
    """Path of a model's weight file, checked against the manifest.

    ``name_or_file`` is a manifest name (``"mobilefacenet"``), a file name
    (``"mobilefacenet.onnx"``) or a path. Files the manifest does not know are returned
    as they are (unverified) when they exist, so users can try their own exports.

    Raises:
        ModelFileMissing: the file is absent; the message names it and ``aas models fetch``.
        ModelFileCorrupt: size or sha256 differ from the manifest (only with ``verify``).
    """
    mdir = _as_dir(models_dir)
    raw = Path(name_or_file)
    explicit = raw.is_absolute() or raw.parent != Path(".")  # a path, not a bare name
    spec = find_spec(raw.name, mdir)
    if spec is None:
        candidate = raw if explicit else mdir / raw
        if candidate.is_file():
            log.debug("model %s is not in the manifest: using it unverified", candidate)
            return candidate
        raise ModelFileMissing(candidate, raw.stem)
    if explicit:  # a path to a known file: check that very file, never substitute another
        if not raw.is_file():
            raise ModelFileMissing(raw, spec.name)
        path: Path | None = raw
    else:
        path = _locate(spec, mdir)
    if path is None:
        raise ModelFileMissing(mdir / spec.file, spec.name)
    if verify:
        problem = _check(spec, path)
        if problem:
            raise ModelFileCorrupt(path, problem, spec.name)
        if not spec.sha256:
            log.info("model %s: no known sha256, using it unverified", path)
    return path


def status(models_dir: str | Path | None = None) -> list[ModelStatus]:
    """One :class:`ModelStatus` per manifest entry: present / missing / corrupt / unverified."""
    mdir = _as_dir(models_dir)
    out: list[ModelStatus] = []
    for s in load_manifest(mdir):
        path = _locate(s, mdir)
        if path is None:
            state: State = "missing"
            detail = f"run `{s.fetch_command}`" if s.url else s.notes
            path = mdir / s.file
        else:
            problem = _check(s, path)
            state = "corrupt" if problem else ("present" if s.sha256 else "unverified")
            detail = problem or ("" if s.sha256 else "no known sha256 to check against")
        out.append(ModelStatus(s, path, state, detail))
    return out


# --------------------------------------------------------------------------- fetch


def _zip_member(zf: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    """The archive entry for ``member``: exact path, else the unique entry with that base name."""
    names = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    if member in names:
        return names[member]
    base = [i for n, i in names.items() if Path(n).name == Path(member).name]
    if len(base) == 1:
        return base[0]
    raise ValueError(f"archive has no unique member {member!r} (has {sorted(names)[:10]})")


def _copy_hashing(src: IO[bytes], dst: IO[bytes]) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: src.read(_CHUNK), b""):
        h.update(block)
        dst.write(block)
    return h.hexdigest()


def _download(url: str, dst: IO[bytes], progress: bool, label: str, timeout: float) -> str:
    """Stream ``url`` into ``dst``; returns the sha256 of the bytes written."""
    import httpx

    h = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as r:
            r.raise_for_status()
            total = int(r.headers.get("Content-Length") or 0) or None
            for block in _with_progress(r.iter_bytes(_CHUNK), total, label, progress):
                h.update(block)
                dst.write(block)
    except httpx.HTTPError as exc:
        raise ConnectionError(f"download of {url} failed: {exc}") from exc
    return h.hexdigest()


def _with_progress(blocks: Iterator[bytes], total: int | None, label: str, show: bool) -> Iterator[bytes]:
    if not show:
        yield from blocks
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task(label, total=total)
        for block in blocks:
            bar.advance(task, len(block))
            yield block


def _install(tmp: Path, dest: Path, digest: str, spec: ModelSpec) -> Path:
    """Check ``tmp`` against the manifest, then move it into place atomically."""
    if spec.sha256 and digest != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelFileCorrupt(
            dest, f"downloaded sha256 {digest[:16]}... does not match the manifest ({spec.sha256[:16]}...)", spec.name
        )
    if spec.size and tmp.stat().st_size != spec.size:
        size = tmp.stat().st_size
        tmp.unlink(missing_ok=True)
        raise ModelFileCorrupt(dest, f"downloaded {size} bytes, expected {spec.size}", spec.name)
    if not spec.sha256:
        log.warning("%s: no known sha256 in the manifest; installed unverified (sha256 %s)", spec.file, digest)
    os.replace(tmp, dest)
    with _hash_lock:
        _hash_cache[_stat_key(dest)] = digest
    return dest


def _extract_member(zf: zipfile.ZipFile, spec: ModelSpec, models_dir: Path) -> Path:
    """Extract ``spec.member`` to a temp file while hashing it, then install it."""
    info = _zip_member(zf, spec.member)
    fd, part_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=models_dir)
    part = Path(part_name)
    try:
        with zf.open(info) as src, os.fdopen(fd, "wb") as out:
            digest = _copy_hashing(src, out)
        return _install(part, models_dir / spec.file, digest, spec)
    finally:
        part.unlink(missing_ok=True)  # gone already when installed


def fetch(
    name: str, models_dir: str | Path | None = None, progress: bool = True, *, force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download a model into ``models_dir``, check its sha256 and install it atomically.

    For ``.zip`` downloads (insightface packs) the manifest's ``member`` is extracted; other
    manifest entries inside the same archive that are missing are extracted too, so the
    280 MB buffalo_l pack is downloaded once. Files with no known hash are installed with a
    warning ("unverified"). Nothing is left behind when a check fails.

    Raises:
        ValueError: unknown name, or the model has no download URL (manual download).
        ConnectionError: the download failed.
        ModelFileCorrupt: the downloaded bytes do not match the manifest.
    """
    mdir = _as_dir(models_dir)
    specs = load_manifest(mdir)
    spec = next((s for s in specs if name in (s.name, s.file)), None)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(s.name for s in specs)}")
    dest = mdir / spec.file
    existing = _locate(spec, mdir)
    if existing is not None and not force and _check(spec, existing) is None:
        log.info("%s already present", existing)
        return existing
    if not spec.url:
        raise ValueError(f"{spec.name} has no download URL: {spec.notes or 'download it by hand'}")
    mdir.mkdir(parents=True, exist_ok=True)

    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=mdir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            digest = _download(spec.url, fh, progress, spec.file, timeout)
        if not spec.member:
            return _install(tmp, dest, digest, spec)
        # zip: extract the wanted member plus missing siblings from the same archive
        siblings = [s for s in specs if s.url == spec.url and s.member and s is not spec]
        wanted = [spec] + [s for s in siblings if force or _locate(s, mdir) is None]
        try:
            zf = zipfile.ZipFile(tmp)
        except zipfile.BadZipFile as exc:
            raise ModelFileCorrupt(dest, f"{spec.url} did not return a zip archive ({exc})", spec.name) from exc
        with zf:
            for s in wanted:
                try:
                    _extract_member(zf, s, mdir)
                except (ModelFileCorrupt, ValueError):
                    if s is spec:
                        raise
                    log.warning("%s from %s failed its check; not installed", s.file, spec.url, exc_info=True)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def remove_partial_downloads(models_dir: str | Path | None = None) -> int:
    """Delete ``.*.part`` leftovers of downloads killed mid-way; returns how many were removed."""
    parts = [p for p in _as_dir(models_dir).glob(".*.part") if p.is_file()]
    for p in parts:
        p.unlink()
    return len(parts)
