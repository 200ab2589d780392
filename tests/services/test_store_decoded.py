"""The store's decoded images (``media.store.DECODED``): a written or read image is served from
memory only while its file is the version this process wrote or read; reads at display size;
the display helpers (``media.draw.fit``, ``display_jpeg``)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from aas_core.media import draw
from aas_core.media.store import DECODED, DecodedCache, ImageStore


def _picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 3)


@pytest.fixture()
def store(tmp_path: Path) -> ImageStore:
    DECODED.clear()
    return ImageStore(tmp_path / "data")


def test_a_written_image_is_served_from_memory_as_the_callers_own_copy(store: ImageStore) -> None:
    img = _picture(60, 80)
    rel = store.save("crops", img, ext=".png")  # lossless: the file and the memory agree exactly
    path = store.path(rel)
    assert DECODED.get(path, DecodedCache.identity(path)) is not None
    a = store.load(rel)
    assert np.array_equal(a, img) and a.flags.writeable
    a[:] = 0  # the caller's copy: what the next reader gets is unchanged
    assert np.array_equal(store.load(rel), img)
    img[:] = 255  # nor does the writer's array, changed after the write
    assert np.array_equal(store.load(rel), cv2.imread(str(path)))


def test_a_file_replaced_behind_the_stores_back_is_read_again(store: ImageStore) -> None:
    rel = store.save("snapshots", _picture(60, 80, 1), ext=".png")
    path = store.path(rel)
    other = _picture(60, 80, 2)
    tmp = path.with_name("x.png")
    cv2.imwrite(str(tmp), other)
    os.replace(tmp, path)  # another process (a worker, the CLI) wrote a new version
    assert np.array_equal(store.load(rel), other)


def test_overwrite_and_delete_never_leave_the_old_picture_served(store: ImageStore) -> None:
    rel = store.save("snapshots", _picture(60, 80, 1), ext=".png")
    blacked = _picture(60, 80, 1)
    blacked[10:30, 10:30] = 0  # a face blacked out (withdrawal, erasure)
    store.overwrite(rel, blacked)
    assert np.array_equal(store.load(rel), blacked)
    store.delete(rel)
    with pytest.raises(FileNotFoundError):
        store.load(rel)
    path = store.path(rel)
    assert DECODED.get(path, DecodedCache.identity(path)) is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = DecodedCache(max_bytes=4 * 30_000)
    imgs = [np.full((100, 100, 3), k, np.uint8) for k in range(5)]  # 30 kB each
    for k, img in enumerate(imgs):
        cache.put(Path(f"/x/{k}"), (k, 0, 0), img)
    assert cache.nbytes <= cache.max_bytes
    assert cache.get(Path("/x/0"), (0, 0, 0)) is None
    assert cache.get(Path("/x/4"), (4, 0, 0)) is not None
    assert cache.get(Path("/x/4"), (4, 1, 0)) is None  # another version of the file
    with pytest.raises(ValueError):
        cache._items[str(Path("/x/3"))][1][0, 0, 0] = 1  # entries are read-only


def test_display_reads_are_fitted_and_decoded_small_when_not_in_memory(store: ImageStore) -> None:
    big = _picture(1000, 2000)
    rel = store.save("snapshots", big, quality=95)
    assert store.size(rel) == (2000, 1000)
    warm = store.load(rel, max_side=400)
    DECODED.clear()
    assert store.size(rel) == (2000, 1000)  # from the JPEG header
    cold = store.load(rel, max_side=400)  # decoded at 1/4 (500 px), then fitted
    assert warm.shape == cold.shape == (200, 400, 3)
    assert float(np.abs(warm.astype(int) - cold.astype(int)).mean()) < 6  # the same picture
    assert store.load(rel).shape == (1000, 2000, 3)


def test_fit_halves_then_interpolates_to_the_exact_size() -> None:
    img = _picture(1081, 1921)
    for side in (1440, 960, 700, 333, 1921, 3000):
        out = draw.fit(img, side)
        s = min(1.0, side / 1921)
        assert out.shape == (max(1, round(1081 * s)), max(1, round(1921 * s)), 3), side
    flat = np.full((2160, 3840, 3), 128, np.uint8)
    assert int(np.abs(draw.fit(flat, 1440).astype(int) - 128).max()) == 0  # no seams from the halving


def test_display_jpeg_and_boxes_drawn_on_a_display_size_copy() -> None:
    img = _picture(1080, 1920)
    data = draw.display_jpeg(img)
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert data[:2] == b"\xff\xd8" and dec.shape == (810, 1440, 3)
    # boxes in the stored image's pixels, drawn on a copy read at display size (the review)
    small = draw.fit(img, draw.DISPLAY_MAX_SIDE)
    out = draw.draw_observations(small, [(100, 100, 300, 300)], ["s1"], [True], source_width=1920)
    same = draw.draw_observations(img, [(100, 100, 300, 300)], ["s1"], [True], max_side=draw.DISPLAY_MAX_SIDE)
    assert np.array_equal(out, same)
    edge = out[100:200, 73:78].astype(int)  # the green edge at x = 75 (0.75 x 100)
    assert (edge[..., 1] - edge[..., 2]).mean() > 60
