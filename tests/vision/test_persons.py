"""Person detectors on real photos with the real weights."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from aas_core.vision import _torchvision_compat as compat
from aas_core.vision.nms import box_iou, nms
from aas_core.vision.types import Detections, PersonDetector

BACKENDS = ["yolo_onnx", "yolox_onnx", "ultralytics_yolo"]


@pytest.mark.parametrize("person_detector", BACKENDS, indirect=True)
def test_two_people_found_left_and_right(person_detector, load_image):
    img = load_image("group/obama_biden_two_people.jpg")  # 1126x661, Obama left, Biden right
    dets = person_detector.detect(img, 0.35)
    assert isinstance(person_detector, PersonDetector)
    assert isinstance(dets, Detections) and dets.landmarks is None
    assert len(dets) == 2
    assert dets.confidence.min() > 0.8
    cx = np.sort((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2)
    assert cx[0] < 563 < cx[1]
    # Each box is a whole standing/seated person: tall, most of the image height.
    assert (dets.heights > 0.9 * img.shape[0]).all()
    h, w = img.shape[:2]
    assert (dets.xyxy >= 0).all() and (dets.xyxy[:, [0, 2]] <= w).all() and (dets.xyxy[:, [1, 3]] <= h).all()


@pytest.mark.parametrize("person_detector", BACKENDS, indirect=True)
def test_group_of_eight_children(person_detector, load_image):
    dets = person_detector.detect(load_image("group/kids_group8.jpg"), 0.35)
    assert len(dets) == 8
    # Distinct people: NMS left no near-duplicates.
    iou = box_iou(dets.xyxy, dets.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.5


@pytest.mark.parametrize("person_detector", BACKENDS, indirect=True)
def test_blank_frame_has_no_person(person_detector):
    assert len(person_detector.detect(np.full((480, 640, 3), 127, np.uint8), 0.35)) == 0


@pytest.mark.parametrize("person_detector", ["yolo_onnx", "yolox_onnx"], indirect=True)
def test_threshold_is_applied(person_detector, load_image):
    img = load_image("group/obama_biden_stage.jpg")
    low, high = person_detector.detect(img, 0.2), person_detector.detect(img, 0.85)
    assert len(high) < len(low)
    assert high.confidence.min() > 0.85 and low.confidence.min() > 0.2


@pytest.mark.parametrize("person_detector", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64), np.uint8), "3-channel"),
        (np.zeros((64, 64, 4), np.uint8), "3-channel"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        (np.zeros((64, 64, 3), np.float32), "uint8"),
    ],
)
def test_bad_images_raise_valueerror(person_detector, image, message):
    with pytest.raises(ValueError, match=message):
        person_detector.detect(image)


def test_bad_threshold_raises(yolo_onnx):
    with pytest.raises(ValueError, match=r"conf_threshold must be in \[0, 1\]"):
        yolo_onnx.detect(np.zeros((32, 32, 3), np.uint8), 1.5)


def test_plain_onnx_matches_ultralytics_on_same_weights(yolo_onnx, ultralytics_yolo, load_image):
    """Our letterbox/decode reproduces Ultralytics' own pipeline on the same int8 file."""
    img = load_image("group/kids_group8.jpg")
    ours, theirs = yolo_onnx.detect(img, 0.35), ultralytics_yolo.detect(img, 0.35)
    assert len(ours) == len(theirs) == 8
    iou = box_iou(ours.xyxy, theirs.xyxy)
    assert (iou.max(axis=1) > 0.95).all()
    best = iou.argmax(axis=1)
    np.testing.assert_allclose(ours.confidence, theirs.confidence[best], atol=0.05)


def test_yolox_expects_unnormalised_bgr(model_file, load_image):
    """The legacy (RGB, mean/std) input scores persons near zero: the file wants 0-255 BGR."""
    from aas_core.vision.persons.yolox_onnx import YoloxOnnxPersonDetector

    legacy = YoloxOnnxPersonDetector(model_file("yolox_nano.onnx"), legacy=True)
    assert len(legacy.detect(load_image("group/obama_biden_two_people.jpg"), 0.35)) == 0


