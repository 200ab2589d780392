"""The two face-finding flows: faces inside person boxes, and SAHI-style tiling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aas_core.vision.faces.flows import (
    detect_at_scale,
    detect_faces_in_persons,
    detect_faces_scheduled,
    detect_faces_tiled,
    drop_cut_faces,
    expand_boxes,
    merge_bands,
    refine_landmarks,
    schedule_scale,
    tile_windows,
)
from aas_core.vision.nms import box_iou
from aas_core.vision.types import SOURCE_FRAME, SOURCE_PERSON, SOURCE_TILE, Detections


@pytest.fixture(scope="module")
def small_faces_canvas(face_files) -> tuple[np.ndarray, np.ndarray]:
    """A 1920x1080 'classroom' with 30 real faces pasted at 32-60 px, and their true boxes.

    LFW images (250x250, face centred) are cut to their central 130 px (face plus a little
    context) and shrunk; positions are jittered on a 6x5 grid over a flat grey background.
    """
    files = face_files("lfw")[:30]
    rng = np.random.default_rng(0)
    canvas = np.full((1080, 1920, 3), 100, np.uint8)
    boxes = []
    for i, f in enumerate(files):
        face = cv2.imread(str(f))[60:190, 60:190]
        s = int(rng.integers(32, 61))
        r, c = divmod(i, 6)
        x, y = 80 + c * 300 + int(rng.integers(0, 120)), 60 + r * 200 + int(rng.integers(0, 100))
        canvas[y : y + s, x : x + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA)
        boxes.append([x, y, x + s, y + s])
    return canvas, np.array(boxes, np.float32)


def _centre_inside(cx: np.ndarray, cy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(len(boxes), len(cx)) bool: point j lies inside box i."""
    b = np.asarray(boxes, np.float32)
    return (cx[None] > b[:, :1]) & (cx[None] < b[:, 2:3]) & (cy[None] > b[:, 1:2]) & (cy[None] < b[:, 3:4])


def _recall(found: Detections, truth: np.ndarray) -> float:
    """Share of true pasted crops containing the centre of some detection."""
    if len(found) == 0:
        return 0.0
    cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
    cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
    return float(_centre_inside(cx, cy, truth).any(axis=1).mean())


def assert_boxes_hold_landmarks(dets: Detections) -> None:
    lm = dets.landmarks
    assert lm is not None
    slack = 0.1 * dets.widths[:, None, None]
    assert (lm >= dets.xyxy[:, None, :2] - slack).all() and (lm <= dets.xyxy[:, None, 2:] + slack).all()


# --- tiled flow -----------------------------------------------------------------------------


