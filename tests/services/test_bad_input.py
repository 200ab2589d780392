"""Bad uploads: every one is refused (or handled) with a clear reason, and nothing is half-written.

Decoding cases run without models; enrollment cases use the real 'fast' pipeline on real
photos (faces_dev, the kids group photo). After every enrollment attempt the test checks
that no ``FaceSample`` row and no file under the data dir exist for what was refused.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import FaceSample
from aas_core.media.decode import ImageError, decode_image
from aas_core.media.store import ImageStore
from aas_core.media.video import sample_video_frames


def _faces_dev_photo(data_dir: Path) -> Path:
    return sorted((data_dir / "faces_dev").glob("*/*.jpg"))[0]


def _jpeg_bytes(data_dir: Path) -> bytes:
    return _faces_dev_photo(data_dir).read_bytes()


def _png_bytes(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    """A valid 1-bit PNG of w x h pixels in a few dozen KB (all rows zero, max compression)."""
    row = b"\x00" * (1 + (w + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# --- decoding ----------------------------------------------------------------------------------

def test_non_image_bytes_are_refused() -> None:
    for data in (b"%PDF-1.7 not a photo", b"\x00" * 100, "héllo".encode(), b"GIF89a\x01"):
        with pytest.raises(ImageError, match="not an image|truncated|corrupt"):
            decode_image(data, name="x")
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", name="x")


def test_truncated_jpeg_and_png_are_refused(data_dir: Path) -> None:
    jpg = _jpeg_bytes(data_dir)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(jpg[: len(jpg) // 2], name="half.jpg")
    png = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(png[: len(png) // 2], name="half.png")


def test_decompression_bomb_is_refused_from_the_header_fast() -> None:
    data = bomb_png()
    assert len(data) < 100_000  # 400 megapixels in a few dozen KB
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="larger than the|too large to decode"):
        decode_image(data, name="bomb.png")
    assert time.perf_counter() - t0 < 1.0
    # a palette PNG made with PIL, above our 50 MP limit but below PIL's own bomb limit:
    # refused by decode_image's header check before any pixel is decoded
    pal = _png_bytes(Image.new("P", (8000, 8000)))
    assert len(pal) < 200_000
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="8000x8000 pixels is larger than the 50 MP limit"):
        decode_image(pal, name="pal.png")
    assert time.perf_counter() - t0 < 1.0


def test_sixteen_bit_png_is_scaled_to_8_bit() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (32, 1))
    img = decode_image(_png_bytes(Image.fromarray(ramp)), name="16bit.png")
    assert img.dtype == np.uint8 and img.shape == (32, 256, 3)
    assert img[0, 0, 0] == 0 and img[0, -1, 0] == 255 and np.all(np.diff(img[0, :, 0].astype(int)) >= 0)


def test_rgba_png_is_composited_on_white() -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    img = decode_image(_png_bytes(Image.fromarray(rgba, "RGBA")), name="rgba.png")
    assert img.shape == (40, 40, 3)
    assert tuple(img[5, 5]) == (0, 0, 255)  # BGR red
    assert tuple(img[5, 35]) == (255, 255, 255)


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = np.random.default_rng(1).integers(0, 255, (30, 50), dtype=np.uint8)
    img = decode_image(_png_bytes(Image.fromarray(gray, "L")), name="g.png")
    assert img.shape == (30, 50, 3)
    assert np.array_equal(img[..., 0], gray) and np.array_equal(img[..., 1], gray)


def test_exif_orientation_is_applied() -> None:
    arr = np.zeros((100, 200, 3), np.uint8)  # 200 wide, 100 high: left half red, right half blue
    arr[:, :100] = (255, 0, 0)
    arr[:, 100:] = (0, 0, 255)
    im = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif, quality=95)
    img = decode_image(buf.getvalue(), name="rotated.jpg")
    assert img.shape == (200, 100, 3)  # displayed portrait
    top, bottom = img[20, 50], img[180, 50]  # the stored left (red) side is displayed on top
    assert top[2] > 200 and top[0] < 60 and bottom[0] > 200 and bottom[2] < 60


def test_tiny_and_oversized_files_are_refused() -> None:
    with pytest.raises(ImageError, match="too small"):
        decode_image(_png_bytes(Image.new("RGB", (4, 4))), name="dot.png")
    with pytest.raises(ImageError, match="MB limit"):
        decode_image(b"\xff\xd8" + b"\x00" * 2000, name="big.jpg", max_bytes=1000)


# --- enrollment ----------------------------------------------------------------------------------

def _upload(url: str, sn: str, files: Iterable[tuple[str, bytes]], pipeline, store: ImageStore,
            settings: Settings) -> tuple[list[str], list]:  # type: ignore[no-untyped-def]
    """What the Students page does: decode each upload, enroll what decodes, one transaction."""
    from aas_core.services.enrollment import enroll_images

    errors, images = [], []
    for name, data in files:
        try:
            images.append((name, decode_image(data, name=name)))
        except ImageError as exc:
            errors.append(str(exc))
    outcomes = []
    if images:
        with session_scope(url) as s:
            outcomes = enroll_images(s, repo.get_student(s, sn), images, pipeline, store, settings, actor="test")
    return errors, outcomes


def _nothing_stored(url: str, store: ImageStore) -> None:
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(FaceSample)) == 0
    assert store.all_files() == []


@pytest.fixture
def student_db(sqlite_url: str) -> str:
    from aas_core.db import init_db

    init_db(sqlite_url)
    with session_scope(sqlite_url) as s:
        repo.add_student(s, "S1", "Ada", consent=True)
        repo.add_student(s, "S2", "Bob", consent=False)
    return sqlite_url


def _encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_undecodable_uploads_store_nothing(student_db: str, store: ImageStore, settings: Settings,
                                           fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    jpg = _jpeg_bytes(data_dir)
    files = [("doc.pdf", b"%PDF-1.4"), ("half.jpg", jpg[: len(jpg) // 3]), ("bomb.png", bomb_png())]
    errors, outcomes = _upload(student_db, "S1", files, fast_pipeline, store, settings)
    assert len(errors) == 3 and outcomes == []
    _nothing_stored(student_db, store)


def test_no_face_is_rejected(student_db: str, store: ImageStore, settings: Settings, fast_pipeline) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    blank = np.full((480, 640, 3), 190, np.uint8)
    landscape = np.zeros((480, 640, 3), np.uint8)
    landscape[:240] = (235, 190, 120)  # sky
    landscape[240:] = (60, 140, 70)  # grass
    landscape = cv2.add(landscape, rng.integers(0, 20, landscape.shape, dtype=np.uint8))
    _, outcomes = _upload(student_db, "S1", [("blank.png", _encode(blank, ".png")), ("land.jpg", _encode(landscape))],
                          fast_pipeline, store, settings)
    assert [o.accepted for o in outcomes] == [False, False]
    assert all("no face found" in o.reasons for o in outcomes)
    _nothing_stored(student_db, store)


def test_several_faces_follow_the_enrollment_rule(student_db: str, store: ImageStore, settings: Settings,
                                                  fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    group = (data_dir / "group" / "kids_group8.jpg").read_bytes()
    _, [o] = _upload(student_db, "S1", [("group.jpg", group)], fast_pipeline, store, settings)
    if o.accepted:  # rule: a clearly dominant face is used, with a warning
        assert any("used the largest" in w for w in o.warnings)
        with session_scope(student_db) as s:
            assert s.scalar(select(func.count()).select_from(FaceSample)) == 1
        assert len(store.all_files()) == 1
    else:  # rule: several faces of similar size -> refused, nothing stored
        assert any("faces" in r for r in o.reasons), o.reasons
        _nothing_stored(student_db, store)


def test_tiny_face_is_rejected_as_too_small(student_db: str, store: ImageStore, settings: Settings,
                                            fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    face = cv2.imread(str(_faces_dev_photo(data_dir)))
    tiny = cv2.resize(face, (30, 30), interpolation=cv2.INTER_AREA)
    _, [o] = _upload(student_db, "S1", [("tiny.png", _encode(tiny, ".png"))], fast_pipeline, store, settings)
    assert not o.accepted
    assert any("too small" in r for r in o.reasons), o.reasons
    _nothing_stored(student_db, store)


def test_good_photo_is_accepted_and_stored_once(student_db: str, store: ImageStore, settings: Settings,
                                                fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The control case: the same path does store a good photo (file + row)."""
    _, [o] = _upload(student_db, "S1", [("ok.jpg", _jpeg_bytes(data_dir))], fast_pipeline, store, settings)
    assert o.accepted, o.reasons
    with session_scope(student_db) as s:
        [sample] = s.scalars(select(FaceSample)).all()
        assert store.path(sample.image_path).is_file() and len(store.all_files()) == 1


