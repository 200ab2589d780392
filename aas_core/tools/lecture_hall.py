"""Hard synthetic lecture halls: what a ceiling camera really sees, with known ground truth.

``synthetic.make_session`` builds clean classrooms (faces 36-100 px, even light, no noise);
the tests use those. This module degrades the same kind of room the way a lecture hall
does, per :class:`Conditions`:

* small faces (26-80 px at 1080p), the same room at 4K with faces twice as large;
* dim and uneven light: a global gain, a lateral falloff (windows on one side) and a
  vignette, then a gamma curve;
* sensor noise (Gaussian, sigma per session) and JPEG compression at a low quality;
* per face: motion blur (a student moving), head tilt (in-plane roll), a hand or a book over
  part of the face, glare on glasses;
* rows that hide each other: a front-row head partly in front of a back-row face.

Every scheduled snapshot is a **burst** of frames (default 5): the room and the people are
the same, each frame has its own sensor noise, a pixel or two of jitter and its own motion
blur, as consecutive frames of a camera are. Faces keep their boxes across the burst
(up to the jitter), so the ground truth of frame 0 holds for all.

Everything is drawn from a seeded ``numpy`` generator: a (conditions, seed) pair always
gives the same session.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from aas_core.tools.synthetic import (
    PATTERNS_3,
    FaceLocator,
    Scene,
    SceneFace,
    _background,
    _load,
    _paste_face,
    pick_class,
    seat_grid,
)


@dataclass(frozen=True)
class Conditions:
    """How hard the room is. Ranges are drawn per session (light, noise, JPEG) or per face."""

    name: str
    size: tuple[int, int] = (1080, 1920)  # (height, width)
    face_px: tuple[float, float] = (26.0, 80.0)  # back row .. front row, at this resolution
    gain: tuple[float, float] = (0.45, 1.0)  # global exposure
    falloff: float = 0.45  # light lost across the room (0 = even)
    vignette: float = 0.25
    gamma: tuple[float, float] = (1.0, 1.5)
    noise_sigma: tuple[float, float] = (3.0, 9.0)
    jpeg_quality: tuple[int, int] = (55, 75)
    motion_blur_share: float = 0.20
    tilt_share: float = 0.40
    max_tilt_deg: float = 18.0
    occluded_share: float = 0.12
    glare_share: float = 0.0
    row_overlap_share: float = 0.0  # back-row faces partly hidden by a head in front
    burst: int = 5
    jitter_px: float = 1.5

    def at_4k(self) -> Conditions:
        """The same room through a 3840x2160 camera: every face twice as many pixels."""
        h, w = self.size
        lo, hi = self.face_px
        return replace(self, name=f"{self.name}_4k", size=(h * 2, w * 2), face_px=(lo * 2, hi * 2))


#: The benchmark's conditions. ``clean`` is the easy room of the tests for reference.
CONDITIONS: dict[str, Conditions] = {c.name: c for c in (
    Conditions("clean", face_px=(36, 90), gain=(1.0, 1.0), falloff=0.0, vignette=0.0, gamma=(1.0, 1.0),
               noise_sigma=(0.5, 1.5), jpeg_quality=(80, 80), motion_blur_share=0.0, tilt_share=0.0,
               occluded_share=0.0),
    Conditions("lecture_hall"),
    Conditions("lecture_hall_bright", gain=(1.0, 1.0), falloff=0.0, vignette=0.0, gamma=(1.0, 1.0),
               noise_sigma=(0.0, 0.0), jpeg_quality=(85, 85)),
    Conditions("crowded_rows", glare_share=0.15, row_overlap_share=0.25),
)}
CONDITIONS["lecture_hall_4k"] = CONDITIONS["lecture_hall"].at_4k()


@dataclass
class FaceLook:
    """What stays the same for one face through a session (the person, not the frame)."""

    tilt_deg: float = 0.0
    blur_len: float = 0.0  # motion blur length in px at 1080p-equivalent face size; 0 = still
    blur_angle: float = 0.0
    occluder: tuple[float, float, float, tuple[int, int, int]] | None = None  # (side, top, height, colour)
    glare: bool = False
    hidden_by_front_row: float = 0.0  # share of the face width covered from below


@dataclass
class Burst:
    """The frames of one scheduled snapshot and its ground truth (boxes of frame 0)."""

    frames: list[np.ndarray]
    faces: list[SceneFace]

    def scene(self, k: int = 0) -> Scene:
        return Scene(self.frames[k], self.faces)


@dataclass
class HardSession:
    conditions: Conditions
    seed: int
    enroll: dict[str, list[Path]]
    truth: dict[str, str]
    strangers: list[str]
    bursts: list[Burst] = field(default_factory=list)

    def write(self, out: Path) -> list[Path]:
        """One folder per snapshot (``snapshot_1/frame_1.jpg`` ...): the ``aas session run`` burst contract."""
        dirs = []
        for i, b in enumerate(self.bursts, 1):
            d = out / f"snapshot_{i}"
            d.mkdir(parents=True, exist_ok=True)
            for j, frame in enumerate(b.frames, 1):
                cv2.imwrite(str(d / f"frame_{j}.png"), frame)  # already JPEG-degraded: store losslessly
            dirs.append(d)
        return dirs


# --- per-face effects ------------------------------------------------------------------------------

def _face_region(box: Sequence[float], shape: tuple[int, ...], pad: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    H, W = shape[:2]
    return (max(0, int(x1 - pad * w)), max(0, int(y1 - pad * h)), min(W, int(math.ceil(x2 + pad * w))),
            min(H, int(math.ceil(y2 + pad * h))))


def _tilt(img: np.ndarray, box: Sequence[float], deg: float) -> None:
    """Roll the head in place: rotate the region around the face and blend it with an ellipse."""
    x1, y1, x2, y2 = _face_region(box, img.shape, 0.35)
    roi = img[y1:y2, x1:x2]
    if roi.size == 0:
        return
    h, w = roi.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    rot = cv2.warpAffine(roi, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.45), int(h * 0.47)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.05 * w))[..., None]
    img[y1:y2, x1:x2] = (rot * mask + roi * (1 - mask)).astype(np.uint8)


def _motion_blur(img: np.ndarray, box: Sequence[float], length: float, angle: float) -> None:
    n = int(round(length))
    if n < 2:
        return
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), angle, 1.0), (n, n))
    k /= max(k.sum(), 1e-6)
    x1, y1, x2, y2 = _face_region(box, img.shape, 0.3)
    if x2 - x1 > n and y2 - y1 > n:
        img[y1:y2, x1:x2] = cv2.filter2D(img[y1:y2, x1:x2], -1, k, borderType=cv2.BORDER_REFLECT)


def _occlude(img: np.ndarray, box: Sequence[float], side: float, top: float, height: float,
             colour: tuple[int, int, int]) -> None:
    """A hand or a book over the lower part of the face (from the left or the right)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    oy1 = int(y1 + top * h)
    oy2 = int(min(img.shape[0], oy1 + height * h))
    ox1, ox2 = (int(x1 - 0.1 * w), int(x1 + 0.55 * w)) if side < 0.5 else (int(x1 + 0.45 * w), int(x2 + 0.1 * w))
    ox1, ox2 = max(0, ox1), min(img.shape[1], ox2)
    if ox2 > ox1 and oy2 > oy1:
        cv2.rectangle(img, (ox1, oy1), (ox2, oy2), colour, -1)


