"""`aas detect IMAGE... [--profile] [--course] [--json]` through the real Typer app in-process, with the
real models: the JSON contract, faces where the scene's truth puts them, naming against a course's
enrolled students with the course's threshold, and a corrupt image among good ones."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tests.cli.test_student_commands import aas  # the in-process Typer runner

from aas_core.tools.synthetic import Scene, list_identities, make_scene, scrfd_locator, seat_grid
from aas_core.vision.nms import box_iou

POWELL, BLAIR, STRANGER = "lfw_Colin_Powell", "lfw_Tony_Blair", "lfw_George_W_Bush"
OTHERS = ["lfw_Vladimir_Putin", "glint_Tom_Hanks", "lfw_Ariel_Sharon"]
STAGES = {"persons", "faces", "enhance", "embed", "match", "total"}




@pytest.fixture(scope="module")
def scene_file(models_dir: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    """A 1920x1080 classroom with 6 faces (45-95 px) from probe photos (not the enrollment ones)."""
    ids = list_identities(data_dir / "faces_dev")
    people = [POWELL, BLAIR, STRANGER, *OTHERS]
    seats = seat_grid(len(people), size_range=(45, 95), rng=np.random.default_rng(5))
    sc = make_scene([(n, ids[n][6]) for n in people], scrfd_locator(models_dir), seed=5, seats=seats)
    assert len(sc.faces) == len(people)
    p = tmp_path_factory.mktemp("detect") / "classroom.jpg"
    cv2.imwrite(str(p), sc.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return p, sc


def _face_of(entry: dict, sc: Scene, identity: str) -> dict:
    """The detected face over ``identity``'s truth box (IoU >= 0.5)."""
    [truth] = [f.box for f in sc.faces if f.identity == identity]
    boxes = np.array([f["box"] for f in entry["faces"]], np.float32).reshape(-1, 4)
    iou = box_iou(np.array([truth], np.float32), boxes)[0]
    assert len(iou) and iou.max() >= 0.5, f"no face found over {identity}"
    return entry["faces"][int(iou.argmax())]


def test_detect_json_contract_truth_boxes_and_a_corrupt_image(sqlite_url: str, tmp_path: Path, models_dir: Path,
                                                              scene_file: tuple[Path, Scene]) -> None:
    path, sc = scene_file
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    r = aas(sqlite_url, tmp_path, models_dir, "detect", str(path), str(bad), str(path), "--profile", "fast", "--json")
    assert r.exit_code != 0  # the corrupt image fails the command ...
    out = json.loads(r.stdout)  # ... after every image was processed and the JSON printed
    assert set(out) >= {"images", "profile", "model"}
    assert out["profile"] == "fast" and out["model"] == "arcface:mobilefacenet"
    assert out["course"] is None and out["threshold"] is None
    first, broken, again = out["images"]
    assert broken["image"] == str(bad) and set(broken) == {"image", "error"}
    assert "corrupt.jpg" in broken["error"]
    assert first["image"] == str(path) and again["image"] == str(path)
    assert (first["width"], first["height"]) == (1920, 1080)
    assert set(first["timings_ms"]) == STAGES
    t = first["timings_ms"]
    assert all(isinstance(v, float) and v >= 0 for v in t.values())
    assert t["total"] == pytest.approx(sum(v for k, v in t.items() if k != "total"), abs=0.1)
    for f in first["faces"]:
        assert set(f) == {"box", "score", "student", "similarity"}
        assert len(f["box"]) == 4 and all(isinstance(v, float) for v in f["box"])
        x1, y1, x2, y2 = f["box"]
        assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1080
        assert isinstance(f["score"], float) and 0.5 <= f["score"] <= 1
        assert f["student"] is None and f["similarity"] is None  # no --course: nothing matched
    # every pasted face found where the truth puts it (one detection each), at most one spurious face
    over = [id(_face_of(first, sc, face.identity)) for face in sc.faces]
    assert len(set(over)) == len(sc.faces)
    assert len(first["faces"]) <= len(sc.faces) + 1, first["faces"]
    assert again["faces"] == first["faces"]  # models loaded once, same answer for the same image

    text = aas(sqlite_url, tmp_path, models_dir, "detect", str(path), "--profile", "fast")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"{path}: 1920x1080, {len(first['faces'])} faces, ")
    assert sum(x.startswith("  face ") for x in lines) == len(first["faces"])
    missing = aas(sqlite_url, tmp_path, models_dir, "detect", str(tmp_path / "nope.jpg"))
    assert missing.exit_code != 0 and "nope.jpg: error: " in missing.stderr


def test_detect_names_enrolled_students_of_the_course(sqlite_url: str, tmp_path: Path, models_dir: Path,
                                                      data_dir: Path, scene_file: tuple[Path, Scene]) -> None:
    path, sc = scene_file
    run = lambda *a: aas(sqlite_url, tmp_path, models_dir, *a)
    assert run("init").exit_code == 0
    assert run("course", "add", "CS1", "--name", "Intro").exit_code == 0
    assert run("course", "add", "CS2", "--name", "Other course").exit_code == 0
    assert run("student", "add", "P1", "--name", "Colin", "--course", "CS1").exit_code == 0
    assert run("student", "add", "P2", "--name", "Tony", "--course", "CS1").exit_code == 0
    faces = data_dir / "faces_dev"
    for sid, who in (("P1", POWELL), ("P2", BLAIR)):
        r = run("enroll", sid, *(str(faces / who / f"{k}.jpg") for k in (1, 2, 3)))
        assert r.exit_code == 0, r.output

    out = json.loads(run("detect", str(path), "--course", "CS1", "--profile", "fast", "--json").stdout)
    assert out["course"] == "CS1" and out["threshold"] == pytest.approx(0.42)  # the course's (default) threshold
    [entry] = out["images"]
    p1, p2 = _face_of(entry, sc, POWELL), _face_of(entry, sc, BLAIR)
    assert p1["student"] == "P1" and p1["similarity"] >= 0.42
    assert p2["student"] == "P2" and p2["similarity"] >= 0.42
    stranger = _face_of(entry, sc, STRANGER)
    assert stranger["student"] is None and isinstance(stranger["similarity"], float)
    assert stranger["similarity"] < 0.42
    assert sorted(f["student"] for f in entry["faces"] if f["student"]) == ["P1", "P2"]
    assert entry["timings_ms"]["match"] >= 0

    text = run("detect", str(path), "--course", "CS1", "--profile", "fast")
    assert text.exit_code == 0 and any(x.endswith(f"P1 ({p1['similarity']:.2f})") for x in text.stdout.splitlines())

    # the course's own threshold is the one used
    assert run("course", "config", "CS1", "--set", "recognition.threshold=0.95").exit_code == 0
    strict = json.loads(run("detect", str(path), "--course", "CS1", "--json").stdout)
    assert strict["threshold"] == pytest.approx(0.95)
    assert all(f["student"] is None for f in strict["images"][0]["faces"])

    # a course nobody enrolled in names nobody; an unknown course is an error
    empty = run("detect", str(path), "--course", "CS2", "--json")
    assert empty.exit_code == 0 and all(f["student"] is None for f in json.loads(empty.stdout)["images"][0]["faces"])
    assert "no accepted face samples" in empty.stderr
    unknown = run("detect", str(path), "--course", "NOPE")
    assert unknown.exit_code != 0 and "NOPE" in unknown.stderr
