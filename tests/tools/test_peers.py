"""The InsightFace FaceAnalysis-style peer loop of ``aas bench --peers`` and the bench's scene scorer
(real weights, real photos; no timing is asserted: speed is what the bench measures)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aas_core.tools.bench import count_found, peer_text, run_peer_bench
from aas_core.tools.peers import FaceAnalysisLoop, peer_weights
from aas_core.tools.synthetic import list_identities, make_scene, scrfd_locator, seat_grid
from aas_core.vision.embed.arcface_onnx import ArcFaceOnnxEmbedder
from aas_core.vision.profiles import resolve_profile
from aas_core.vision.types import Detections

IDENTITIES = ["lfw_Colin_Powell", "lfw_Tony_Blair", "lfw_George_W_Bush", "lfw_Vladimir_Putin",
              "glint_Tom_Hanks", "orl_s01", "yale_subject01", "lfw_Ariel_Sharon"]


@pytest.fixture(scope="module")
def scene(models_dir: Path, data_dir: Path):  # type: ignore[no-untyped-def]
    ids = list_identities(data_dir / "faces_dev")
    faces = [(n, ids[n][5]) for n in IDENTITIES]
    seats = seat_grid(len(faces), size_range=(50, 95), rng=np.random.default_rng(3))
    sc = make_scene(faces, scrfd_locator(models_dir), seed=3, seats=seats)
    assert len(sc.faces) == len(IDENTITIES)
    return sc


def test_peer_loop_finds_the_scene_faces_with_the_fast_profile_embeddings(models_dir: Path, scene) -> None:  # type: ignore[no-untyped-def]
    truth = np.array([f.box for f in scene.faces], np.float32)
    loop = FaceAnalysisLoop(models_dir, 1280)
    r = loop.run(scene.image)
    assert loop.name == "insightface det1280"
    found, extra = count_found(truth, r.boxes)
    assert found >= len(truth) - 1 and extra <= 1, (found, extra)
    n = len(r)
    assert r.boxes.shape == (n, 4) and r.scores.shape == (n,) and r.landmarks.shape == (n, 5, 2)
    assert r.embeddings.shape == (n, 128) and r.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(r.embeddings, axis=1), 1.0, atol=1e-4)
    assert set(r.timings_ms) == {"detect", "embed", "total"}
    # Same weights, same alignment as AAS's embedder: the same vectors (a fair comparison).
    ours = ArcFaceOnnxEmbedder("mobilefacenet.onnx", models_dir).embed(
        scene.image, Detections(r.boxes, r.scores, r.landmarks, np.array(["scrfd"] * n)))
    np.testing.assert_allclose(np.sum(ours * r.embeddings, axis=1), 1.0, atol=1e-3)


def test_peer_loop_on_a_real_group_photo(models_dir: Path, data_dir: Path) -> None:
    img = cv2.imread(str(data_dir / "group" / "kids_group8.jpg"))
    assert img is not None
    r = FaceAnalysisLoop(models_dir, 640).run(img)
    assert 6 <= len(r) <= 10, len(r)  # eight children
    assert r.embeddings.shape == (len(r), 128)
    # different children: no two faces are the same person
    sims = r.embeddings @ r.embeddings.T
    assert (sims[~np.eye(len(r), dtype=bool)] < 0.9).all()


def test_count_found_is_one_to_one_at_the_iou_threshold() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], np.float32)
    dets = np.array([
        [0, 0, 10, 10],      # truth 0 exactly
        [0, 0, 10, 10.5],    # a duplicate of truth 0: extra, not a second find
        [21, 0, 31, 10],     # truth 1, IoU 9/11 = 0.82
        [43, 0, 53, 10],     # truth 2, IoU 7/13 = 0.54
        [65, 0, 75, 10],     # truth 3, IoU 5/15 = 0.33: not found at 0.5
        [100, 100, 120, 120],  # nothing there
    ], np.float32)
    assert count_found(truth, dets, iou=0.5) == (3, 3)
    assert count_found(truth, dets, iou=0.3) == (4, 2)
    assert count_found(truth, dets, iou=0.6) == (2, 4)
    assert count_found(truth, np.zeros((0, 4)), iou=0.5) == (0, 0)
    assert count_found(np.zeros((0, 4)), dets, iou=0.5) == (0, 6)


def test_peer_bench_report(models_dir: Path, data_dir: Path) -> None:
    """Small scenes, one repeat: every method on every scene, counts, ratios and the cost pair."""
    scenes = (("small", (540, 960), (50, 90)), ("big", (1080, 1920), (50, 90)))
    r = run_peer_bench(models_dir, dataset=data_dir / "faces_dev", n_faces=6, repeats=1, profiles=["fast"],
                       scenes=scenes, pairs={"big": "small"})
    methods = ["fast", "insightface det640", "insightface det1280"]
    assert r["aas"] == ["fast"] and r["peers"] == methods[1:]
    assert [e["scene"] for e in r["scenes"]] == ["small", "big"]
    for e in r["scenes"]:
        assert list(e["methods"]) == methods
        assert e["faces_in_scene"] == 6 and 47 <= e["face_px"][0] <= e["face_px"][1] <= 95
        for v in e["methods"].values():
            assert len(v["runs_ms"]) == 1 and v["median_ms"] > 0
            assert 0 <= v["found"] <= 6 and v["extra"] >= 0
        assert e["methods"]["fast"]["found"] >= 5  # 50-90 px faces: the fast profile finds them
        assert set(e["methods"]["fast"]["stages_ms"]) == {"persons", "faces", "enhance", "embed", "match", "total"}
        assert set(e["ratios"]) == {"insightface det640 / fast", "insightface det1280 / fast"}
        # the ceiling: the peer's whole call over fast's embedding stage alone (>= the ratio itself)
        for k, ceiling in e["ceilings"].items():
            peer = e["methods"][k.split(" / ")[0]]["median_ms"]
            assert ceiling == round(peer / e["methods"]["fast"]["stages_ms"]["embed"], 2) >= e["ratios"][k]
    text = peer_text(r)
    assert "ceiling, AAS detection free" in text and "(faces " in text and "embed " in text
    [cost] = r["cost_4k_over_1080p"]
    assert cost["scene"] == "big" and cost["vs"] == "small" and set(cost["ratios"]) == set(methods)


def test_peer_runs_the_fp32_weights_the_fast_profile_picks(models_dir: Path, tmp_path: Path) -> None:
    assert peer_weights(models_dir) == ("scrfd_2.5g.onnx", "mobilefacenet.onnx")
    # a folder where the fast profile prefers the official w600k_mbf and an int8 detector copy:
    # the peer runs w600k_mbf too, and the fp32 detector the copy was made from
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("scrfd_2.5g.onnx", "mobilefacenet.onnx"):
        (folder / name).symlink_to(models_dir / name)
    (folder / "w600k_mbf.onnx").write_bytes(b"only its presence is read here")
    (folder / "scrfd_2.5g_int8.onnx").write_bytes(b"only its presence is read here")
    cfg, _ = resolve_profile("fast", folder)
    assert (cfg.face_model, cfg.embed_model) == ("scrfd_2.5g_int8.onnx", "w600k_mbf.onnx")
    assert peer_weights(folder) == ("scrfd_2.5g.onnx", "w600k_mbf.onnx")
