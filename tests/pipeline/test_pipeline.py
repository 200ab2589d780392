"""The whole pipeline on real weights and real faces: synthetic classrooms and real group photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aas_core.config import get_settings
from aas_core.media.decode import read_image
from aas_core.services.enrollment import find_enrollment_face
from aas_core.tools.synthetic import SyntheticSession, score_scene
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing
from aas_core.media.draw import draw_result
from aas_core.vision.matching import Gallery
from aas_core.vision.pipeline import Pipeline
from aas_core.vision.profiles import PipelineConfig, resolve_profile


def _gallery(pipe: Pipeline, session: SyntheticSession) -> Gallery:
    ids, embs = [], []
    for sid, paths in session.enroll.items():
        for p in paths:
            img = read_image(p)
            face, _, _ = find_enrollment_face(img, pipe, get_settings())
            if face is not None:
                ids.append(sid)
                embs.append(pipe.embedder.embed(img, face)[0])
    return Gallery(ids, np.stack(embs), pipe.embedder.name)


@pytest.fixture(scope="module")
def fast(models_dir: Path) -> Pipeline:
    cfg, notes = resolve_profile("fast", models_dir)
    assert cfg.profile == "fast" and cfg.flow == "schedule"
    return Pipeline(cfg, models_dir)


def test_fast_profile_names_95_percent_of_enrolled_faces_and_no_stranger(fast: Pipeline, classroom: SyntheticSession) -> None:
    gallery = _gallery(fast, classroom)
    enrolled = set(classroom.enroll)
    totals = np.zeros(4, int)
    for scene in classroom.snapshots:
        result = fast.run(scene.image, gallery)
        sc = score_scene(scene, result.faces.xyxy, result.match.assigned, enrolled, min_size=36)
        on_roster = sum(f.identity in enrolled for f in scene.faces if f.size >= 36)
        totals += [on_roster, sc.named_correctly, sc.named_wrongly, sc.strangers_named]
        assert sc.found == sc.faces, "every face >= 36 px must be detected"
        # one-to-one: no student named twice in one snapshot
        named = [a for a in result.match.assigned if a]
        assert len(named) == len(set(named))
    on_roster, named, wrong, strangers_named = totals
    assert named / on_roster >= 0.95, totals
    assert strangers_named == 0, totals
    assert wrong <= 1, totals


def test_stage_artifacts_are_complete_and_drawable(fast: Pipeline, classroom: SyntheticSession) -> None:
    img = classroom.snapshots[0].image
    r = fast.run(img)
    n = len(r.faces)
    assert n > 15 and r.match is None  # no gallery: faces found, nobody named
    assert len(r.crops.crops) == n == len(r.crops.enhanced) == len(r.embeddings)
    assert set(r.faces.source) <= {"tile", "frame"} and "frame" in set(r.faces.source)
    np.testing.assert_allclose(np.linalg.norm(r.embeddings, axis=1), 1.0, atol=1e-4)
    assert {"persons", "faces", "enhance", "embed", "match", "total"} <= set(r.timings_ms)
    assert draw_result(img, r).shape == img.shape
    rows = r.face_rows()
    assert len(rows) == n and rows[0]["size_px"] > 0


def test_person_flow_on_real_group_photo(models_dir: Path, data_dir: Path) -> None:
    cfg, _ = resolve_profile("accurate", models_dir)
    pipe = Pipeline(cfg, models_dir)
    img = read_image(data_dir / "group" / "kids_group8.jpg")
    r = pipe.run(img)
    assert len(r.persons) >= 5
    assert len(r.faces) >= 6 and set(r.faces.source) == {"person"}
    # faces lie inside person boxes
    cx = (r.faces.xyxy[:, 0] + r.faces.xyxy[:, 2]) / 2
    inside = [(r.persons.xyxy[:, 0] <= x).any() for x in cx]
    assert all(inside)


def test_obama_is_recognised_in_a_real_press_photo(fast: Pipeline, faces_dev: Path, data_dir: Path) -> None:
    """Enroll 5 faces_dev identities including Obama; find him (and only him) in the group photo."""
    ids, embs = [], []
    for ident in ["glint_Barack_Obama", "glint_Tom_Hanks", "lfw_Tony_Blair", "lfw_Colin_Powell", "glint_Will_Smith"]:
        for p in sorted((faces_dev / ident).glob("*.jpg"))[:5]:
            img = read_image(p)
            face, _, _ = find_enrollment_face(img, fast, get_settings())
            if face is not None:
                ids.append(ident)
                embs.append(fast.embedder.embed(img, face)[0])
    gallery = Gallery(ids, np.stack(embs), fast.embedder.name)
    r = fast.run(read_image(data_dir / "group" / "obama_biden_two_people.jpg"), gallery)
    assert len(r.faces) == 2
    assert sorted(a or "" for a in r.match.assigned) == ["", "glint_Barack_Obama"]  # Biden is a stranger


def test_offline_profile_works_with_pypi_models_only(tmp_path: Path, classroom: SyntheticSession) -> None:
    cfg, notes = resolve_profile("auto", tmp_path)  # empty models dir
    assert cfg.profile == "offline" and any("offline" in n for n in notes)
    pipe = Pipeline(cfg, tmp_path)
    r = pipe.run(cv2.resize(classroom.snapshots[1].image, None, fx=1.0, fy=1.0))
    assert len(r.faces) >= 15 and r.embeddings.shape[1] == 128


def test_missing_and_corrupt_model_files_give_clear_errors(tmp_path: Path, models_dir: Path) -> None:
    cfg = PipelineConfig(flow="frame", face_model="scrfd_2.5g.onnx", embed_model="mobilefacenet.onnx")
    with pytest.raises(ModelFileMissing, match=r"scrfd_2.5g.onnx.*aas models fetch"):
        Pipeline(cfg, tmp_path).face_detector
    bad = tmp_path / "mobilefacenet.onnx"
    bad.write_bytes((models_dir / "mobilefacenet.onnx").read_bytes()[:100_000])
    with pytest.raises(ModelFileCorrupt, match="mobilefacenet.onnx"):
        Pipeline(cfg, tmp_path).embedder


def test_bad_images_are_refused_by_every_stage(fast: Pipeline) -> None:
    with pytest.raises(ValueError, match="BGR"):
        fast.run(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        fast.run(np.zeros((10, 10, 3), np.float32))


def test_fast_profile_prefers_installed_int8_models(tmp_path: Path) -> None:
    """`benchmarks/quantization.py --install DIR` writes *_int8.onnx; the fast profile takes them, accurate does not."""
    for f in ("scrfd_2.5g.onnx", "mobilefacenet.onnx", "scrfd_2.5g_int8.onnx", "mobilefacenet_int8.onnx"):
        (tmp_path / f).write_bytes(b"")
    fast, _ = resolve_profile("fast", tmp_path)
    assert (fast.face_model, fast.embed_model, fast.flow) == ("scrfd_2.5g_int8.onnx", "mobilefacenet_int8.onnx", "schedule")
    accurate, _ = resolve_profile("accurate", tmp_path)
    assert (accurate.face_model, accurate.embed_model) == ("scrfd_2.5g.onnx", "mobilefacenet.onnx")


def test_old_tiled_flow_stays_available(fast: Pipeline, classroom: SyntheticSession) -> None:
    tiled = Pipeline(fast.config.with_(flow="tiled"), fast.models_dir)
    scene = classroom.snapshots[0]
    for pipe in (fast, tiled):
        r = pipe.run(scene.image)
        assert score_scene(scene, r.faces.xyxy, [], set(), min_size=36).recall == 1.0
    assert "tile" in set(r.faces.source)
