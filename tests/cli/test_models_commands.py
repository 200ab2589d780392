"""`aas models quantize --photos DIR` and `aas models list` through the real Typer app, with the real
fp32 weights and faces_dev photos: the int8 copies are made, listed as generated, and used by the
fast profile (`aas detect --json` names the int8 embedder and finds the faces); a calibration
folder with too few faces fails with a clear message and installs nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
from tests.cli.test_student_commands import aas  # the in-process Typer runner

from aas_core.tools.synthetic import list_identities, make_scene, scrfd_locator, seat_grid


def _models(models_dir: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("scrfd_2.5g.onnx", "mobilefacenet.onnx"):
        shutil.copyfile(models_dir / name, dst / name)
    return dst


def _photo_folder(data_dir: Path, dst: Path, people: int, per_person: int) -> Path:
    ids = list_identities(data_dir / "faces_dev")
    for name in sorted(ids)[:people]:
        (dst / name).mkdir(parents=True)
        for p in ids[name][:per_person]:
            shutil.copy(p, dst / name / p.name)
    return dst


def test_quantize_then_list_and_detect_with_the_int8_copies(sqlite_url: str, tmp_path: Path, models_dir: Path,
                                                             data_dir: Path) -> None:
    models = _models(models_dir, tmp_path / "models")
    photos = _photo_folder(data_dir, tmp_path / "photos", 20, 2)
    # --min-speedup 0: installed whatever this machine's int8 speed (x86 CPUs without VNNI gain nothing)
    r = aas(sqlite_url, tmp_path, models, "models", "quantize", "--photos", str(photos), "--min-speedup", "0")
    assert r.exit_code == 0, r.output
    assert "installed mobilefacenet_int8.onnx" in r.output and "installed scrfd_2.5g_int8.onnx" in r.output
    assert "cosine median" in r.output and "on this machine" in r.output

    r = aas(sqlite_url, tmp_path, models, "models", "list")
    lines = [ln for ln in r.output.splitlines() if "generated" in ln]
    assert len(lines) == 2 and all("_int8.onnx" in ln and "aas models quantize" in ln for ln in lines)

    # a classroom of people the calibration never saw, through `aas detect` with the fast profile
    ids = list_identities(data_dir / "faces_dev")
    people = sorted(ids)[25:49]
    seats = seat_grid(24, size=(1080, 1920), size_range=(40, 90))
    scene = make_scene([(p, ids[p][-1]) for p in people], scrfd_locator(models_dir), seats=seats, seed=3)
    img = tmp_path / "room.jpg"
    cv2.imwrite(str(img), scene.image)
    r = aas(sqlite_url, tmp_path, models, "detect", str(img), "--profile", "fast", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"] == "arcface:mobilefacenet_int8"
    assert len(out["images"][0]["faces"]) >= len(scene.faces) - 1


def test_quantize_with_too_few_faces_fails_clearly_and_installs_nothing(sqlite_url: str, tmp_path: Path,
                                                                         models_dir: Path, data_dir: Path) -> None:
    models = _models(models_dir, tmp_path / "models")
    photos = _photo_folder(data_dir, tmp_path / "photos", 3, 2)
    r = aas(sqlite_url, tmp_path, models, "models", "quantize", "--photos", str(photos))
    assert r.exit_code == 1
    assert "gave 6 faces; at least 20 are needed" in r.output
    r = aas(sqlite_url, tmp_path, models, "models", "quantize", "--photos", str(tmp_path / "nothing-here"))
    assert r.exit_code == 1 and "is not a folder of face photos" in r.output
    assert sorted(p.name for p in models.iterdir()) == ["mobilefacenet.onnx", "scrfd_2.5g.onnx"]