def test_yolo_class_id_must_exist(model_file):
    from aas_core.vision.persons.yolo_onnx import YoloOnnxPersonDetector

    with pytest.raises(ValueError, match="class_id 80"):
        YoloOnnxPersonDetector(model_file("yolov8n_int8.onnx"), class_id=80)


# --- Ultralytics + the torchvision NMS fallback --------------------------------------------


def test_ultralytics_used_torchvision_nms(ultralytics_yolo, load_image):
    """Ultralytics imported torchvision (warm-up) and ran NMS through it on this install."""
    assert len(ultralytics_yolo.detect(load_image("group/obama_biden_two_people.jpg"), 0.35)) == 2
    assert "torchvision" in sys.modules
    assert ultralytics_yolo.torchvision_shim == compat.shim_active()


def test_torchvision_nms_agrees_with_numpy_nms():
    """With the fallback active the kernel *is* our numpy NMS, so this checks the tensor plumbing
    (dtypes, order, empty input); the algorithm is checked against a brute-force reference in
    test_nms.py. With a working native torchvision it compares the two implementations."""
    compat.ensure_torchvision_nms()
    import torchvision

    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (400, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 400).astype(np.float32)
    got = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).numpy()
    np.testing.assert_array_equal(got, nms(boxes, scores, 0.5))
    assert torchvision.ops.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_cpu_fallback_kernel_directly():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.95, 0.5])
    assert compat.nms_cpu(boxes, scores, 0.5).tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        compat.nms_cpu(torch.zeros(3, 5), torch.zeros(3), 0.5)


def test_compat_does_nothing_when_native_nms_works(monkeypatch):
    """On a normal install (native op runs) no schema or kernel is registered."""

    def fail() -> None:
        raise AssertionError("shim must not be installed when torchvision's own nms works")

    monkeypatch.setattr(compat, "_shim_lib", None)
    monkeypatch.setattr(compat, "native_nms_works", lambda: True)
    monkeypatch.setattr(compat, "_install_shim", fail)
    monkeypatch.setattr(compat, "_open_torchvision_guard", fail)
    assert compat.ensure_torchvision_nms() is False


def test_compat_state_matches_this_install():
    """Here the shim is active exactly when the real torchvision extension cannot load."""
    active = compat.ensure_torchvision_nms()
    assert active == compat.shim_active()
    if active:  # torch is a CPU build, torchvision's _C.so wants CUDA libs
        assert compat._op_exists("nms")


def test_yolo_metadata_parsing():
    from aas_core.vision.persons.yolo_onnx import _parse_metadata

    names, e2e = _parse_metadata({"names": "{0: 'person', 1: 'bicycle'}", "args": "{'batch': 1, 'nms': False}"})
    assert names == {0: "person", 1: "bicycle"} and e2e is False
    assert _parse_metadata({"args": "{'nms': True}"})[1] is True
    assert _parse_metadata({"end2end": "True"})[1] is True
    assert _parse_metadata({"names": "not python", "args": "{"}) == ({}, False)


def test_yolo_decodes_end_to_end_and_transposed_heads(yolo_onnx):
    """Exports with NMS inside ([1, K, 6]) and [1, N, 84] layouts decode like the standard one."""
    e2e = np.array([[[10, 20, 50, 80, 0.9, 0], [0, 0, 5, 5, 0.95, 2], [30, 30, 60, 60, 0.2, 0]]], np.float32)
    yolo_onnx.end2end = True
    try:
        xyxy, scores = yolo_onnx._decode(e2e, 0.35)
    finally:
        yolo_onnx.end2end = False
    np.testing.assert_allclose(xyxy, [[10, 20, 50, 80]])
    np.testing.assert_allclose(scores, [0.9])
    head = np.zeros((1, 84, 100), np.float32)
    head[0, :4, 7] = [100, 50, 20, 40]  # cx, cy, w, h
    head[0, 4, 7] = 0.8  # person
    head[0, 5, 8] = 0.99  # a bicycle: ignored
    for layout in (head, head.transpose(0, 2, 1)):
        xyxy, scores = yolo_onnx._decode(layout, 0.35)
        np.testing.assert_allclose(xyxy, [[90, 30, 110, 70]])
        np.testing.assert_allclose(scores, [0.8])
