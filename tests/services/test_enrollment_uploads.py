"""Students-page uploads (issue 10, point 10) at the ui-helper level, on SQLite and the real MariaDB:
photos are decoded one at a time as enrollment asks for them, one upload is capped in files and
in decoded pixels, and one odd image is refused on its own without costing the good photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from trust_world import World

from aas_core.config import Settings
from aas_core.ui import enroll as en

POWELL = "lfw_Colin_Powell"


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _good(data_dir: Path, i: int) -> tuple[str, bytes]:
    return f"powell{i}.jpg", (data_dir / "faces_dev" / POWELL / f"{i}.jpg").read_bytes()


def test_one_odd_image_is_refused_alone_and_photos_are_decoded_one_at_a_time(
        world: World, models_dir: Path, fast_pipeline, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = Settings(data_dir=world.store.root, models_dir=models_dir, database_url=world.url)
    files = [_good(data_dir, 1), ("strip.png", _png(50000, 8)), _good(data_dir, 2)]
    decoded_with_results: list[int] = []  # results already made when each photo was decoded
    results: list[en.EnrollResult] = []

    def counting(items):  # type: ignore[no-untyped-def]
        for name, image in items:
            decoded_with_results.append(len(results))
            yield name, image

    def progress(i: int, n: int, name: str) -> None:
        results.append(name)  # type: ignore[arg-type]

    out = en.enroll(world.url, world.users["admin"], "S1", counting(en.iter_uploads(files, cfg)), fast_pipeline,
                    world.store, cfg, source="upload", total=len(files), progress=progress)
    # photo k is decoded only after photo k-1 was enrolled: never all decoded at once
    assert decoded_with_results == [0, 1, 2]
    by_name = {r.name: r for r in out}
    assert [r.name for r in out] == ["powell1.jpg", "strip.png", "powell2.jpg"]
    assert by_name["powell1.jpg"].status == "accepted" and by_name["powell2.jpg"].status == "accepted"
    strip = by_name["strip.png"]
    assert strip.status == "rejected" and "50000x8 pixels is not a portrait photo" in strip.reasons[0]
    assert all(r.thumb for r in out if r.accepted)
    assert len([r for r in out if r.sample_id]) == 2


def test_an_upload_is_capped_in_files_and_pixels_with_messages(tmp_path: Path) -> None:
    good = _png(1000, 1000)  # 1 MP each
    cfg = Settings(data_dir=tmp_path, max_upload_files=3, max_upload_pixels=2_500_000, database_url="sqlite://")
    files = [(f"{i}.png", good) for i in range(5)]
    got = list(en.iter_uploads(files, cfg))
    assert [n for n, _ in got] == ["0.png", "1.png", "2.png", "3.png", "4.png"]
    kinds = [type(x).__name__ for _, x in got]
    assert kinds == ["ndarray", "ndarray", "ImageError", "ImageError", "ImageError"]
    assert "would take this upload past its 2 MP limit" in str(got[2][1])  # 2.5 MP, shown rounded
    assert all("at most 3 photos per upload" in str(x) for _, x in got[3:])
    # a photo too large on its own keeps decode_image's own message
    cfg = Settings(data_dir=tmp_path, max_image_pixels=500_000, database_url="sqlite://")
    [(_, err)] = list(en.iter_uploads([("big.png", good)], cfg))
    assert str(err).startswith("big.png: 1000x1000 pixels is larger than the") and "upload" not in str(err)
