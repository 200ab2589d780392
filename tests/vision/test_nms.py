"""Box overlap, NMS and merge_duplicates on hand-made boxes; Detections validation."""

from __future__ import annotations

import numpy as np
import pytest

from aas_core.vision.nms import box_ios, box_iou, clip_boxes, filter_min_size, merge_duplicates, nms
from aas_core.vision.types import SOURCE_PERSON, SOURCE_TILE, Detections


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [20, 20, 30, 30], [2, 2, 4, 4]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 0.0, 4 / 100], rtol=1e-6)
    # IoS: the small box fully inside the big one counts as a full overlap.
    np.testing.assert_allclose(box_ios(a, b)[0], [1.0, 0.5, 0.0, 0.0, 1.0], rtol=1e-6)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 5)


def test_box_iou_degenerate_boxes_give_zero_not_nan():
    z = np.array([[5, 5, 5, 5]], np.float32)  # zero area
    out = box_iou(z, z)
    assert out.shape == (1, 1) and out[0, 0] == 0.0


def test_box_iou_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou(np.zeros((3, 5)), np.zeros((1, 4)))


def test_nms_keeps_best_of_each_cluster_in_score_order():
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [51, 50, 61, 60], [100, 0, 110, 10]], np.float32
    )
    scores = np.array([0.6, 0.9, 0.5, 0.7, 0.1], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 4]


def test_nms_threshold_is_strict_greater():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)  # IoU = 1/3
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 1 / 3 + 1e-6).tolist() == [0, 1]
    assert nms(boxes, scores, 0.3).tolist() == [0]


def test_nms_validates_inputs():
    with pytest.raises(ValueError, match="scores has 1 entries for 2 boxes"):
        nms(np.zeros((2, 4)), np.zeros(1))
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(np.zeros((1, 4)), np.zeros(1), 1.5)
    with pytest.raises(ValueError, match="metric"):
        nms(np.zeros((1, 4)), np.zeros(1), 0.5, metric="giou")  # type: ignore[arg-type]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_nms_matches_bruteforce_on_random_boxes():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    wh = rng.uniform(5, 60, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    keep = nms(boxes, scores, 0.45)
    # brute force greedy reference
    order = np.argsort(-scores, kind="stable")
    ref: list[int] = []
    for i in order:
        if all(box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= 0.45 for j in ref):
            ref.append(int(i))
    assert keep.tolist() == ref
    iou = box_iou(boxes[keep], boxes[keep])
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.45


def _faces() -> Detections:
    """Face A seen by two person crops (slightly shifted), face B once, face C by a tile."""
    return Detections(
        xyxy=[[100, 100, 140, 150], [102, 101, 141, 152], [300, 100, 330, 140], [104, 99, 142, 149]],
        confidence=[0.80, 0.91, 0.70, 0.60],
        landmarks=np.arange(4 * 10, dtype=np.float32).reshape(4, 5, 2),
        source=[SOURCE_PERSON, SOURCE_PERSON, SOURCE_PERSON, SOURCE_TILE],
    )


def test_merge_duplicates_keeps_highest_score_with_its_landmarks_and_source():
    dets = _faces()
    merged = merge_duplicates(dets, iou=0.4)
    assert len(merged) == 2
    np.testing.assert_allclose(merged.confidence, [0.91, 0.70])
    np.testing.assert_allclose(merged.xyxy[0], [102, 101, 141, 152])
    np.testing.assert_array_equal(merged.landmarks[0], dets.landmarks[1])  # travels with its box
    assert list(merged.source) == [SOURCE_PERSON, SOURCE_PERSON]


def test_merge_duplicates_ios_merges_a_cut_off_copy_that_iou_keeps():
    whole = [100, 100, 140, 150]
    top_half = [100, 100, 140, 125]  # a face cut by a tile edge: IoU 0.5, IoS 1.0
    dets = Detections(xyxy=[whole, top_half], confidence=[0.9, 0.95])
    assert len(merge_duplicates(dets, iou=0.6)) == 2
    assert len(merge_duplicates(dets, iou=0.6, metric="ios")) == 1


def test_merge_duplicates_on_empty_and_single():
    assert len(merge_duplicates(Detections.empty())) == 0
    one = Detections(xyxy=[[0, 0, 5, 5]], confidence=[0.3])
    assert len(merge_duplicates(one)) == 1


def test_filter_min_size_uses_shorter_side():
    dets = Detections(xyxy=[[0, 0, 19, 100], [0, 0, 20, 20], [0, 0, 50, 21]], confidence=[0.9, 0.8, 0.7])
    kept = filter_min_size(dets, 20)
    np.testing.assert_allclose(kept.confidence, [0.8, 0.7])
    assert len(filter_min_size(dets, 0)) == 3


def test_clip_boxes_keeps_landmarks():
    dets = Detections(xyxy=[[-5, -5, 50, 70]], confidence=[0.9], landmarks=np.full((1, 5, 2), -1.0))
    out = clip_boxes(dets, 40, 60)
    np.testing.assert_allclose(out.xyxy[0], [0, 0, 40, 60])
    np.testing.assert_allclose(out.landmarks, -1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": np.zeros((2, 4)), "confidence": np.zeros(3)}, "confidence has 3 entries for 2 boxes"),
        ({"xyxy": np.zeros((2, 4)), "confidence": np.zeros(2), "landmarks": np.zeros((1, 5, 2))}, "landmarks has 1"),
        ({"xyxy": np.zeros((2, 4)), "confidence": np.zeros(2), "source": ["frame"]}, "source has 1 entries"),
    ],
)
def test_detections_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_detections_reshapes_and_indexes():
    d = Detections(xyxy=[1, 2, 3, 4, 5, 6, 7, 8], confidence=[0.5, 0.6])
    assert d.xyxy.shape == (2, 4) and d.xyxy.dtype == np.float32
    assert list(d.source) == ["frame", "frame"]
    assert len(d[1]) == 1 and d[1].confidence[0] == pytest.approx(0.6)
    shifted = d.shifted(10, 20, scale=2.0)
    np.testing.assert_allclose(shifted.xyxy[0], [10.5, 21, 11.5, 22])
