"""A real HTTP camera on 127.0.0.1 for tests: IP Webcam, Dahua, snapshot and MJPEG endpoints.

Why a real server and not mocks: the things that break in classrooms are on the wire --
timeouts, dropped connections, digest auth, a stream that stops sending -- and only a real
socket exercises httpx and OpenCV/FFmpeg the way a camera does.

Endpoints
---------
* ``GET /shot.jpg``             IP Webcam still (basic auth when ``basic_auth=True``)
* ``GET /snapshot.jpg``         plain still image, no auth (``SnapshotURLCamera``)
* ``GET /video``                ``multipart/x-mixed-replace`` MJPEG stream
* ``GET /enabletorch`` / ``/disabletorch``  IP Webcam torch
* ``POST /RPC2_Login``          Dahua two-step login ("Default" MD5 challenge, verified exactly)
* ``POST /RPC2``                Dahua RPC: session check, ``CoaxialControlIO.control``,
  ``global.keepAlive``, ``global.logout``
* ``GET /cgi-bin/snapshot.cgi`` Dahua still with HTTP digest auth (qop=auth)

Fault knobs (by default they hit image endpoints only, so the light keeps working and tests
can check it is switched off after a failed grab): ``delay_s``, ``fail_next(k, status)``,
``drop_next(k)`` (connection closed mid-body), ``stall_stream`` (MJPEG stops sending but
keeps the connection open), ``expire_sessions()`` (Dahua), ``light_fail_next(k)``.

Body faults on the still-image endpoints (``/shot.jpg``, ``/snapshot.jpg``,
``/cgi-bin/snapshot.cgi``), in force until ``clear_body_fault()``:
``trickle(interval_s, in_headers=False)`` (a real JPEG, one byte every ``interval_s``; with
``in_headers`` the status line itself trickles), ``huge_body(size, announce=True)`` (``size``
bytes streamed from a generator, with or without ``Content-Length``; ``body_bytes_sent``
says how much the client actually took), ``non_image(body, ctype="image/jpeg")`` (text
served as an image), ``lying_length(claimed, body=None)`` (``Content-Length: claimed`` over
a body of another size).

Observations: ``events`` (ordered log), ``torch_on``, ``dahua_light_on``, ``light_on``,
``body_bytes_sent``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

IMAGE_PATHS = ("/shot.jpg", "/snapshot.jpg", "/video", "/cgi-bin/snapshot.cgi")
STILL_PATHS = ("/shot.jpg", "/snapshot.jpg", "/cgi-bin/snapshot.cgi")
LIGHT_PATHS = ("/enabletorch", "/disabletorch", "/RPC2")

DAHUA_LOGIN_CHALLENGE = 268632079
DAHUA_BAD_PASSWORD = 268632085
DAHUA_INVALID_SESSION = 287637505
DAHUA_METHOD_NOT_FOUND = 268894210

FRAME_SIZE = (320, 240)  # width, height
PALETTE = [(40, 40, 200), (40, 200, 40), (200, 40, 40), (40, 200, 200)]  # BGR


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def dahua_default_hash(user: str, password: str, realm: str, random: str) -> str:
    """Dahua "Default" login hash, written independently of the client code under test."""
    return md5_upper(f"{user}:{random}:{md5_upper(f'{user}:{realm}:{password}')}")


def make_frame(index: int, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A recognisable frame: solid palette colour + a white box whose position encodes index."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = PALETTE[index % len(PALETTE)]
    x = 10 + (index * 23) % (w - 60)
    cv2.rectangle(img, (x, 10), (x + 40, 50), (255, 255, 255), -1)
    return img


def frame_number(img: np.ndarray) -> int:
    """Frame index (mod 260, as drawn by ``make_frame``) read back from the box position."""
    h, w = img.shape[:2]
    band = img[10:50]
    cols = np.where((band > 200).all(axis=2).any(axis=0))[0]
    x = round((cols.min() + cols.max()) / 2 - 20)
    period = w - 60
    return ((x - 10) * pow(23, -1, period)) % period


def dominant_colour(img: np.ndarray) -> tuple[int, int, int]:
    """Median BGR of the bottom half (where the white box never is)."""
    h = img.shape[0]
    med = np.median(img[h // 2 :].reshape(-1, 3), axis=0)
    return (int(med[0]), int(med[1]), int(med[2]))


def palette_index(img: np.ndarray) -> int:
    """Which palette colour an image shows (JPEG is lossy: nearest colour)."""
    c = np.array(dominant_colour(img), float)
    return int(np.argmin([np.linalg.norm(c - np.array(p, float)) for p in PALETTE]))


@dataclass
class Event:
    t: float
    kind: str  # "torch", "dahua_io", "image", "image_fail", "login", "login_fail", "rpc"
    detail: Any = None
    light_on: bool = False  # light state when the event happened


@dataclass(frozen=True)
class BodyFault:
    """How the still-image endpoints answer while the fault is set (see the module docstring)."""

    kind: str  # "trickle" | "huge" | "non_image" | "lying_length"
    interval_s: float = 2.0
    in_headers: bool = False
    size: int = 0
    announce: bool = True
    claimed: int = 0
    body: bytes | None = None
    ctype: str = "image/jpeg"


@dataclass
class _Faults:
    fail: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # (status, paths)
    drop: list[tuple[str, ...]] = field(default_factory=list)


class FakeCamera:
    """The server plus its state; use as a context manager or via the ``fake_camera`` fixture."""

    def __init__(
        self,
        images: Sequence[np.ndarray | str | Path] | None = None,
        *,
        username: str = "admin",
        password: str = "Pa55-w0rd!secret",
        basic_auth: bool = False,
        realm: str = "Login to FAKE0001",
        fps: float = 25.0,
        frames_per_image: int = 1,
    ) -> None:
        # Each image is served for this many consecutive stills: a burst of one scene, as a
        # camera grabbing frames 0.4 s apart sees the same classroom.
        self.frames_per_image = max(1, int(frames_per_image))
        if images:
            frames = [cv2.imread(str(i)) if isinstance(i, (str, Path)) else i for i in images]
        else:
            frames = [make_frame(i) for i in range(len(PALETTE))]
        self._jpegs = [_jpeg(f) for f in frames]
        self._generated = not images  # MJPEG frames drawn live, numbered (see frame_number)
        self.username = username
        self.password = password
        self.basic_auth = basic_auth
        self.realm = realm
        self.fps = fps

        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.torch_on = False
        self.dahua_light_on = False
        self.delay_s = 0.0
        self.delay_paths: tuple[str, ...] = IMAGE_PATHS
        self.stall_stream = False
        self.frame_counter = 0
        self.sessions: dict[str, float] = {}
        self.pending_logins: dict[str, str] = {}  # session -> random
        self.digest_nonces: set[str] = set()
        self.keepalive_interval = 60
        self.body_fault: BodyFault | None = None
        self.body_bytes_sent = 0
        self._faults = _Faults()
        self._closing = threading.Event()

        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.host}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeCamera:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- knobs ------------------------------------------------------------------------------
    def fail_next(self, k: int, status: int = 500, paths: tuple[str, ...] = IMAGE_PATHS) -> None:
        with self.lock:
            self._faults.fail.extend([(status, paths)] * k)

    def drop_next(self, k: int, paths: tuple[str, ...] = IMAGE_PATHS) -> None:
        with self.lock:
            self._faults.drop.extend([paths] * k)

    def light_fail_next(self, k: int, status: int = 500) -> None:
        self.fail_next(k, status, LIGHT_PATHS)

    def trickle(self, interval_s: float = 2.0, *, in_headers: bool = False) -> None:
        """Send each image one byte every ``interval_s`` (per-read timeouts never fire)."""
        self.body_fault = BodyFault("trickle", interval_s=interval_s, in_headers=in_headers)

    def huge_body(self, size: int, *, announce: bool = True) -> None:
        """Answer ``size`` bytes (JPEG marker, then zeros), generated as sent: no memory needed."""
        self.body_fault = BodyFault("huge", size=size, announce=announce)

    def non_image(self, body: bytes = b"<html><body>Please log in</body></html>", ctype: str = "image/jpeg") -> None:
        self.body_fault = BodyFault("non_image", body=body, ctype=ctype)

    def lying_length(self, claimed: int, body: bytes | None = None) -> None:
        """``Content-Length: claimed`` over ``body`` (default: the next JPEG), then close."""
        self.body_fault = BodyFault("lying_length", claimed=claimed, body=body)

    def clear_body_fault(self) -> None:
        self.body_fault = None

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    # --- observations ---------------------------------------------------------------------
    @property
    def light_on(self) -> bool:
        return self.torch_on or self.dahua_light_on

    def log(self, kind: str, detail: Any = None) -> None:
        with self.lock:
            self.events.append(Event(time.monotonic(), kind, detail, self.torch_on or self.dahua_light_on))

    def kinds(self) -> list[str]:
        with self.lock:
            return [e.kind for e in self.events]

    def events_of(self, *kinds: str) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.kind in kinds]

    def light_log(self) -> list[bool]:
        """Every light switch in order (True = on), from any light endpoint."""
        out = []
        for e in self.events_of("torch", "dahua_io"):
            out.append(e.detail is True or e.detail == 1)
        return out

    # --- internals used by the handler ---------------------------------------------------
    def next_jpeg(self) -> bytes:
        with self.lock:
            jpg = self._jpegs[(self.frame_counter // self.frames_per_image) % len(self._jpegs)]
            self.frame_counter += 1
        return jpg

    def next_stream_jpeg(self) -> bytes:
        if not self._generated:
            return self.next_jpeg()
        with self.lock:
            index = self.frame_counter
            self.frame_counter += 1
        return _jpeg(make_frame(index))

    def take_fault(self, path: str) -> tuple[str, int] | None:
        with self.lock:
            for i, (status, paths) in enumerate(self._faults.fail):
                if path in paths:
                    del self._faults.fail[i]
                    return ("fail", status)
            for i, paths in enumerate(self._faults.drop):
                if path in paths:
                    del self._faults.drop[i]
                    return ("drop", 0)
        return None

    @property
    def closing(self) -> threading.Event:
        return self._closing


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCamera
    protocol_version = "HTTP/1.0"  # one request per connection: simple and deterministic

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    # --- helpers ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str = "text/plain", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: dict[str, Any]) -> None:
        self._send(200, json.dumps(obj).encode(), "application/json")

    def _drop(self, body: bytes, ctype: str = "image/jpeg") -> None:
        """Promise the full body, send half of it, then cut the connection."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True

    def _pre(self, path: str) -> bool:
        """Delay and injected faults; True if the request was already answered."""
        fake = self.fake
        if fake.delay_s > 0 and path in fake.delay_paths:
            fake.closing.wait(fake.delay_s)
        fault = fake.take_fault(path)
        if fault is None:
            return False
        kind, status = fault
        fake.log("image_fail" if path in IMAGE_PATHS else "light_fail", f"{kind} {path}")
        if kind == "fail":
            self._send(status, b"injected failure")
        else:
            self._drop(fake.next_jpeg())
        return True

    def _basic_ok(self) -> bool:
        fake = self.fake
        if not fake.basic_auth:
            return True
        expected = base64.b64encode(f"{fake.username}:{fake.password}".encode()).decode()
        if self.headers.get("Authorization", "") == f"Basic {expected}":
            return True
        fake.log("auth_fail", self.path)
        self._send(401, b"Unauthorized", headers={"WWW-Authenticate": 'Basic realm="IP Webcam"'})
        return False

    def _digest_ok(self) -> bool:
        fake = self.fake
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Digest "):
            fields = _parse_digest(auth[7:])
            nonce = fields.get("nonce", "")
            if nonce in fake.digest_nonces and fields.get("username") == fake.username:
                ha1 = hashlib.md5(f"{fake.username}:{fake.realm}:{fake.password}".encode()).hexdigest()
                ha2 = hashlib.md5(f"{self.command}:{fields.get('uri', '')}".encode()).hexdigest()
                expected = hashlib.md5(
                    f"{ha1}:{nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:{fields.get('qop', '')}:{ha2}".encode()
                ).hexdigest()
                if secrets.compare_digest(expected, fields.get("response", "")):
                    return True
            fake.log("auth_fail", self.path)
        nonce = secrets.token_hex(16)
        with fake.lock:
            fake.digest_nonces.add(nonce)
        self._send(
            401,
            b"Unauthorized",
            headers={"WWW-Authenticate": f'Digest realm="{fake.realm}", qop="auth", nonce="{nonce}", opaque="{secrets.token_hex(8)}"'},
        )
        return False

    def _read_json(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            data = {}
        return data if isinstance(data, dict) else {}

    # --- GET ------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        fake = self.fake
        path = urlsplit(self.path).path
        if path in ("/shot.jpg", "/enabletorch", "/disabletorch") and not self._basic_ok():
            return
        if path == "/cgi-bin/snapshot.cgi" and not self._digest_ok():
            return
        if self._pre(path):
            return
        body_fault = fake.body_fault
        if body_fault is not None and path in STILL_PATHS:
            fake.log("image_fault", f"{body_fault.kind} {path}")
            try:
                self._body_fault(body_fault)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the client gave up: what a camera sees when AAS stops reading
            self.close_connection = True
            return
        if path in ("/shot.jpg", "/snapshot.jpg", "/cgi-bin/snapshot.cgi"):
            fake.log("image", path)
            self._send(200, fake.next_jpeg(), "image/jpeg")
        elif path == "/corrupt.jpg":
            fake.log("image", path)
            self._send(200, b"\xff\xd8\xff\xe0 this is not really a jpeg", "image/jpeg")
        elif path == "/enabletorch":
            with fake.lock:
                fake.torch_on = True
            fake.log("torch", True)
            self._send(200, b"Ok")
        elif path == "/disabletorch":
            with fake.lock:
                fake.torch_on = False
            fake.log("torch", False)
            self._send(200, b"Ok")
        elif path == "/video":
            self._mjpeg()
        else:
            self._send(404, b"not found")

    def _sent(self, n: int) -> None:
        with self.fake.lock:
            self.fake.body_bytes_sent += n

    def _body_fault(self, f: BodyFault) -> None:
        fake = self.fake
        if f.kind == "trickle":
            jpg = fake.next_jpeg()
            head = (f"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n").encode()
            if not f.in_headers:
                self.wfile.write(head)
                self.wfile.flush()
                head = b""
            for i in range(len(head) + len(jpg)):
                if fake.closing.wait(f.interval_s):
                    return
                byte = head[i : i + 1] if i < len(head) else jpg[i - len(head) : i - len(head) + 1]
                self.wfile.write(byte)
                self.wfile.flush()
                self._sent(1)
        elif f.kind == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            if f.announce:
                self.send_header("Content-Length", str(f.size))
            self.end_headers()
            chunk = bytes(64 * 1024)
            first = b"\xff\xd8\xff\xe0" + chunk[4:]
            left = f.size
            while left > 0 and not fake.closing.is_set():
                part = (first if left == f.size else chunk)[: min(len(chunk), left)]
                self.wfile.write(part)
                self._sent(len(part))
                left -= len(part)
        elif f.kind == "non_image":
            self._send(200, f.body or b"", f.ctype)
            self._sent(len(f.body or b""))
        elif f.kind == "lying_length":
            body = f.body if f.body is not None else fake.next_jpeg()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(f.claimed))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self._sent(len(body))
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _mjpeg(self) -> None:
        fake = self.fake
        fake.log("stream_open", self.path)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frameboundary")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        period = 1.0 / fake.fps
        try:
            while not fake.closing.is_set():
                if fake.stall_stream:
                    fake.closing.wait(0.02)
                    continue
                jpg = fake.next_stream_jpeg()
                self.wfile.write(
                    b"--frameboundary\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpg)).encode()
                    + b"\r\n\r\n"
                    + jpg
                    + b"\r\n"
                )
                self.wfile.flush()
                fake.closing.wait(period)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # client went away
        fake.log("stream_closed", self.path)

    # --- POST (Dahua) -----------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        path = urlsplit(self.path).path
        req = self._read_json()
        if self._pre(path):
            return
        if path == "/RPC2_Login":
            self._dahua_login(req)
        elif path == "/RPC2":
            self._dahua_rpc(req)
        else:
            self._send(404, b"not found")

    def _dahua_login(self, req: dict[str, Any]) -> None:
        fake = self.fake
        params = req.get("params") or {}
        rid = req.get("id")
        if req.get("method") != "global.login":
            self._json({"result": False, "id": rid, "error": {"code": DAHUA_METHOD_NOT_FOUND, "message": "Method not found!"}})
            return
        if not params.get("password"):
            session = secrets.token_hex(16)
            random = str(secrets.randbelow(10**9))
            with fake.lock:
                fake.pending_logins[session] = random
            fake.log("login_challenge", params.get("userName"))
            self._json(
                {
                    "result": False,
                    "id": rid,
                    "session": session,
                    "error": {"code": DAHUA_LOGIN_CHALLENGE, "message": "Component error: login challenge!"},
                    "params": {"encryption": "Default", "random": random, "realm": fake.realm, "authorization": "x"},
                }
            )
            return
        session = str(req.get("session", ""))
        with fake.lock:
            random = fake.pending_logins.pop(session, None)
        expected = dahua_default_hash(fake.username, fake.password, fake.realm, random or "")
        ok = (
            random is not None
            and params.get("userName") == fake.username
            and params.get("password") == expected
            and params.get("authorityType") == "Default"
            and params.get("passwordType") == "Default"
        )
        if not ok:
            fake.log("login_fail", params.get("userName"))
            self._json({"result": False, "id": rid, "session": session, "error": {"code": DAHUA_BAD_PASSWORD, "message": "User or password not valid!"}})
            return
        with fake.lock:
            fake.sessions[session] = time.monotonic()
        fake.log("login", params.get("userName"))
        self._json({"result": True, "id": rid, "session": session, "params": {"keepAliveInterval": fake.keepalive_interval}})

    def _dahua_rpc(self, req: dict[str, Any]) -> None:
        fake = self.fake
        rid = req.get("id")
        session = str(req.get("session", ""))
        with fake.lock:
            valid = session in fake.sessions
            if valid:
                fake.sessions[session] = time.monotonic()
        if not valid:
            fake.log("rpc_invalid_session", req.get("method"))
            self._json({"result": False, "id": rid, "session": session, "error": {"code": DAHUA_INVALID_SESSION, "message": "Invalid session in request data!"}})
            return
        method = req.get("method")
        params = req.get("params") or {}
        fake.log("rpc", method)
        if method == "CoaxialControlIO.control":
            info = (params.get("info") or [{}])[0]
            io = info.get("IO")
            if params.get("channel") != 0 or info.get("Type") != 1 or io not in (1, 2):
                self._json({"result": False, "id": rid, "session": session, "error": {"code": 268959743, "message": "bad params"}})
                return
            with fake.lock:
                fake.dahua_light_on = io == 1
            fake.log("dahua_io", io)
            self._json({"result": True, "id": rid, "session": session, "params": None})
        elif method == "global.keepAlive":
            self._json({"result": True, "id": rid, "session": session, "params": {"timeout": fake.keepalive_interval}})
        elif method == "global.logout":
            with fake.lock:
                fake.sessions.pop(session, None)
            self._json({"result": True, "id": rid, "session": session})
        else:
            self._json({"result": False, "id": rid, "session": session, "error": {"code": DAHUA_METHOD_NOT_FOUND, "message": "Method not found!"}})


def _jpeg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _parse_digest(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _split_commas(value):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def _split_commas(value: str) -> list[str]:
    parts, cur, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def closed_port() -> int:
    """A local port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeClock:
    """Virtual time for ``Clock``: waits return at once and advance the clock.

    A wait is still interrupted by ``stop`` (checked before and after), so ``stop()`` tests
    work; ``waits`` records every requested duration for assertions.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.t = 1000.0
        self.start = start or datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def now(self) -> datetime:
        with self._lock:
            return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return True
        with self._lock:
            self.waits.append(seconds)
            self.t += max(0.0, seconds)
        time.sleep(0)  # let other threads run, as a real wait would
        return stop is not None and stop.is_set()
