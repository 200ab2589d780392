"""Face detectors on real photos and faces_dev crops with the real weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aas_core.vision.backends import (
    FACE_BACKENDS,
    PERSON_BACKENDS,
    clear_cache,
    load_face_detector,
    load_person_detector,
)
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing
from aas_core.vision.faces._dlib_common import (
    _DLIB5_IN_ARCFACE,
    ARCFACE_5PTS,
    confidence_to_margin,
    five_from_dlib5,
    margin_to_confidence,
)
from aas_core.vision.nms import box_iou
from aas_core.vision.types import Detections, FaceDetector

FAST = ["scrfd", "scrfd_500m", "yunet", "dlib_hog"]
ALL = [*FAST, "dlib_cnn"]


def _half(img: np.ndarray) -> np.ndarray:
    """dlib's CNN takes ~3 s on a full 1126x661 frame on 2 cores; half size keeps tests quick."""
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)


def assert_landmarks_sane(dets: Detections) -> None:
    """InsightFace order in image terms: eyes left->right, eyes above nose above mouth."""
    assert dets.landmarks is not None and dets.landmarks.shape == (len(dets), 5, 2)
    lm = dets.landmarks
    le, re, nose, ml, mr = (lm[:, i] for i in range(5))
    assert (le[:, 0] < re[:, 0]).all(), "left eye (image) must have the smaller x"
    assert (ml[:, 0] < mr[:, 0]).all(), "left mouth corner (image) must have the smaller x"
    assert (np.maximum(le[:, 1], re[:, 1]) < nose[:, 1]).all()
    assert (nose[:, 1] < np.minimum(ml[:, 1], mr[:, 1])).all()
    # all points inside the face box (with 10 % slack: boxes are not tight on every backend)
    slack = 0.1 * np.stack([dets.widths, dets.heights], 1)[:, None, :]
    assert (lm >= dets.xyxy[:, None, :2] - slack).all() and (lm <= dets.xyxy[:, None, 2:] + slack).all()


