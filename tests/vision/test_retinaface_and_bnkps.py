"""RetinaFace-MobileNet0.25 (torch) and the static SCRFD-500M-KPS export on real images.

Both are checked against SCRFD-2.5g, the project's reference face detector: the same faces
(IoU >= 0.5), landmarks in InsightFace order, nothing on a blank image.
"""

from __future__ import annotations

import itertools
import math
import shutil

import cv2
import numpy as np
import pytest
import torch

from aas_core.vision.backends import clear_cache, load_face_detector
from aas_core.vision.errors import ModelFileCorrupt, ModelFileMissing
from aas_core.vision.faces._dlib_common import ARCFACE_5PTS
from aas_core.vision.nms import box_iou
from aas_core.vision.types import Detections, FaceDetector

RETINA_FILE = "mobilenet0.25_Final.pth"
BNKPS_FILE = "scrfd_500m_bnkps.onnx"


@pytest.fixture(scope="session")
def retinaface(model_file):
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    return RetinaFaceTorchDetector(model_file(RETINA_FILE))


@pytest.fixture(scope="session")
def scrfd_bnkps(model_file):
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    return ScrfdFaceDetector(model_file(BNKPS_FILE))


@pytest.fixture(scope="session")
def reference(scrfd, load_image):
    """SCRFD-2.5g detections per image, computed once."""
    cache: dict[str, Detections] = {}

    def _ref(rel: str) -> Detections:
        if rel not in cache:
            cache[rel] = scrfd.detect(load_image(rel), 0.5)
        return cache[rel]

    return _ref


BOTH = ["retinaface", "scrfd_bnkps"]


def assert_landmarks_in_order(dets: Detections) -> None:
    """InsightFace order as seen in the image: eyes and mouth corners left->right, eyes above mouth."""
    assert dets.landmarks is not None and dets.landmarks.shape == (len(dets), 5, 2)
    le, re, nose, ml, mr = (dets.landmarks[:, i] for i in range(5))
    assert (le[:, 0] < re[:, 0]).all(), "left eye (image) must have the smaller x"
    assert (ml[:, 0] < mr[:, 0]).all(), "left mouth corner (image) must have the smaller x"
    assert (np.maximum(le[:, 1], re[:, 1]) < np.minimum(ml[:, 1], mr[:, 1])).all(), "eyes above the mouth"
    assert (np.maximum(le[:, 1], re[:, 1]) < nose[:, 1]).all() and (nose[:, 1] < np.minimum(ml[:, 1], mr[:, 1])).all()
    slack = 0.1 * np.stack([dets.widths, dets.heights], 1)[:, None, :]
    assert (dets.landmarks >= dets.xyxy[:, None, :2] - slack).all()
    assert (dets.landmarks <= dets.xyxy[:, None, 2:] + slack).all()


def _matched(dets: Detections, ref: Detections) -> np.ndarray:
    """Best IoU of each detection with a reference face."""
    if len(dets) == 0 or len(ref) == 0:
        return np.zeros(len(dets), np.float32)
    return box_iou(dets.xyxy, ref.xyxy).max(axis=1)


@pytest.mark.parametrize("face_detector", BOTH, indirect=True)
def test_two_faces_match_scrfd(face_detector, load_image, reference):
    rel = "group/obama_biden_two_people.jpg"
    img = load_image(rel)
    dets = face_detector.detect(img, 0.5)
    assert isinstance(face_detector, FaceDetector)
    assert len(dets) == 2 and dets.confidence.min() >= 0.5
    iou = _matched(dets, reference(rel))
    assert (iou >= 0.5).all(), iou
    cx = np.sort((dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2)
    assert cx[0] < img.shape[1] / 2 < cx[1]
    assert ((dets.widths > 100) & (dets.widths < 220)).all(), dets.widths
    assert_landmarks_in_order(dets)


@pytest.mark.parametrize("face_detector", BOTH, indirect=True)
def test_group_of_eight_children(face_detector, load_image, reference):
    rel = "group/kids_group8.jpg"
    dets = face_detector.detect(load_image(rel), 0.5)
    ref = reference(rel)
    assert len(ref) == 8
    iou = _matched(dets, ref)
    assert (iou >= 0.5).sum() >= 6, iou
    assert len(dets) <= 9  # at most one face the reference does not have
    assert_landmarks_in_order(dets[np.flatnonzero(iou >= 0.5)])
    # eyes of matched faces agree with SCRFD-2.5g's within 15 % of the face width
    good = dets[np.flatnonzero(iou >= 0.5)]
    j = box_iou(good.xyxy, ref.xyxy).argmax(axis=1)
    eye_err = np.linalg.norm(good.landmarks[:, :2] - ref.landmarks[j, :2], axis=2).max(axis=1)
    assert (eye_err < 0.15 * ref.widths[j]).all(), eye_err / ref.widths[j]


@pytest.mark.parametrize("face_detector", BOTH, indirect=True)
def test_face_in_padded_faces_dev_crop(face_detector, face_files):
    """ArcFace-aligned Glint crops padded to 224x224: one face, eyes near the 112 px template."""
    files = face_files("glint")[::20]
    found = 0
    for f in files:
        img = cv2.copyMakeBorder(cv2.imread(str(f)), 56, 56, 56, 56, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        dets = face_detector.detect(img, 0.5)
        if len(dets):
            found += 1
            best = dets[int(np.argmax(dets.confidence))]
            assert_landmarks_in_order(best)
            eye_err = np.linalg.norm(best.landmarks[0, :2] - 56 - ARCFACE_5PTS[:2], axis=1)
            assert (eye_err < 10).all(), (f, eye_err)
    assert found >= len(files) - 1, f"{found}/{len(files)}"


@pytest.mark.parametrize("face_detector", BOTH, indirect=True)
def test_blank_image_has_no_face(face_detector):
    dets = face_detector.detect(np.full((480, 640, 3), 200, np.uint8), 0.5)
    assert len(dets) == 0 and dets.xyxy.shape == (0, 4)
    assert dets.landmarks is not None and dets.landmarks.shape == (0, 5, 2)


# --- RetinaFace specifics -----------------------------------------------------------------


def test_retinaface_loads_through_the_registry(models_dir, model_file, load_image):
    model_file(RETINA_FILE)
    det = load_face_detector("retinaface", str(models_dir))
    assert det.name == "retinaface:mobilenet0.25"
    assert load_face_detector("retinaface", models_dir) is det
    assert len(det.detect(load_image("group/obama_biden_two_people.jpg"), 0.5)) == 2


def test_retinaface_missing_weights(tmp_path):
    clear_cache()
    with pytest.raises(ModelFileMissing) as err:
        load_face_detector("retinaface", tmp_path)
    assert RETINA_FILE in str(err.value) and "aas models fetch mobilenet0.25_Final" in str(err.value)


def test_retinaface_truncated_or_foreign_file_is_corrupt(tmp_path, model_file):
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    src = model_file(RETINA_FILE)
    truncated = tmp_path / RETINA_FILE
    truncated.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ModelFileCorrupt, match=RETINA_FILE) as err:
        RetinaFaceTorchDetector(truncated)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ModelFileCorrupt, match=RETINA_FILE):  # through the registry too
        load_face_detector("retinaface", tmp_path)

    foreign = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(ModelFileCorrupt, match="other.pth.*not a RetinaFace"):
        RetinaFaceTorchDetector(foreign)


