"""Model registry: manifest parsing, resolve errors, hash checks, and fetch over real loopback HTTP."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from aas_core.vision import weights as registry
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing

SMALL = "FSRCNN_x2"  # 39 kB: cheap to copy and corrupt


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_shipped_manifest_is_valid() -> None:
    specs = registry.load_manifest(Path("/nonexistent"))  # no local manifest -> the repo's
    names = {s.name for s in specs}
    assert {"mobilefacenet", "w600k_r50", "det_10g", "yolov8x", "RealESRGAN_x4plus", "RRDB_ESRGAN_x4"} <= names
    for s in specs:
        assert s.stage in registry.STAGES
        assert s.licence, s.name
    zipped = {s.name: s.member for s in specs if s.member}
    assert zipped == {"det_10g": "det_10g.onnx", "w600k_r50": "w600k_r50.onnx", "w600k_mbf": "w600k_mbf.onnx"}


def test_real_files_verify(models_dir: Path) -> None:
    states = {s.name: s for s in registry.status(models_dir)}
    present = [s for s in states.values() if s.state != "missing"]
    assert len(present) >= 18  # everything in the shared models dir + dlib's package files
    bad = {s.name: s.detail for s in present if s.state != "present"}
    assert not bad
    assert states["mobilefacenet"].state == "present"
    assert states["dlib_face_recognition_resnet_model_v1"].path.is_file()  # found in its pip package
    assert registry.resolve("mobilefacenet", models_dir) == models_dir / "mobilefacenet.onnx"
    assert registry.resolve("mobilefacenet.onnx", models_dir) == models_dir / "mobilefacenet.onnx"


def test_missing_file_names_file_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFileMissing) as err:
        registry.resolve("w600k_r50", tmp_path)
    msg = str(err.value)
    assert "w600k_r50.onnx" in msg and "aas models fetch w600k_r50" in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(ModelFileMissing, match="elsewhere/mobilefacenet.onnx"):  # explicit path: no substitute
        registry.resolve(tmp_path / "elsewhere" / "mobilefacenet.onnx", tmp_path)
    status = {s.name: s for s in registry.status(tmp_path)}
    assert status["w600k_r50"].state == "missing"
    assert "aas models fetch w600k_r50" in status["w600k_r50"].detail


def test_corrupt_file_detected(models_dir: Path, tmp_path: Path) -> None:
    src = models_dir / f"{SMALL}.pb"
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    assert registry.resolve(SMALL, tmp_path) == dst  # an intact copy verifies (and is cached)
    data = bytearray(dst.read_bytes())
    data[1000:1008] = bytes(b ^ 0xFF for b in data[1000:1008])  # same size, different bytes
    dst.write_bytes(bytes(data))
    os.utime(dst, ns=(dst.stat().st_atime_ns, dst.stat().st_mtime_ns + 1_000_000))  # new mtime -> rehash
    with pytest.raises(ModelFileCorrupt, match="sha256") as err:
        registry.resolve(SMALL, tmp_path)
    assert "aas models fetch FSRCNN_x2" in str(err.value) and isinstance(err.value, ValueError)
    assert {s.name: s.state for s in registry.status(tmp_path)}[SMALL] == "corrupt"
    assert registry.resolve(SMALL, tmp_path, verify=False) == dst
    dst.write_bytes(bytes(data[:-10]))  # truncated: caught by size, without hashing
    with pytest.raises(ModelFileCorrupt, match="size"):
        registry.resolve(SMALL, tmp_path)


def test_hash_is_cached_per_path_size_mtime(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.resolve("mobilefacenet", models_dir)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(registry.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    for _ in range(3):
        registry.resolve("mobilefacenet", models_dir)
    assert not calls


def _write_manifest(models: Path, entries: list[dict[str, object]]) -> None:
    lines = []
    for e in entries:
        lines.append("[[model]]")
        lines += [f"{k} = {v!r}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in e.items()]
        lines.append("")
    models.mkdir(parents=True, exist_ok=True)
    (models / "manifest.toml").write_text("\n".join(lines))


def _entry(name: str, file: str, sha: str, url: str, **extra: object) -> dict[str, object]:
    return {"name": name, "file": file, "sha256": sha, "url": url, "licence": "test", "stage": "enhance",
            "backend": "sr-opencv", **extra}


def test_local_manifest_overrides_and_unverified(tmp_path: Path, models_dir: Path) -> None:
    shutil.copyfile(models_dir / f"{SMALL}.pb", tmp_path / "mine.pb")
    _write_manifest(tmp_path, [_entry("mine", "mine.pb", "", "")])
    specs = registry.load_manifest(tmp_path)
    assert [s.name for s in specs] == ["mine"]
    assert registry.status(tmp_path)[0].state == "unverified"
    assert registry.resolve("mine", tmp_path) == tmp_path / "mine.pb"


@pytest.mark.parametrize(
    "entry, message",
    [
        (_entry("x", "x.pb", "abc", ""), "sha256"),
        (_entry("x", "x.pb", "", "", stage="detect"), "stage"),
        (_entry("x", "sub/x.pb", "", ""), "bare file name"),
        ({"name": "x", "file": "x.pb"}, "missing keys"),
    ],
)
def test_malformed_manifest_raises(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    _write_manifest(tmp_path, [entry])
    with pytest.raises(ValueError, match=message):
        registry.load_manifest(tmp_path)


# --------------------------------------------------------------------------- fetch over loopback HTTP


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_checks_hash_and_installs_atomically(http_root, tmp_path: Path, models_dir: Path) -> None:
    www, base = http_root
    src = models_dir / f"{SMALL}.pb"
    shutil.copyfile(src, www / "model.pb")
    models = tmp_path / "models"
    _write_manifest(models, [
        _entry("good", "good.pb", _sha(src), f"{base}/model.pb", size=src.stat().st_size),
        _entry("bad", "bad.pb", "0" * 64, f"{base}/model.pb"),
        _entry("gone", "gone.pb", "", f"{base}/nothing-here.pb"),
        _entry("manual", "manual.pb", "", ""),
    ])
    path = registry.fetch("good", models, progress=False)
    assert path == models / "good.pb" and _sha(path) == _sha(src)
    assert registry.resolve("good", models) == path
    with pytest.raises(ModelFileCorrupt, match="does not match"):
        registry.fetch("bad", models, progress=False)
    with pytest.raises(ConnectionError, match="404"):
        registry.fetch("gone", models, progress=False)
    with pytest.raises(ValueError, match="no download URL"):
        registry.fetch("manual", models, progress=False)
    with pytest.raises(ValueError, match="unknown model"):
        registry.fetch("nope", models, progress=False)
    assert sorted(p.name for p in models.iterdir()) == ["good.pb", "manifest.toml"]  # no partial files


def test_fetch_extracts_zip_members_once(http_root, tmp_path: Path, models_dir: Path) -> None:
    www, base = http_root
    a, b = models_dir / "FSRCNN_x2.pb", models_dir / "ESPCN_x2.pb"
    with zipfile.ZipFile(www / "pack.zip", "w") as zf:
        zf.write(a, "pack/a.pb")
        zf.write(b, "b.pb")
    models = tmp_path / "models"
    _write_manifest(models, [
        _entry("a", "a.pb", _sha(a), f"{base}/pack.zip", member="a.pb"),  # found by base name
        _entry("b", "b.pb", _sha(b), f"{base}/pack.zip", member="b.pb"),
        _entry("c", "c.pb", "", f"{base}/a.pb", member="c.pb"),  # URL is not a zip
    ])
    shutil.copyfile(a, www / "a.pb")
    with pytest.raises(ModelFileCorrupt, match="not return a zip"):
        registry.fetch("c", models, progress=False)
    assert sorted(p.name for p in models.iterdir()) == ["manifest.toml"]
    registry.fetch("a", models, progress=False)
    assert _sha(models / "a.pb") == _sha(a)
    assert _sha(models / "b.pb") == _sha(b)  # sibling from the same archive, no second download
    assert {s.name: s.state for s in registry.status(models)} == {"a": "present", "b": "present", "c": "missing"}