@pytest.mark.parametrize("face_detector", ALL, indirect=True)
def test_two_faces_with_sane_landmarks(face_detector, load_image):
    img = load_image("group/obama_biden_two_people.jpg")
    if face_detector.name.startswith("dlib-cnn"):
        img = _half(img)
    dets = face_detector.detect(img, 0.5)
    assert isinstance(face_detector, FaceDetector)
    assert len(dets) == 2
    assert dets.confidence.min() >= 0.5
    cx = np.sort((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2)
    assert cx[0] < img.shape[1] / 2 < cx[1]
    # faces are roughly square and of a plausible size for this photo (~150 px at full size)
    scale = 1.0 if img.shape[1] > 1000 else 0.5
    assert ((dets.widths > 100 * scale) & (dets.widths < 220 * scale)).all()
    assert (np.abs(dets.widths / dets.heights - 1) < 0.45).all()
    assert_landmarks_sane(dets)


@pytest.mark.parametrize(
    ("face_detector", "expected"),
    [("scrfd", 8), ("scrfd_500m", 8), ("yunet", 8), ("dlib_hog", 7)],
    indirect=["face_detector"],
)
def test_group_of_eight_children(face_detector, expected, load_image):
    dets = face_detector.detect(load_image("group/kids_group8.jpg"), 0.5)
    assert len(dets) == expected
    assert_landmarks_sane(dets)


def test_backends_agree_on_the_same_faces(scrfd, yunet, dlib_hog, load_image):
    img = load_image("group/kids_group8.jpg")
    ref = scrfd.detect(img, 0.5)
    for other in (yunet.detect(img, 0.5), dlib_hog.detect(img, 0.5)):
        iou = box_iou(other.xyxy, ref.xyxy)
        assert (iou.max(axis=1) > 0.4).all()  # every face of the other backend is one SCRFD found
        # matched eyes within 15 % of the face width
        j = iou.argmax(axis=1)
        eye_err = np.linalg.norm(other.landmarks[:, :2] - ref.landmarks[j, :2], axis=2).max(axis=1)
        assert (eye_err < 0.15 * ref.widths[j]).all()


@pytest.mark.parametrize("face_detector", FAST, indirect=True)
def test_aligned_glint_crops_found_with_template_landmarks(face_detector, face_files):
    """Glint360k crops are ArcFace-aligned: landmarks must land near the 112x112 template.

    The crops are padded to 224x224 so every backend (dlib HOG needs ~80 px faces at
    upsample 1 and some context) sees a normal-looking photo.
    """
    files = face_files("glint")[::6]
    found, errors = 0, []
    for f in files:
        img = cv2.copyMakeBorder(cv2.imread(str(f)), 56, 56, 56, 56, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        dets = face_detector.detect(img, 0.5)
        if len(dets):
            found += 1
            best = int(np.argmax(dets.confidence))
            errors.append(np.linalg.norm(dets.landmarks[best] - 56 - ARCFACE_5PTS, axis=1))
    assert found >= 0.85 * len(files)
    mean_err = np.mean(errors, axis=0)
    assert (mean_err < 9.0).all(), mean_err  # px in the 112 px template
    assert mean_err[:2].max() < 5.0, mean_err  # eyes are the points alignment relies on most


@pytest.mark.parametrize("face_detector", ["scrfd", "scrfd_500m", "yunet"], indirect=True)
@pytest.mark.parametrize("prefix", ["glint", "orl", "yale", "lfw"])
def test_faces_dev_crops_without_padding(face_detector, prefix, face_files):
    """Tight crops as-is (112x112 Glint, 92x112 ORL, 320x243 Yale, 250x250 LFW).

    SCRFD alone finds 1/56 Glint and 0/80 ORL crops (InsightFace stretches a small image to
    640 px, far beyond its anchors); ``max_upscale`` padding is what makes this pass.
    """
    files = face_files(prefix)[::5]
    hits = sum(len(face_detector.detect(cv2.imread(str(f)), 0.5)) >= 1 for f in files)
    assert hits >= 0.9 * len(files)


def test_scrfd_max_upscale_none_reproduces_the_tight_crop_failure(model_file, face_files):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    raw = ScrfdFaceDetector(model_file("scrfd_500m.onnx"), max_upscale=None)
    files = face_files("orl")[::10]
    assert sum(len(raw.detect(cv2.imread(str(f)), 0.5)) for f in files) <= 1


def test_lowres_images(scrfd, load_image):
    assert len(scrfd.detect(load_image("lowres/band4_248x189.jpg"), 0.5)) == 4
    assert len(scrfd.detect(load_image("lowres/obama_240p.jpg"), 0.5)) == 1


def test_scrfd_threshold_and_input_size(scrfd, model_file, load_image):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    img = load_image("group/crowd_selfie_many_small.jpg")
    low, high = scrfd.detect(img, 0.3), scrfd.detect(img, 0.8)
    assert len(high) < len(low) and high.confidence.min() >= 0.8
    big = ScrfdFaceDetector(model_file("scrfd_2.5g.onnx"), input_size=(1280, 736))
    assert big.input_size == (1280, 736)
    # a larger network input sees the crowd's small faces the 640 px pass cannot
    assert len(big.detect(img, 0.5)) > 1.5 * len(scrfd.detect(img, 0.5))
    with pytest.raises(ValueError, match="multiples of 32"):
        ScrfdFaceDetector(model_file("scrfd_2.5g.onnx"), input_size=(100, 100))


def test_scrfd_static_export_keeps_its_size(model_file, load_image):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    det = ScrfdFaceDetector(model_file("scrfd_500m_bnkps.onnx"), input_size=(320, 320))
    assert det.input_size == (640, 640)
    assert len(det.detect(load_image("group/kids_group8.jpg"), 0.5)) == 8


def test_yunet_max_side_maps_back_to_frame(model_file, load_image):
    from aas_core.vision.faces.yunet import YunetFaceDetector

    img = load_image("group/obama_biden_stage.jpg")  # 2000x1428
    small = YunetFaceDetector(model_file("face_detection_yunet_2026may.onnx"), max_side=800).detect(img, 0.6)
    full = YunetFaceDetector(model_file("face_detection_yunet_2026may.onnx")).detect(img, 0.6)
    assert len(small) >= 2
    assert (box_iou(small.xyxy, full.xyxy).max(axis=1) > 0.7).all()  # same faces, frame coordinates


def test_dlib_cnn_on_lowres(dlib_cnn, load_image):
    dets = dlib_cnn.detect(load_image("lowres/obama_320x240.jpg"), 0.5)
    assert len(dets) == 1 and dets.confidence[0] > 0.5
    assert_landmarks_sane(dets)


def test_dlib_hog_without_landmarks_and_68_point_option(load_image):
    from aas_core.vision.faces.dlib_hog import DlibHogFaceDetector

    img = load_image("group/obama_biden_two_people.jpg")
    bare = DlibHogFaceDetector(upsample=0, landmarks="none").detect(img, 0.5)
    assert len(bare) == 2 and bare.landmarks is None
    full = DlibHogFaceDetector(upsample=0, landmarks="68").detect(img, 0.5)
    assert_landmarks_sane(full)
    with pytest.raises(ValueError, match="upsample"):
        DlibHogFaceDetector(upsample=-1)
    with pytest.raises(ValueError, match="landmarks must be"):
        DlibHogFaceDetector(landmarks="7")  # type: ignore[arg-type]


def test_dlib_five_point_mapping_on_the_template():
    """dlib-5 points placed exactly at their template positions give the ArcFace template."""
    le, re, nose = _DLIB5_IN_ARCFACE
    parts = np.array([[re + [7, 0], re - [7, 0], le - [7, 0], le + [7, 0], nose]], np.float32)
    out = five_from_dlib5(parts)[0]
    np.testing.assert_allclose(out[[0, 1]], _DLIB5_IN_ARCFACE[:2], atol=1e-4)  # measured eyes kept
    np.testing.assert_allclose(out[2:], ARCFACE_5PTS[2:], atol=1e-3)  # nose tip + mouth from template
    # scale x2 and shift: the estimate follows the face
    moved = five_from_dlib5(parts * 2 + 10)[0]
    np.testing.assert_allclose(moved[3:], ARCFACE_5PTS[3:] * 2 + 10, atol=1e-3)


def test_dlib_margin_mapping():
    assert margin_to_confidence(0.0) == pytest.approx(0.5)
    assert confidence_to_margin(0.5) == pytest.approx(0.0)
    assert confidence_to_margin(float(margin_to_confidence(1.3))) == pytest.approx(1.3, rel=1e-5)


@pytest.mark.parametrize("face_detector", ALL, indirect=True)
@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64), np.uint8), "COLOR_GRAY2BGR"),
        (np.zeros((64, 64, 4), np.uint8), "COLOR_BGRA2BGR"),
        (np.zeros((64, 0, 3), np.uint8), "empty"),
        (np.zeros((64, 64, 3), np.float64), "uint8"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_raise_valueerror(face_detector, image, message):
    with pytest.raises(ValueError, match=message):
        face_detector.detect(image)


@pytest.mark.parametrize("face_detector", FAST, indirect=True)
def test_blank_image_has_no_face(face_detector):
    dets = face_detector.detect(np.full((480, 640, 3), 200, np.uint8), 0.5)
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4)