def test_unusual_but_valid_photos_are_enrolled(student_db: str, store: ImageStore, settings: Settings,
                                               fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """RGBA, grayscale, 16-bit and EXIF-rotated photos all enroll (as BGR samples).

    Four different photos of one person: four versions of the *same* photo would be refused
    as duplicates of the first."""
    person = [data_dir / "faces_dev" / "glint_Barack_Obama" / f"{i}.jpg" for i in (1, 2, 3, 4)]
    rgb = [Image.open(p).convert("RGB").resize((224, 224), Image.BICUBIC) for p in person]
    gray16 = Image.fromarray((np.asarray(rgb[2].convert("L"), np.uint16) * 257))
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90 deg counter-clockwise; viewers rotate it back
    rgb[3].rotate(90, expand=True).save(rotated, format="JPEG", exif=exif, quality=95)
    files = [("rgba.png", _png_bytes(rgb[0].convert("RGBA"))), ("gray.png", _png_bytes(rgb[1].convert("L"))),
             ("gray16.png", _png_bytes(gray16)), ("rotated.jpg", rotated.getvalue())]
    errors, outcomes = _upload(student_db, "S1", files, fast_pipeline, store, settings)
    assert errors == []
    assert [o.accepted for o in outcomes] == [True] * 4, [o.line() for o in outcomes]
    rot = next(o for o in outcomes if o.name == "rotated.jpg")
    assert abs(rot.figures["roll_deg"]) < 20  # upright after the EXIF rotation, not sideways
    with session_scope(student_db) as s:
        samples = s.scalars(select(FaceSample)).all()
        assert len(samples) == 4
        assert all(store.load(x.image_path).shape[2] == 3 for x in samples)


def test_without_consent_nothing_is_stored(student_db: str, store: ImageStore, settings: Settings,
                                           fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermissionError, match="consent"):
        _upload(student_db, "S2", [("ok.jpg", _jpeg_bytes(data_dir))], fast_pipeline, store, settings)
    _nothing_stored(student_db, store)


def test_failure_midway_leaves_no_orphan_file(student_db: str, store: ImageStore, settings: Settings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Photo 1 is stored, photo 2 crashes the embedder: the transaction rolls back and photo 1's file goes too.

    Runs the real enrollment code with the seat-strip stand-in for the vision stack (fake_vision).
    """
    from fake_vision import FakePipeline, scene

    from aas_core.services import enrollment

    pipe = FakePipeline()
    real = enrollment.assess_and_embed
    calls = {"n": 0}

    def flaky(*a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("embedder crashed")
        return real(*a, **k)

    monkeypatch.setattr(enrollment, "assess_and_embed", flaky)
    photo = _encode(scene({0}), ".png")
    # A second, different photo of the same face (the same file twice is refused as a duplicate).
    other = scene({0})
    other[:20] = np.linspace(0, 255, other.shape[1]).astype(np.uint8)[None, :, None]
    photo2 = _encode(other, ".png")
    with pytest.raises(RuntimeError):
        _upload(student_db, "S1", [("a.png", photo), ("b.png", photo2)], pipe, store, settings)
    assert calls["n"] == 2
    _nothing_stored(student_db, store)
    monkeypatch.undo()  # control: the same upload without the crash stores both
    _, outcomes = _upload(student_db, "S1", [("a.png", photo), ("b.png", photo2)], pipe, store, settings)
    assert [o.accepted for o in outcomes] == [True, True] and len(store.all_files()) == 2


# --- video -----------------------------------------------------------------------------------------

def _write_avi(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def test_video_of_blank_frames_gives_a_clear_message(tmp_path: Path) -> None:
    blank = [np.zeros((240, 320, 3), np.uint8) for _ in range(30)]
    p = _write_avi(tmp_path / "blank.avi", blank)
    with pytest.raises(ValueError, match="blank.avi: no usable frame: all .* blank"):
        sample_video_frames(p, every_s=0.5, max_frames=10)


def test_non_video_and_empty_files_give_a_clear_message(tmp_path: Path) -> None:
    junk = tmp_path / "clip.avi"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00AVI junk" * 10)
    with pytest.raises(ValueError, match="clip.avi: (not a readable video|no frame could be decoded)"):
        sample_video_frames(junk)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mp4"):
        sample_video_frames(empty)
    with pytest.raises(ValueError, match="not found"):
        sample_video_frames(tmp_path / "missing.mp4")


def test_video_sampling_takes_one_frame_per_interval(tmp_path: Path) -> None:
    frames = []
    for i in range(50):  # 5 s at 10 fps, each frame numbered by its brightness pattern
        f = np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8)
        frames.append(f)
    p = _write_avi(tmp_path / "clip.avi", frames)
    got = sample_video_frames(p, every_s=1.0, max_frames=10)
    assert len(got) == 5 and all(g.shape == (120, 160, 3) and g.dtype == np.uint8 for g in got)
    assert len(sample_video_frames(p, every_s=0.1, max_frames=7)) == 7


def test_video_with_a_face_gives_enrollment_frames(tmp_path: Path, store: ImageStore, settings: Settings,
                                                   fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from aas_core.media.video import best_enrollment_frames

    face = cv2.imread(str(_faces_dev_photo(data_dir)))
    canvas = np.full((360, 480, 3), 120, np.uint8)
    big = cv2.resize(face, (224, 224), interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(20):
        f = canvas.copy()
        f[60:284, 100 + 4 * i:324 + 4 * i] = big  # the head moves a little
        frames.append(f)
    frames[:5] = [np.zeros_like(canvas)] * 5  # lens cap at the start
    p = _write_avi(tmp_path / "me.avi", frames)
    sampled = sample_video_frames(p, every_s=0.2, max_frames=10)
    chosen = best_enrollment_frames(sampled, fast_pipeline, settings, k=3, name="me.avi")
    assert 1 <= len(chosen) <= 3 and all(n.startswith("me.avi#") for n, _ in chosen)
    blank_frames = [np.full((360, 480, 3), 90, np.uint8)] * 3
    with pytest.raises(ValueError, match="no usable frame"):
        best_enrollment_frames(blank_frames, fast_pipeline, settings, name="x.avi")
    assert store.all_files() == []


def test_only_photo_formats_are_decoded() -> None:
    """EPS would run Ghostscript, GIF/ICO/TGA/PDF are no photos: refused by content, not by name."""
    from aas_core.media.decode import ALLOWED_FORMATS

    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF"):
        buf = io.BytesIO()
        Image.new("RGB", (20, 16), (10, 20, 30)).save(buf, format=fmt)
        assert decode_image(buf.getvalue(), name=f"x.{fmt}").shape == (16, 20, 3)
    for fmt in ("GIF", "EPS", "PDF", "ICO", "TGA", "PCX"):
        buf = io.BytesIO()
        Image.new("RGB", (20, 16), (10, 20, 30)).save(buf, format=fmt)
        with pytest.raises(ImageError, match="not an image file"):
            decode_image(buf.getvalue(), name="photo.jpg")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 20 20\n"
    with pytest.raises(ImageError):
        decode_image(eps, name="photo.jpg")
    assert "JPEG" in ALLOWED_FORMATS