def _glare(img: np.ndarray, box: Sequence[float]) -> None:
    """Lights reflected in glasses: two bright ellipses over the eyes."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    ey = int(y1 + 0.38 * h)
    for ex in (x1 + 0.32 * w, x1 + 0.68 * w):
        overlay = img.copy()
        cv2.ellipse(overlay, (int(ex), ey), (max(1, int(0.13 * w)), max(1, int(0.07 * h))), 0, 0, 360,
                    (250, 250, 250), -1)
        cv2.addWeighted(overlay, 0.75, img, 0.25, 0, dst=img)


def _front_row_head(img: np.ndarray, box: Sequence[float], share: float, colour: tuple[int, int, int]) -> None:
    """The back of a head in the row in front covering the lower ``share`` of this face."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    top = y2 - share * h  # the head's crown reaches this high on the face
    cv2.ellipse(img, (int(x1 + 0.5 * w), int(top + 0.6 * h)), (int(0.75 * w), int(0.6 * h)), 0, 0, 360, colour, -1)


# --- light, noise, compression --------------------------------------------------------------------

@dataclass(frozen=True)
class Exposure:
    gain: float
    gamma: float
    noise_sigma: float
    jpeg_quality: int
    window_left: bool


def _light_map(h: int, w: int, c: Conditions, e: Exposure) -> np.ndarray:
    x = np.linspace(0, 1, w, dtype=np.float32)
    lateral = 1.0 - c.falloff * (x if e.window_left else 1 - x)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = 1.0 - c.vignette * np.clip(r2 / 2, 0, 1)
    return (e.gain * lateral[None, :] * vignette)[..., None]