# --- registry -------------------------------------------------------------------------------


def test_registry_names():
    assert set(PERSON_BACKENDS) == {"yolo-onnx", "yolox-onnx", "ultralytics"}
    assert set(FACE_BACKENDS) == {"scrfd", "yunet", "dlib-hog", "dlib-cnn", "retinaface"}


def test_registry_caches_per_options(models_dir, model_file):
    model_file("scrfd_2.5g.onnx"), model_file("scrfd_500m.onnx")
    a = load_face_detector("scrfd", models_dir)
    assert load_face_detector("scrfd", str(models_dir)) is a
    b = load_face_detector("scrfd", models_dir, model="500m")
    assert b is not a and b.name == "scrfd:scrfd_500m"
    c = load_face_detector("scrfd", models_dir, model="scrfd_500m.onnx", input_size=[320, 320])
    assert c.input_size == (320, 320)
    assert load_face_detector("scrfd", models_dir, model="scrfd_500m.onnx", input_size=(320, 320)) is c
    p = load_person_detector("yolox-onnx", models_dir)
    assert p.name == "yolox-onnx:yolox_nano" and load_person_detector("yolox-onnx", models_dir) is p


def test_registry_model_none_means_default_file(models_dir, model_file):
    """Profiles pass ``model=None`` for "the backend's default" (and for dlib, which has no file)."""
    model_file("scrfd_2.5g.onnx"), model_file("yolov8n_int8.onnx")
    assert load_face_detector("scrfd", models_dir, model=None).name == "scrfd:scrfd_2.5g"
    assert load_person_detector("yolo-onnx", models_dir, model=None).name == "yolo-onnx:yolov8n_int8"
    assert load_face_detector("dlib-hog", models_dir, model=None, upsample=0).name == "dlib-hog:up0"
    with pytest.raises(ValueError, match="dlib-hog has no weight file"):
        load_face_detector("dlib-hog", models_dir, model="hog.dat")