def test_tiled_finds_small_faces_a_full_frame_pass_misses(scrfd, small_faces_canvas):
    canvas, truth = small_faces_canvas
    full = scrfd.detect(canvas, 0.5)
    tiled = detect_faces_tiled(canvas, scrfd, tile=640, overlap=0.25, conf=0.5, min_face_px=16)
    assert _recall(full, truth) < 0.5  # 640 px network input: 32-60 px faces shrink to 11-20 px
    assert _recall(tiled, truth) >= 0.9
    assert len(tiled) <= len(truth) + 2  # no duplicates from overlapping tiles
    iou = box_iou(tiled.xyxy, tiled.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.4
    assert set(tiled.source) <= {SOURCE_TILE, SOURCE_FRAME} and SOURCE_TILE in set(tiled.source)
    assert tiled.landmarks is not None and tiled.landmarks.shape == (len(tiled), 5, 2)
    assert_boxes_hold_landmarks(tiled)
    # boxes map back onto the pasted crops (not onto tile coordinates)
    assert (box_iou(tiled.xyxy, truth).max(axis=1) > 0.3).mean() >= 0.9


def test_tiled_beats_full_frame_on_crowd_photo(scrfd, load_image):
    img = load_image("group/crowd_selfie_many_small.jpg")  # 1600x898, 100+ small faces
    full = scrfd.detect(img, 0.5)
    tiled = detect_faces_tiled(img, scrfd, conf=0.5, min_face_px=8)
    assert len(tiled) > 1.5 * len(full)
    # the large faces of the full-frame pass are all still there
    assert (box_iou(full.xyxy, tiled.xyxy).max(axis=1) > 0.5).mean() > 0.95


def test_tiled_keeps_large_faces_from_full_frame(yunet, load_image):
    img = load_image("group/obama_biden_stage.jpg")  # 2000x1428: faces ~160 px, larger than the overlap
    full = yunet.detect(img, 0.6)
    tiled = detect_faces_tiled(img, yunet, tile=512, overlap=0.2, conf=0.6, min_face_px=20)
    big = full[np.flatnonzero(full.widths > 120)]
    assert len(big) >= 3
    # whole faces survive; halves of them that tiles cut off (and score higher) do not
    iou = box_iou(big.xyxy, tiled.xyxy)
    assert (iou.max(axis=1) > 0.8).all()
    assert ((iou > 0).sum(axis=1) == 1).all()  # exactly one box per big face: no cut-off halves
    assert_boxes_hold_landmarks(tiled)


def test_tiled_without_full_frame_pass_uses_tiles_only(yunet, load_image):
    img = load_image("group/kids_group8.jpg")
    tiled = detect_faces_tiled(img, yunet, include_full_frame=False, conf=0.5, min_face_px=20)
    assert len(tiled) == 8 and set(tiled.source) == {SOURCE_TILE}


def test_tiled_small_image_is_one_pass(scrfd, load_image):
    img = load_image("lowres/band4_248x189.jpg")
    dets = detect_faces_tiled(img, scrfd, tile=640, conf=0.5, min_face_px=10)
    assert len(dets) == 4 and set(dets.source) == {SOURCE_FRAME}


def test_min_face_px_drops_small_faces(scrfd, load_image):
    img = load_image("group/crowd_selfie_many_small.jpg")
    all_faces = detect_faces_tiled(img, scrfd, conf=0.5, min_face_px=0)
    big_only = detect_faces_tiled(img, scrfd, conf=0.5, min_face_px=30)
    assert 0 < len(big_only) < len(all_faces)
    assert np.minimum(big_only.widths, big_only.heights).min() >= 30


def test_tile_windows_cover_frame_with_overlap():
    w = tile_windows(1920, 1080, tile=640, overlap=0.25)
    assert len(w) == 8  # x: 0, 480, 960, 1280; y: 0, 440
    assert (w[:, 2] - w[:, 0] == 640).all() and (w[:, 3] - w[:, 1] == 640).all()
    assert w[:, 0].min() == 0 and w[:, 2].max() == 1920 and w[:, 3].max() == 1080
    xs = np.unique(w[:, 0])
    assert (np.diff(xs) <= 480).all()  # neighbours overlap by >= 25 %
    cover = np.zeros((1080, 1920), bool)
    for x0, y0, x1, y1 in w:
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    np.testing.assert_array_equal(tile_windows(300, 200, tile=640), [[0, 0, 300, 200]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tile": 16}, "tile must be"), ({"overlap": 1.0}, "overlap must be"), ({"overlap": -0.1}, "overlap must be")],
)
def test_tile_windows_validate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tile_windows(1920, 1080, **kwargs)


def test_drop_cut_faces_only_at_inner_edges():
    window = np.array([480, 0, 1120, 640])  # a tile in a 1920x1080 frame: left/right/bottom edges are inner
    faces = Detections(
        xyxy=[
            [478, 100, 520, 140],  # cut by the left edge
            [600, 100, 640, 140],  # well inside
            [1090, 300, 1119, 330],  # touches the right edge
            [700, 0, 740, 30],  # touches the top edge = frame border: kept
            [1000, 400, 1300, 700],  # cut but larger than the overlap: kept for NMS
        ],
        confidence=[0.9] * 5,
    )
    kept = drop_cut_faces(faces, window, 1920, 1080, max_size=160)
    np.testing.assert_allclose(kept.xyxy[:, 0], [600, 700, 1000])


def test_expand_boxes_clips_to_frame():
    out = expand_boxes(np.array([[10, 20, 110, 220], [900, 500, 1000, 600]]), 0.15, 960, 640)
    np.testing.assert_array_equal(out, [[0, 0, 125, 250], [885, 485, 960, 615]])
    with pytest.raises(ValueError, match="expand"):
        expand_boxes(np.zeros((1, 4)), -0.1, 10, 10)


# --- person flow ----------------------------------------------------------------------------


def test_person_flow_on_group_photo(yolo_onnx, scrfd, load_image):
    img = load_image("group/kids_group8.jpg")
    persons = yolo_onnx.detect(img, 0.35)
    assert len(persons) == 8
    faces = detect_faces_in_persons(img, persons, scrfd, expand=0.15, conf=0.5, min_face_px=20)
    assert len(faces) == 8
    assert set(faces.source) == {SOURCE_PERSON}
    # same faces as a plain full-frame pass, in frame coordinates, landmarks included
    full = scrfd.detect(img, 0.5)
    assert (box_iou(faces.xyxy, full.xyxy).max(axis=1) > 0.8).all()
    assert np.abs(faces.landmarks - full.landmarks[box_iou(faces.xyxy, full.xyxy).argmax(axis=1)]).max() < 8
    # every face lies inside the (expanded) box of some person
    cx, cy = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2, (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2
    eb = expand_boxes(persons.xyxy, 0.15, img.shape[1], img.shape[0])
    assert _centre_inside(cx, cy, eb).any(axis=0).all()


def test_person_flow_merges_faces_seen_by_overlapping_crops(yolo_onnx, yunet, load_image):
    img = load_image("group/kids_group8.jpg")
    persons = yolo_onnx.detect(img, 0.35)
    once = detect_faces_in_persons(img, persons, yunet, conf=0.5, min_face_px=20)
    # every person twice, the copy shifted by 10 px: each face now found by >= 2 crops
    twice = Detections.concat([persons, persons.shifted(10, 0)])
    merged = detect_faces_in_persons(img, twice, yunet, conf=0.5, min_face_px=20)
    assert len(once) == 8 and len(merged) == 8
    # neighbours' faces cut by a crop edge were dropped, not kept as partial duplicates
    iou = box_iou(merged.xyxy, merged.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.3


def test_person_flow_upscales_small_person_crops(yolo_onnx, load_image):
    """dlib HOG at upsample 0 needs ~80 px faces; small person crops are upscaled first."""
    from aas_core.vision.faces.dlib_hog import DlibHogFaceDetector

    hog0 = DlibHogFaceDetector(upsample=0)
    img = load_image("group/obama_biden_two_people.jpg")
    small = cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4), interpolation=cv2.INTER_AREA)  # faces ~37 px
    persons = yolo_onnx.detect(small, 0.35)
    assert len(persons) == 2
    kw = {"conf": 0.5, "min_face_px": 10, "min_crop_px": 640}
    no_upscale = detect_faces_in_persons(small, persons, hog0, max_upscale=1.0, **kw)
    upscaled = detect_faces_in_persons(small, persons, hog0, max_upscale=4.0, **kw)
    assert len(no_upscale) == 0 and len(upscaled) == 2
    # reported in the small frame's pixels, not the upscaled crop's
    assert (upscaled.widths < 60).all() and (upscaled.xyxy[:, 2] <= small.shape[1]).all()
    assert_boxes_hold_landmarks(upscaled)


def test_person_flow_no_persons_gives_no_faces(scrfd, load_image):
    img = load_image("group/kids_group8.jpg")
    out = detect_faces_in_persons(img, Detections.empty(), scrfd, conf=0.5, min_face_px=20)
    assert len(out) == 0 and out.xyxy.shape == (0, 4)


def test_flows_default_to_settings(scrfd, load_image, monkeypatch):
    from aas_core.config import get_settings

    img = load_image("group/kids_group8.jpg")
    monkeypatch.setenv("AAS_MIN_FACE_PX", "120")
    get_settings.cache_clear()
    try:
        faces = detect_faces_tiled(img, scrfd)
        assert 0 < len(faces) < 8 and np.minimum(faces.widths, faces.heights).min() >= 120
    finally:
        get_settings.cache_clear()


# --- detection schedule ----------------------------------------------------------------------


def test_schedule_scale_maps_the_smallest_face_to_the_detector_limit():
    assert schedule_scale(1080, 20) == pytest.approx(0.6)
    assert schedule_scale(2160, 20) == pytest.approx(0.3)  # 20 px at 1080 lines = 40 px at 4K
    assert schedule_scale(2160, 40, reference_height=None) == pytest.approx(0.3)
    assert schedule_scale(1080, 8) == 1.0  # never upscaled
    with pytest.raises(ValueError, match="find_face_px"):
        schedule_scale(1080, 0)


def test_merge_bands_clips_sorts_and_joins():
    assert merge_bands([(500, 600), (-20, 100), (90, 150), (700, 2000)], 1080) == [(0, 150), (500, 600), (700, 1080)]
    assert merge_bands([(0, 100), (120, 200)], 1080, gap=32) == [(0, 200)]
    assert merge_bands([(300, 300), (5000, 6000)], 1080) == []


def test_detect_scaled_returns_frame_coordinates(scrfd, small_faces_canvas):
    canvas, truth = small_faces_canvas
    dets = scrfd.detect_scaled(canvas, 0.6, 0.5)  # 1152x648 padded to 1152x672: 32-60 px crops -> 19-36 px
    assert _recall(dets, truth) >= 0.9  # the faces fill ~2/3 of each crop: the smallest are at SCRFD's limit
    assert (box_iou(dets.xyxy, truth).max(axis=1) > 0.5).mean() >= 0.9
    assert_boxes_hold_landmarks(dets)
    # a strip at full resolution (odd height, not a multiple of 32) maps back by its own offset only
    strip = scrfd.detect_scaled(canvas[200:517], 1.0, 0.5)
    inside = truth[(truth[:, 1] >= 200) & (truth[:, 3] <= 517)] - np.array([0, 200, 0, 200], np.float32)
    assert len(inside) and _recall(strip, inside) == 1.0


def test_detect_at_scale_resizes_for_other_backends(yunet, small_faces_canvas):
    canvas, truth = small_faces_canvas
    dets = detect_at_scale(yunet, canvas, 0.75, 0.5)
    assert _recall(dets, truth) >= 0.8
    assert (box_iou(dets.xyxy, truth).max(axis=1) > 0.5).mean() >= 0.9  # boxes in frame pixels


def test_schedule_finds_small_faces_in_one_whole_frame_pass(scrfd, small_faces_canvas):
    canvas, truth = small_faces_canvas
    faces = detect_faces_scheduled(canvas, scrfd, find_face_px=20, conf=0.5, min_face_px=16)
    assert _recall(faces, truth) >= max(0.9, _recall(scrfd.detect_scaled(canvas, 0.6, 0.5), truth))
    assert len(faces) <= len(truth) + 2 and SOURCE_FRAME in set(faces.source)
    assert_boxes_hold_landmarks(faces)


def test_schedule_refines_rows_whose_faces_sit_at_the_detector_limit(scrfd, small_faces_canvas):
    canvas, truth = small_faces_canvas
    coarse_only = scrfd.detect_scaled(canvas, 0.3, 0.5)  # what find_face_px=40 sees in one pass
    faces = detect_faces_scheduled(canvas, scrfd, find_face_px=40, conf=0.5, min_face_px=16)
    assert _recall(coarse_only, truth) < 0.5  # the faces are 6-12 px at 0.3: most missed
    assert _recall(faces, truth) >= 2 * _recall(coarse_only, truth)  # strips at 0.45 around those at the limit
    assert SOURCE_TILE in set(faces.source)
    iou = box_iou(faces.xyxy, faces.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.4  # strips and the coarse pass merged, no duplicates


def test_refine_landmarks_brings_coarse_landmarks_to_native_precision(scrfd, small_faces_canvas):
    canvas, _ = small_faces_canvas
    native = scrfd.detect_scaled(canvas, 1.0, 0.5)
    coarse = scrfd.detect_scaled(canvas, 0.5, 0.5)
    refined = refine_landmarks(canvas, coarse, scrfd, np.full(len(coarse), 0.5), 0.5, target_px=64)
    assert len(refined) == len(coarse) and list(refined.source) == list(coarse.source)
    assert (refined.confidence >= coarse.confidence).all()
    j = box_iou(coarse.xyxy, native.xyxy).argmax(axis=1)
    size = native.widths[j][:, None]

    def err(d: Detections) -> float:  # mean landmark distance to the native pass, in face widths
        return float((np.linalg.norm(d.landmarks - native.landmarks[j], axis=2) / size).mean())

    assert err(refined) < 0.65 * err(coarse)  # measured: 3.4 % -> 1.8 % of the face width
    assert_boxes_hold_landmarks(refined)


def test_schedule_back_rows_are_always_refined(yunet, load_image):
    img = load_image("group/kids_group8.jpg")
    plain = detect_faces_scheduled(img, yunet, find_face_px=200, conf=0.5, min_face_px=20)
    rows = detect_faces_scheduled(img, yunet, find_face_px=200, conf=0.5, min_face_px=20, back_rows=((0.0, 1.0),))
    assert len(rows) >= len(plain)
    assert SOURCE_TILE in set(rows.source)


_IMG = np.zeros((10, 10, 3), np.uint8)
_NO_PERSONS = Detections.empty()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: detect_faces_in_persons(np.zeros((10, 10), np.uint8), _NO_PERSONS, d, conf=0.5), "3-channel"),
        (lambda d: detect_faces_in_persons(_IMG, [[0, 0, 5, 5]], d, conf=0.5), "Detections"),
        (lambda d: detect_faces_in_persons(_IMG, _NO_PERSONS, d, conf=2.0), "conf"),
        (lambda d: detect_faces_in_persons(_IMG, _NO_PERSONS, d, 0.1, 0.5, -1), "min_face_px"),
        (lambda d: detect_faces_in_persons(_IMG, _NO_PERSONS, d, conf=0.5, max_upscale=0.5), "max_upscale"),
        (lambda d: detect_faces_tiled(np.zeros((0, 10, 3), np.uint8), d, conf=0.5), "empty"),
        (lambda d: detect_faces_tiled(np.zeros((100, 100, 3), np.uint8), d, tile=8, conf=0.5), "tile must be"),
        (lambda d: detect_faces_scheduled(_IMG, d, find_face_px=-1, conf=0.5), "find_face_px"),
        (lambda d: detect_faces_scheduled(_IMG, d, find_face_px=20, conf=0.5, refine_factor=0.5), "refine_factor"),
        (lambda d: d.detect_scaled(_IMG, 0.0, 0.5), "scale"),
    ],
)
def test_flow_input_validation(scrfd, call, message):
    with pytest.raises(ValueError, match=message):
        call(scrfd)
