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
import tempfile
import threading
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aas_core.config import PROJECT_ROOT
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
#: The manifest shipped with the code; a ``manifest.toml`` inside the models dir overrides it.
DEFAULT_MANIFEST = PROJECT_ROOT / "models" / MANIFEST_NAME

Stage = Literal["person", "face", "enhance", "embed"]
STAGES: tuple[str, ...] = ("person", "face", "enhance", "embed")
State = Literal["present", "missing", "corrupt", "unverified"]

_Text = Annotated[str, Field(max_length=500)]
_Name = Annotated[str, Field(min_length=1, max_length=200)]


class ModelSpec(BaseModel):
    """One manifest entry (see the header of ``models/manifest.toml`` for the fields).

    Validated by pydantic: unknown keys, wrong types (strict: no "12" for a size, no 1 for
    a string), bad hashes and stages are refused with the field named.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: _Name
    file: _Name
    sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]  # "" = unknown: reported "unverified"
    url: Annotated[str, Field(max_length=2000)]  # "" = manual download only
    licence: _Text
    stage: Stage
    backend: Annotated[str, Field(max_length=100)]
    member: Annotated[str, Field(max_length=500)] = ""  # path inside a .zip download
    size: Annotated[int, Field(ge=0, le=1 << 40)] = 0  # 0 = unknown
    package: Annotated[str, Field(max_length=200)] = ""  # python package whose models/ folder may hold the file
    notes: Annotated[str, Field(max_length=2000)] = ""

    @field_validator("file")
    @classmethod
    def _bare_file_name(cls, v: str) -> str:
        if Path(v).name != v:
            raise ValueError(f"file must be a bare file name, got {v!r}")
        return v

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

    # the spec's fields most callers want, without going through ``.spec``
    name = property(lambda self: self.spec.name)
    file = property(lambda self: self.spec.file)
    stage = property(lambda self: self.spec.stage)
    backend = property(lambda self: self.spec.backend)
    licence = property(lambda self: self.spec.licence)


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


def _describe(err: ValidationError) -> str:
    """pydantic's errors in the manifest's terms: missing / unknown keys, else field: why."""
    errors = err.errors()
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    parts = [f"missing keys {missing}"] if missing else []
    parts += [f"unknown keys {unknown}"] if unknown else []
    parts += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"] for e in errors
              if e["type"] not in ("missing", "extra_forbidden")]
    return "; ".join(parts)


def _spec_from_table(i: int, t: object, source: Path) -> ModelSpec:
    name = t.get("name", "?") if isinstance(t, dict) else "?"
    try:
        return ModelSpec.model_validate(t)
    except ValidationError as exc:
        raise ValueError(f"{source}: [[model]] #{i + 1} ({name}): {_describe(exc)}") from None


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
    """sha256 of a file, cached per (path, size, mtime) so repeated resolves are free.

    Hand-written cache: pooch hashes only what it downloads, and no library here remembers
    a digest for an unchanged file (backends resolve their weights on every construction).
    """
    p = Path(path)
    key = _stat_key(p)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    with p.open("rb") as fh:
        digest = hashlib.file_digest(fh, hashlib.sha256).hexdigest()
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
#
# Downloading, streaming to a temporary file, the sha256 check, the progress bar and unzipping
# are pooch's. Kept here: which manifest entries share an archive, finding a member by its
# base name, the size check, installing into the models dir and the errors our callers catch.


def _zip_member(zf: zipfile.ZipFile, member: str) -> str:
    """The archive path of ``member``: exact path, else the unique entry with that base name.

    Hand-written because pooch's ``Unzip(members=...)`` wants exact archive paths, and the
    manifest names members by file name (``det_10g.onnx``, wherever the pack puts it).
    """
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    if member in names:
        return member
    base = [n for n in names if Path(n).name == Path(member).name]
    if len(base) == 1:
        return base[0]
    raise ValueError(f"archive has no unique member {member!r} (has {sorted(names)[:10]})")


def _download(spec: ModelSpec, staging: Path, progress: bool, timeout: float, known_hash: str | None) -> Path:
    """``spec.url`` into ``staging`` via pooch (hash-checked when ``known_hash`` is given)."""
    import pooch
    import requests

    # pooch logs every download and, without a known hash, tells the user to pass one to
    # pooch.retrieve: advice for pooch users, not ours (we log what was installed ourselves).
    pooch.get_logger().setLevel(logging.WARNING)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)  # tqdm bar; requests follows redirects
    try:
        return Path(pooch.retrieve(
            spec.url,
            known_hash=f"sha256:{known_hash}" if known_hash else None,
            fname="download" if spec.member else spec.file,
            path=staging,
            downloader=downloader,
        ))
    except requests.RequestException as exc:
        raise ConnectionError(f"download of {spec.url} failed: {exc}") from exc
    except ValueError as exc:  # pooch's hash mismatch; the download is already deleted
        raise ModelFileCorrupt(staging.parent / spec.file, f"downloaded file does not match the manifest ({exc})",
                               spec.name) from None


def _install(path: Path, dest: Path, spec: ModelSpec) -> Path:
    """Size-check ``path`` (its sha256 was checked already), then move it into place atomically."""
    size = path.stat().st_size
    if spec.size and size != spec.size:
        raise ModelFileCorrupt(dest, f"downloaded {size} bytes, expected {spec.size}", spec.name)
    os.replace(path, dest)
    if spec.sha256:
        with _hash_lock:
            _hash_cache[_stat_key(dest)] = spec.sha256
    else:
        log.warning("%s: no known sha256 in the manifest; installed unverified (sha256 %s)", spec.file,
                    sha256_file(dest))
    return dest


def _install_from_zip(archive: Path, wanted: list[ModelSpec], spec: ModelSpec, models_dir: Path) -> None:
    """Extract the members of ``wanted`` from ``archive``, check and install each.

    A sibling (another entry of the same archive) that fails is logged and skipped; only
    ``spec``, the one asked for, raises.
    """
    import pooch

    try:
        with zipfile.ZipFile(archive) as zf:
            members: dict[str, str] = {}
            for s in wanted:
                try:
                    members[s.name] = _zip_member(zf, s.member)
                except ValueError:
                    if s is spec:
                        raise
                    log.warning("%s not found in %s; not installed", s.member, spec.url, exc_info=True)
    except zipfile.BadZipFile as exc:
        raise ModelFileCorrupt(models_dir / spec.file, f"{spec.url} did not return a zip archive ({exc})",
                               spec.name) from exc
    pooch.Unzip(members=list(members.values()), extract_dir="unzipped")(str(archive), "download", None)
    for s in wanted:
        if s.name not in members:
            continue
        extracted = archive.parent / "unzipped" / members[s.name]
        try:
            problem = _check(s, extracted)  # pooch checks downloads, not what an archive holds
            if problem:
                raise ModelFileCorrupt(models_dir / s.file, f"{members[s.name]} in {spec.url}: {problem}", s.name)
            _install(extracted, models_dir / s.file, s)
        except ModelFileCorrupt:
            if s is spec:
                raise
            log.warning("%s from %s failed its check; not installed", s.file, spec.url, exc_info=True)


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
    # A fresh staging folder inside models_dir: pooch never finds an old copy to keep, the
    # final os.replace stays on one file system (atomic), and a failure leaves nothing behind.
    with tempfile.TemporaryDirectory(prefix=f".{spec.file}.", suffix=".part", dir=mdir) as tmp:
        staging = Path(tmp)
        if not spec.member:
            return _install(_download(spec, staging, progress, timeout, spec.sha256 or None), dest, spec)
        # zip: the wanted member plus missing siblings from the same archive (the archive's
        # own hash is not in the manifest, only its members')
        archive = _download(spec, staging, progress, timeout, None)
        siblings = [s for s in specs if s.url == spec.url and s.member and s is not spec]
        wanted = [spec] + [s for s in siblings if force or _locate(s, mdir) is None]
        _install_from_zip(archive, wanted, spec, mdir)
        return dest