@pytest.mark.parametrize(
    ("loader", "name", "opts", "filename"),
    [
        (load_face_detector, "scrfd", {}, "scrfd_2.5g.onnx"),
        (load_face_detector, "scrfd", {"model": "10g"}, "det_10g.onnx"),
        (load_face_detector, "yunet", {}, "face_detection_yunet_2026may.onnx"),
        (load_person_detector, "yolo-onnx", {}, "yolov8n_int8.onnx"),
        (load_person_detector, "yolox-onnx", {}, "yolox_nano.onnx"),
        (load_person_detector, "ultralytics", {"model": "yolov8n.pt"}, "yolov8n.pt"),
    ],
)
def test_missing_weights_raise_model_file_missing(tmp_path, loader, name, opts, filename):
    with pytest.raises(ModelFileMissing) as err:
        loader(name, tmp_path, **opts)
    assert isinstance(err.value, FileNotFoundError)
    stem = filename.rsplit(".", 1)[0]  # manifest names are file stems
    assert filename in str(err.value) and f"run `aas models fetch {stem}`" in str(err.value)
    assert err.value.filename == str(tmp_path.resolve() / filename)


def test_missing_file_is_not_cached(tmp_path, model_file):
    with pytest.raises(ModelFileMissing):
        load_face_detector("yunet", tmp_path)
    name = "face_detection_yunet_2026may.onnx"
    (tmp_path / name).write_bytes(model_file(name).read_bytes())
    assert load_face_detector("yunet", tmp_path).name.startswith("yunet:")
    clear_cache()


@pytest.mark.parametrize(
    ("loader", "name", "filename"),
    [
        (load_face_detector, "scrfd", "scrfd_2.5g.onnx"),
        (load_person_detector, "yolo-onnx", "yolov8n_int8.onnx"),
        (load_face_detector, "yunet", "face_detection_yunet_2026may.onnx"),
    ],
)
def test_garbage_weights_raise_model_file_corrupt(tmp_path, loader, name, filename):
    (tmp_path / filename).write_bytes(b"this is not an onnx model" * 10)
    with pytest.raises(ModelFileCorrupt) as err:
        loader(name, tmp_path)
    assert isinstance(err.value, ValueError) and filename in str(err.value)


def test_unknown_backend_and_bad_scrfd_model_name(models_dir):
    with pytest.raises(ValueError, match="unknown face backend 'retina'.*scrfd"):
        load_face_detector("retina", models_dir)
    with pytest.raises(ValueError, match="unknown person backend"):
        load_person_detector("scrfd", models_dir)
    with pytest.raises(ValueError, match="scrfd model must be"):
        load_face_detector("scrfd", models_dir, model="scrfd_2.5g")
    with pytest.raises(TypeError, match="not hashable"):
        load_face_detector("scrfd", models_dir, model={1, 2})  # a set is neither hashable-frozen nor a path
