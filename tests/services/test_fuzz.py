"""Property tests: arbitrary and mutated uploads never crash the decoders in unexpected ways.

``decode_image`` must return a uint8 HxWx3 array or raise ``ImageError`` (nothing else) for
any bytes; the roster CSV parser must return a parse result or raise ``RosterFileError``.
Bounded (about 150 examples each, no deadline) to keep the suite fast.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aas_core.media.decode import ImageError, decode_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _seed_files() -> dict[str, bytes]:
    import os

    data = Path(os.environ.get("AAS_TEST_DATA", SHARED_DATA))
    jpg = sorted((data / "faces_dev").glob("*/*.jpg"))[0].read_bytes()
    img = Image.open(io.BytesIO(jpg))
    out = {"jpeg": jpg}
    for name, im in (("png", img), ("png_rgba", img.convert("RGBA")), ("png_gray", img.convert("L")),
                     ("png_pal", img.convert("P"))):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 8
    img.save(buf, format="JPEG", exif=exif, quality=80)
    out["jpeg_exif"] = buf.getvalue()
    return out


SEEDS = _seed_files()


def _check(data: bytes) -> None:
    try:
        img = decode_image(data, name="fuzz")
    except ImageError as exc:
        assert str(exc).startswith("fuzz: ")  # the message names the upload
        return
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] >= 8 and img.shape[1] >= 8
    assert img.flags["C_CONTIGUOUS"]


@FUZZ
@given(st.binary(max_size=4096))
def test_decode_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)).flatmap(lambda k: st.just(SEEDS[k])), st.binary(max_size=64))
def test_decode_real_header_then_junk(seed: bytes, junk: bytes) -> None:
    """A valid header (first 64..N bytes of a real file) followed by garbage."""
    _check(seed[: 64 + len(junk) * 4] + junk)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    # Mostly keep the 8-byte signature, so the mutation reaches the decoder instead of the sniffer.
    lo = 0 if draw(st.integers(0, 9)) == 0 else 8
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup"]))
        n = len(data)
        if n <= lo:
            break
        i = draw(st.integers(lo, n - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":  # header fields (sizes, bit depths) live early in the file: favour them
            j = draw(st.integers(lo, min(n - 1, 96)))
            data[j] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[i:]
        else:
            data[i:i] = data[i:i + draw(st.integers(1, 256))]
    return bytes(data)


@FUZZ
@given(mutated())
def test_decode_mutated_real_images(data: bytes) -> None:
    _check(data)


def test_every_seed_decodes() -> None:
    for name, data in SEEDS.items():
        img = decode_image(data, name=name)
        assert img.dtype == np.uint8 and img.shape[2] == 3, name


# --- roster CSV ------------------------------------------------------------------------------------

from aas_core.services import roster as roster_csv  # noqa: E402


def _check_roster(data: bytes | str) -> None:
    try:
        parsed = roster_csv.parse_roster_csv(data)
    except roster_csv.RosterFileError as exc:
        assert str(exc)
        return
    ids = [r.student_id for r in parsed.rows]
    assert len(ids) == len(set(ids))
    for r in parsed.rows:
        assert r.student_id and r.name and len(r.student_id) <= 64 and len(r.name) <= 200
        assert r.student_id == r.student_id.strip() and r.line >= 2
    for e in parsed.errors:
        assert e.line >= 1 and str(e).startswith(f"line {e.line}: ")


@FUZZ
@given(st.binary(max_size=2048))
def test_roster_arbitrary_bytes(data: bytes) -> None:
    _check_roster(data)


_cell = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


@FUZZ
@given(st.lists(st.lists(_cell, min_size=0, max_size=5), max_size=12), st.sampled_from([",", ";"]),
       st.booleans())
def test_roster_arbitrary_tables(rows: list[list[str]], sep: str, header: bool) -> None:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep)
    if header:
        w.writerow(["Student ID", "Name", "Email"])
    w.writerows(rows)
    text = buf.getvalue()
    _check_roster(text)
    _check_roster(text.encode("utf-8"))
    _check_roster(text.encode("utf-8", "replace").replace(b"\n", b"\r\n"))


_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,15}", fullmatch=True)
_names = st.text(st.characters(whitelist_categories=["L", "Zs"], blacklist_characters="\u2028\u2029\x85"),
                 min_size=1, max_size=40).map(str.strip).filter(bool)


@FUZZ
@given(st.dictionaries(_ids, _names, min_size=1, max_size=15), st.sampled_from([",", ";"]))
def test_roster_valid_rows_round_trip(students: dict[str, str], sep: str) -> None:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep)
    w.writerow(["student_id", "name"])
    for sid, name in students.items():
        w.writerow([sid, name])
    parsed = roster_csv.parse_roster_csv(("\ufeff" + buf.getvalue()).encode("utf-8"))
    assert parsed.errors == []
    assert {r.student_id: r.name for r in parsed.rows} == students