def _expose(img: np.ndarray, light: np.ndarray, e: Exposure, rng: np.random.Generator) -> np.ndarray:
    f = img.astype(np.float32) / 255.0 * light
    f = np.power(np.clip(f, 0, 1), e.gamma) * 255.0
    if e.noise_sigma > 0:
        f += rng.normal(0, e.noise_sigma, f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(e.jpeg_quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


# --- sessions ----------------------------------------------------------------------------------------

def _looks(rng: np.random.Generator, c: Conditions) -> FaceLook:
    look = FaceLook()
    if rng.random() < c.tilt_share:
        look.tilt_deg = float(rng.uniform(-c.max_tilt_deg, c.max_tilt_deg))
    if rng.random() < c.motion_blur_share:
        look.blur_len, look.blur_angle = float(rng.uniform(3, 9)), float(rng.uniform(0, 180))
    if rng.random() < c.occluded_share:
        look.occluder = (float(rng.random()), float(rng.uniform(0.5, 0.7)), float(rng.uniform(0.3, 0.5)),
                         tuple(int(v) for v in rng.integers(30, 220, 3)))  # type: ignore[assignment]
    look.glare = bool(rng.random() < c.glare_share)
    if rng.random() < c.row_overlap_share:
        look.hidden_by_front_row = float(rng.uniform(0.15, 0.35))
    return look


def _render(faces: Sequence[tuple[str, Path, tuple[float, float, float], FaceLook]],
            locate: Callable[[str, np.ndarray], np.ndarray | None],
            c: Conditions, exposure: Exposure, light: np.ndarray, room_seed: int, frame_rng: np.random.Generator,
            motion: bool) -> tuple[np.ndarray, list[SceneFace]]:
    room = np.random.default_rng(room_seed)  # the same room and clothes in every frame of the session
    canvas = _background(room, *c.size)
    placed: list[SceneFace] = []
    scale = c.size[0] / 1080
    jx, jy = frame_rng.normal(0, c.jitter_px * scale, 2) if motion else (0.0, 0.0)
    for ident, path, (cx, cy, px), look in sorted(faces, key=lambda z: z[2][1]):
        img = _load(str(path))
        box = locate(str(path), img)
        if box is None:
            continue
        person = np.random.default_rng([room_seed, zlib.crc32(ident.encode())])  # torso colour per person
        got = _paste_face(canvas, img, box, px, cx + jx, cy + jy, person)
        if not got:
            continue
        if look.tilt_deg:
            _tilt(canvas, got, look.tilt_deg)
        if look.blur_len:
            # A moving student blurs differently in every frame of the burst.
            length = look.blur_len * scale * (frame_rng.uniform(0.5, 1.3) if motion else 1.0)
            _motion_blur(canvas, got, length, look.blur_angle + (frame_rng.uniform(-20, 20) if motion else 0.0))
        if look.occluder:
            _occlude(canvas, got, *look.occluder)
        if look.glare:
            _glare(canvas, got)
        if look.hidden_by_front_row:
            _front_row_head(canvas, got, look.hidden_by_front_row, (35, 30, 28))
        placed.append(SceneFace(ident, str(path), got))
    return _expose(canvas, light, exposure, frame_rng), placed


def make_hard_session(dataset: Path, locator: FaceLocator, conditions: Conditions, *, seed: int = 0,
                      n_students: int = 28, n_strangers: int = 4, enroll_k: int = 5,
                      burst: int | None = None, day: int = 0) -> HardSession:
    """A class of ``n_students`` (attended / late / left early / absent mix) plus strangers in the
    room described by ``conditions``, 3 snapshots of ``burst`` frames each.

    Enrollment photos are each identity's first ``enroll_k`` photos (clean portraits, as students
    upload them); the room shows the others.

    ``day``: another lecture of the *same* class (same students, strangers and seats, chosen by
    ``seed``): who attends, the light, the noise, each face's look and which photo shows it are
    drawn again for ``day`` > 0 (day 0 is the session this function always made).
    """
    c = conditions
    n_frames = c.burst if burst is None else burst
    boxes: dict[str, np.ndarray | None] = {}  # the face in each source photo, found once (not per frame)

    def locate(path: str, img: np.ndarray) -> np.ndarray | None:
        if path not in boxes:
            boxes[path] = locator(img)
        return boxes[path]

    rng = np.random.default_rng(seed)
    ids, students, strangers = pick_class(dataset, rng, n_students, n_strangers, enroll_k)
    chosen = students + strangers
    q = n_students // 6
    labels = ["attended"] * (n_students - 3 * q) + ["late"] * q + ["left_early"] * q + ["absent"] * q
    truth = dict(zip(students, [labels[i] for i in rng.permutation(n_students)]))
    seats = seat_grid(n_students + n_strangers, c.size, c.face_px, rng)
    seat_of = {ident: seats[i] for i, ident in enumerate(rng.permutation(chosen))}
    if day:  # the same class another day: the rest is drawn from a stream of its own
        rng = np.random.default_rng([seed, 1000 + day])
        truth = dict(zip(students, [labels[i] for i in rng.permutation(n_students)]))
    look_of = {ident: _looks(rng, c) for ident in chosen}
    exposure = Exposure(gain=float(rng.uniform(*c.gain)), gamma=float(rng.uniform(*c.gamma)),
                        noise_sigma=float(rng.uniform(*c.noise_sigma)),
                        jpeg_quality=int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1)),
                        window_left=bool(rng.random() < 0.5))
    light = _light_map(*c.size, c, exposure)
    session = HardSession(c, seed, {s: ids[s][:enroll_k] for s in students}, truth, strangers)
    for k in range(3):
        present = [s for s in students if PATTERNS_3[truth[s]][k]] + strangers
        faces = []
        for ident in present:
            probes = ids[ident][enroll_k:]
            faces.append((ident, probes[(k + 3 * day) % len(probes)], seat_of[ident], look_of[ident]))
        frames, truth_faces = [], []
        for f in range(n_frames):
            frame_rng = np.random.default_rng([seed, k, f] if not day else [seed, 1000 + day, k, f])
            img, placed = _render(faces, locate, c, exposure, light, seed * 7919 + k + 100_003 * day, frame_rng,
                                  motion=f > 0)
            frames.append(img)
            if f == 0:
                truth_faces = placed
        session.bursts.append(Burst(frames, truth_faces))
    return session
