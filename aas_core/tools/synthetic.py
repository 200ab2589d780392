"""Synthetic classrooms with known ground truth, for tests, evaluation and benchmarks.

Real face photos from a labelled folder (``DIR/<identity>/*.jpg``) are pasted, with a
feathered elliptical mask and a drawn torso, onto a classroom-like 1920x1080 background in
rows of seats: back rows small (~30-40 px faces), front rows large (~100 px). Each pasted
face's box and identity are recorded, so detection and recognition can be scored exactly.

Source faces are located once with a face locator (SCRFD by default) so the *face* gets
the target size, not the whole photo; photos where no face is found are skipped (and
counted), which is also what enrollment would do with them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from aas_core.vision.nms import box_iou

FaceLocator = Callable[[np.ndarray], "np.ndarray | None"]  # image -> xyxy of the main face, or None

STATUSES = ("attended", "late", "left_early", "absent")
# Presence over 3 snapshots that produces each status under the default rules.
PATTERNS_3 = {"attended": (True, True, True), "late": (False, True, True),
              "left_early": (True, True, False), "absent": (False, False, False)}


@dataclass
class SceneFace:
    identity: str
    source: str  # file the face came from
    box: tuple[float, float, float, float]  # xyxy of the face in the scene

    @property
    def size(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass
class Scene:
    image: np.ndarray
    faces: list[SceneFace] = field(default_factory=list)


def list_identities(root: Path) -> dict[str, list[Path]]:
    """identity -> sorted photo paths (numeric file names sort numerically)."""
    def key(p: Path) -> tuple[int, str]:
        return (int(p.stem), p.name) if p.stem.isdigit() else (10**9, p.name)

    out = {}
    for d in sorted(Path(root).iterdir()):
        if d.is_dir():
            files = sorted([p for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}], key=key)
            if files:
                out[d.name] = files
    if not out:
        raise ValueError(f"{root} has no <identity>/<photo> sub-folders")
    return out


def scrfd_locator(models_dir: Path, model: str = "scrfd_2.5g.onnx") -> FaceLocator:
    """Largest face found by SCRFD (pads tight aligned crops so the detector sees context)."""
    import insightface

    det = insightface.model_zoo.get_model(str(Path(models_dir) / model), providers=["CPUExecutionProvider"])
    det.prepare(ctx_id=-1, input_size=(320, 320), det_thresh=0.4)

    def locate(img: np.ndarray) -> np.ndarray | None:
        pad = img.shape[0] // 3
        padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        boxes, _ = det.detect(padded, input_size=(320, 320))
        if boxes is None or len(boxes) == 0:
            return None
        b = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))][:4] - pad
        h, w = img.shape[:2]
        return np.clip(b, 0, [w, h, w, h]).astype(np.float32)

    return locate


@lru_cache(maxsize=4096)
def _load(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read {path}")
    return img


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    wall = np.array(rng.integers(150, 220, 3), np.float32)
    floor = np.array(rng.integers(60, 120, 3), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (wall * (1 - t) + floor * t) * np.ones((h, w, 3), np.float32)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    # A board and windows on the wall give the detectors realistic clutter to ignore.
    cv2.rectangle(img, (int(w * .3), int(h * .02)), (int(w * .7), int(h * .16)), (40, 70, 40), -1)
    for x in (0.05, 0.85):
        cv2.rectangle(img, (int(w * x), int(h * .03)), (int(w * (x + .1)), int(h * .2)), (230, 220, 200), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def _paste_face(canvas: np.ndarray, face_img: np.ndarray, face_box: np.ndarray, target: float,
                cx: float, cy: float, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
    """Scale ``face_img`` so its face box is ``target`` px wide, centre the face at (cx, cy)."""
    fw = float(face_box[2] - face_box[0])
    if fw < 8:
        return None
    s = target / fw
    # Keep some context (hair, chin) around the face, feathered into the scene. Tight aligned
    # crops (Glint, ORL) have none, so their border is extended first: otherwise the feathered
    # ellipse would eat into the face itself, which no real camera does.
    m = 0.45 * fw
    pad = int(np.ceil(m))
    face_img = cv2.copyMakeBorder(face_img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    face_box = np.asarray(face_box, np.float32) + pad
    h0, w0 = face_img.shape[:2]
    x1, y1 = max(0, int(face_box[0] - m)), max(0, int(face_box[1] - m))
    x2, y2 = min(w0, int(face_box[2] + m)), min(h0, int(face_box[3] + m * 0.6))
    patch = cv2.resize(face_img[y1:y2, x1:x2], None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    ph, pw = patch.shape[:2]
    fx1, fy1 = (face_box[0] - x1) * s, (face_box[1] - y1) * s
    fcx, fcy = fx1 + target / 2, fy1 + (face_box[3] - face_box[1]) * s / 2
    ox, oy = int(round(cx - fcx)), int(round(cy - fcy))
    H, W = canvas.shape[:2]
    if pw > W or ph > H:
        return None
    # Seats near the edge: slide the head inside the frame rather than dropping the person.
    shift_x = min(0, W - (ox + pw)) - min(0, ox)
    shift_y = min(0, H - (oy + ph)) - min(0, oy)
    ox, oy, cx, cy = ox + shift_x, oy + shift_y, cx + shift_x, cy + shift_y
    # Torso first, so the head sits on shoulders (helps person detectors and looks plausible).
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    tw, th = int(target * 2.6), int(target * 2.2)
    cv2.ellipse(canvas, (int(cx), int(cy + target * 1.9)), (tw // 2, th // 2), 0, 180, 360, colour, -1)
    cv2.rectangle(canvas, (int(cx - tw / 2), int(cy + target * 1.9)), (int(cx + tw / 2), min(H - 1, int(cy + target * 3.2))), colour, -1)
    mask = np.zeros((ph, pw), np.float32)
    cv2.ellipse(mask, (pw // 2, ph // 2), (int(pw * 0.48), int(ph * 0.49)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.04 * pw))[..., None]
    roi = canvas[oy:oy + ph, ox:ox + pw].astype(np.float32)
    canvas[oy:oy + ph, ox:ox + pw] = (patch.astype(np.float32) * mask + roi * (1 - mask)).astype(np.uint8)
    bh = (face_box[3] - face_box[1]) * s
    return (float(ox + fx1), float(oy + fy1), float(ox + fx1 + target), float(oy + fy1 + bh))


def seat_grid(n: int, size: tuple[int, int] = (1080, 1920), size_range: tuple[float, float] = (36, 100),
              rng: np.random.Generator | None = None) -> list[tuple[float, float, float]]:
    """n seats (cx, cy, face px): rows from the back (small, high up) to the front (large, low)."""
    rng = rng or np.random.default_rng(0)
    H, W = size
    rows = max(1, int(np.ceil(np.sqrt(n / 2.2))))
    per_row = int(np.ceil(n / rows))
    seats = []
    lo, hi = size_range
    for r in range(rows):
        t = r / max(1, rows - 1)
        px = lo + (hi - lo) * t
        y = H * (0.26 + 0.52 * t)
        xs = np.linspace(W * 0.06, W * 0.94, per_row)
        for x in xs:
            seats.append((float(x + rng.uniform(-0.15, 0.15) * W / per_row),
                          float(y + rng.uniform(-0.03, 0.03) * H), float(px * rng.uniform(0.95, 1.05))))
    order = rng.permutation(len(seats))[:n]
    return [seats[i] for i in sorted(order)]


def make_scene(faces: Sequence[tuple[str, Path]], locator: FaceLocator, *, size: tuple[int, int] = (1080, 1920),
               size_range: tuple[float, float] = (36, 100), seed: int = 0,
               seats: Sequence[tuple[float, float, float]] | None = None) -> Scene:
    """Compose one snapshot with the given (identity, photo) faces, one per seat."""
    rng = np.random.default_rng(seed)
    canvas = _background(rng, *size)
    seats = list(seats) if seats is not None else seat_grid(len(faces), size, size_range, rng)
    if len(seats) < len(faces):
        raise ValueError(f"{len(faces)} faces but only {len(seats)} seats")
    scene = Scene(canvas)
    # Paint back rows first so front-row torsos overlap them, as in a real room.
    for (ident, path), (cx, cy, px) in sorted(zip(faces, seats), key=lambda z: z[1][1]):
        img = _load(str(path))
        box = locator(img)
        if box is None:
            continue
        placed = _paste_face(canvas, img, box, px, cx, cy, rng)
        if placed:
            scene.faces.append(SceneFace(ident, str(path), placed))
    return scene


@dataclass
class SyntheticSession:
    """A roster, enrollment photos, per-student ground-truth status and 3 snapshots."""

    enroll: dict[str, list[Path]]
    truth: dict[str, str]  # student id -> status
    strangers: list[str]
    snapshots: list[Scene]

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, sc in enumerate(self.snapshots, 1):
            p = out / f"snapshot_{i}.jpg"
            cv2.imwrite(str(p), sc.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            paths.append(p)
        meta = {"truth": self.truth, "strangers": self.strangers,
                "snapshots": [[asdict(f) for f in sc.faces] for sc in self.snapshots]}
        (out / "truth.json").write_text(json.dumps(meta, indent=1))
        return paths


def pick_class(dataset: Path, rng: np.random.Generator, n_students: int, n_strangers: int,
               enroll_k: int) -> tuple[dict[str, list[Path]], list[str], list[str]]:
    """(identity -> photos, students, strangers) drawn from identities with more than ``enroll_k``
    photos (the first ``enroll_k`` enroll, the rest appear in the room)."""
    ids = list_identities(dataset)
    usable = [k for k, v in ids.items() if len(v) > enroll_k]
    if len(usable) < n_students + n_strangers:
        raise ValueError(f"need {n_students + n_strangers} identities with > {enroll_k} photos, have {len(usable)}")
    chosen = [usable[i] for i in rng.permutation(len(usable))[: n_students + n_strangers]]
    return ids, chosen[:n_students], chosen[n_students:]


def make_session(dataset: Path, locator: FaceLocator, *, n_students: int = 30, n_strangers: int = 3,
                 enroll_k: int = 5, seed: int = 0, size_range: tuple[float, float] = (36, 100),
                 status_mix: dict[str, int] | None = None) -> SyntheticSession:
    """A class of ``n_students`` with a known mix of attended/late/left-early/absent.

    Enrollment uses each identity's first ``enroll_k`` photos; snapshots use the others
    (a different photo per snapshot where there are enough), so probes are never the
    enrollment images. Strangers (not enrolled) sit in every snapshot.
    """
    rng = np.random.default_rng(seed)
    ids, students, strangers = pick_class(dataset, rng, n_students, n_strangers, enroll_k)
    chosen = students + strangers
    mix = status_mix or {"attended": n_students - 3 * (n_students // 6), "late": n_students // 6,
                         "left_early": n_students // 6, "absent": n_students // 6}
    if sum(mix.values()) != n_students:
        raise ValueError("status_mix must add up to n_students")
    labels = [s for s, k in mix.items() for _ in range(k)]
    truth = dict(zip(students, [labels[i] for i in rng.permutation(n_students)]))
    seats = seat_grid(n_students + n_strangers, rng=rng, size_range=size_range)
    seat_of = {ident: seats[i] for i, ident in enumerate(rng.permutation(chosen))}
    snaps = []
    for k in range(3):
        present = [s for s in students if PATTERNS_3[truth[s]][k]] + strangers
        faces = []
        for ident in present:
            probes = ids[ident][enroll_k:]
            faces.append((ident, probes[k % len(probes)]))
        snaps.append(make_scene(faces, locator, seed=seed * 10 + k, seats=[seat_of[i] for i, _ in faces]))
    return SyntheticSession(enroll={s: ids[s][:enroll_k] for s in students}, truth=truth,
                            strangers=strangers, snapshots=snaps)


@dataclass
class SceneScore:
    faces: int
    found: int
    named_correctly: int
    named_wrongly: int
    strangers_named: int
    min_size: float

    @property
    def recall(self) -> float:
        return self.found / max(1, self.faces)

    @property
    def named_rate(self) -> float:
        return self.named_correctly / max(1, self.faces)


def score_scene(scene: Scene, boxes: np.ndarray, assigned: Sequence[str | None], enrolled: set[str],
                min_size: float = 0.0, iou: float = 0.3) -> SceneScore:
    """Compare pipeline output with the scene's ground truth (faces >= ``min_size`` px count)."""
    truth = [f for f in scene.faces if f.size >= min_size]
    tb = np.array([f.box for f in truth], np.float32).reshape(-1, 4)
    m = box_iou(tb, boxes) if len(boxes) and len(tb) else np.zeros((len(tb), len(boxes)))
    found = named = wrong = strangers_named = 0
    for i, f in enumerate(truth):
        j = int(m[i].argmax()) if m.shape[1] else -1
        if j < 0 or m[i, j] < iou:
            continue
        found += 1
        who = assigned[j] if assigned else None
        if f.identity in enrolled:
            named += who == f.identity
            wrong += who is not None and who != f.identity
        elif who is not None:
            strangers_named += 1
    return SceneScore(len(truth), found, named, wrong, strangers_named, min_size)