def test_retinaface_module_prefix_is_stripped(tmp_path, model_file):
    """DataParallel checkpoints name every key ``module.*``; they load the same."""
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    state = torch.load(model_file(RETINA_FILE), map_location="cpu", weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, wrapped)
    det = RetinaFaceTorchDetector(wrapped)
    assert det.detect(np.full((64, 64, 3), 0, np.uint8)).xyxy.shape == (0, 4)


def test_retinaface_prior_boxes_match_the_reference_loop():
    """Vectorised priors == the original ``PriorBox.forward`` loop (order matters)."""
    from aas_core.vision.faces.retinaface_torch import MIN_SIZES, STEPS, prior_boxes

    h, w = 75, 101
    expected = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        for i, j in itertools.product(range(math.ceil(h / step)), range(math.ceil(w / step))):
            for s in sizes:
                expected.append([(j + 0.5) * step / w, (i + 0.5) * step / h, s / w, s / h])
    np.testing.assert_allclose(prior_boxes(h, w), np.array(expected, np.float32), rtol=1e-6)


def test_retinaface_odd_sizes_and_max_side(model_file, load_image, retinaface):
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    img = load_image("group/kids_group8.jpg")  # 1024x768
    assert retinaface.max_side == 640
    # an odd-sized crop: priors and network outputs must still line up
    crop = img[3:500, 7:700]
    dets = retinaface.detect(crop, 0.5)
    assert len(dets) >= 3
    # max_side maps back to frame coordinates: a smaller network input finds the same faces
    small = RetinaFaceTorchDetector(model_file(RETINA_FILE), max_side=480).detect(img, 0.5)
    ref = retinaface.detect(img, 0.5)
    assert len(small) >= 6 and (_matched(small, ref) > 0.6).sum() >= 6
    with pytest.raises(ValueError, match="max_side"):
        RetinaFaceTorchDetector(model_file(RETINA_FILE), max_side=8)
    with pytest.raises(ValueError, match="conf_threshold"):
        retinaface.detect(img, 1.5)


def test_retinaface_threads_option(model_file):
    from aas_core.vision.faces.retinaface_torch import RetinaFaceTorchDetector

    before = torch.get_num_threads()
    try:
        RetinaFaceTorchDetector(model_file(RETINA_FILE), threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# --- the static SCRFD export -----------------------------------------------------------------


def test_bnkps_through_the_registry_keeps_its_static_size(models_dir, model_file, tmp_path):
    model_file(BNKPS_FILE)
    det = load_face_detector("scrfd", models_dir, model=BNKPS_FILE, input_size=(1280, 736))
    assert det.input_size == (640, 640) and det.has_landmarks
    assert det.name == "scrfd:scrfd_500m_bnkps"
    assert len(det.detect(np.full((120, 120, 3), 200, np.uint8), 0.5)) == 0
    broken = tmp_path / BNKPS_FILE
    shutil.copyfile(model_file(BNKPS_FILE), broken)
    broken.write_bytes(broken.read_bytes()[:5000])
    from aas_core.vision.faces.scrfd import ScrfdFaceDetector

    with pytest.raises(ModelFileCorrupt, match=BNKPS_FILE):
        ScrfdFaceDetector(broken)
