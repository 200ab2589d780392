"""Cameras read through OpenCV (RTSP, HTTP MJPEG, video files, local devices) or a still URL."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Literal

import cv2
import httpx
import numpy as np
from pydantic import SecretStr

from .base import (
    DEFAULT_MAX_PIXELS,
    CameraError,
    LightController,
    check_frame,
    decode_image,
    redact_url,
    scrub,
    url_password,
)
from .httpio import DEFAULT_MAX_BODY_BYTES, Answer, http_error_message, request

log = logging.getLogger(__name__)

__all__ = ["StreamCamera", "SnapshotURLCamera", "http_error_message", "status_message"]


#: OpenCV's FFmpeg backend reads its demuxer options from this variable at every open.
_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ENV_LOCK = threading.Lock()


def _is_network(source: str | int) -> bool:
    return isinstance(source, str) and "://" in source and not source.startswith("file://")


class StreamCamera:
    """A camera read with ``cv2.VideoCapture``: anything OpenCV's FFmpeg backend can open.

    Staleness is the main hazard with streams: snapshots are minutes apart, and a capture
    left open buffers (or its server drops) frames in the meantime, so "read one frame"
    can return a picture from minutes ago. Hence:

    * network sources are by default opened for each ``grab`` and released afterwards
      (``keep_open=False``): the first frames are by construction current. Opening an RTSP
      stream takes about a second, which is nothing next to minutes between snapshots.
    * after opening (or when kept open) ``flush_frames`` frames are ``grab()``-ed and
      discarded before ``retrieve()`` -- that drops buffered frames and the grey/smeared
      frames decoders emit before the first key frame. ``CAP_PROP_BUFFERSIZE=1`` is also
      requested (honoured by some backends only).
    * open and read timeouts (``CAP_PROP_OPEN_TIMEOUT_MSEC`` / ``READ_TIMEOUT_MSEC``) bound
      every FFmpeg call, so a stalled stream raises ``CameraError`` instead of hanging.
    * a failed read on a kept-open capture releases it and reconnects once.
    * RTSP is read over TCP by default (``rtsp_transport``), see ``_open``.

    Video files and device indices stay open (``keep_open=None`` -> auto), files are not
    flushed (no staleness; every grab is the next frame) and rewind at the end (``loop``).

    There is no light: ``light()`` is a no-op unless a ``light`` controller is attached
    (e.g. ``HttpLight`` or an IP Webcam phone's torch).
    """

    def __init__(
        self,
        source: str | int,
        timeout_s: float = 10.0,
        *,
        name: str | None = None,
        keep_open: bool | None = None,
        flush_frames: int | None = None,
        loop: bool = True,
        light: LightController | None = None,
        rtsp_transport: Literal["tcp", "udp"] | None = "tcp",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if isinstance(source, str) and not source:
            raise ValueError("StreamCamera needs a source (URL, file path or device index)")
        self._source = source
        self.timeout_s = float(timeout_s)
        self.display_source = redact_url(source)
        self.name = name or f"stream {self.display_source}"
        network = _is_network(source)
        self._is_file = isinstance(source, str) and (not network)
        self.keep_open = (not network) if keep_open is None else keep_open
        self.flush_frames = (0 if self._is_file else 4) if flush_frames is None else max(0, flush_frames)
        self.loop = loop
        self._light = light
        self.max_pixels = max_pixels
        is_rtsp = isinstance(source, str) and source.lower().startswith(("rtsp://", "rtsps://"))
        self.rtsp_transport = rtsp_transport if is_rtsp else None
        self._cap: cv2.VideoCapture | None = None
        self._lock = threading.Lock()

    @property
    def has_light(self) -> bool:
        return self._light is not None

    def _secrets(self) -> list[str | None]:
        return [url_password(self._source)]

    def _open(self) -> cv2.VideoCapture:
        if self._is_file and "://" not in str(self._source) and not os.path.exists(str(self._source)):
            raise CameraError(f"{self.name}: video file not found")
        ms = int(self.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        api = cv2.CAP_ANY if isinstance(self._source, int) else cv2.CAP_FFMPEG
        t0 = time.monotonic()
        if self.rtsp_transport is None:
            cap = cv2.VideoCapture(self._source, api, params)
        else:
            # FFmpeg's RTSP default is UDP, which over Wi-Fi/NAT loses packets and yields
            # grey, smeared frames; TCP interleaving is what camera web UIs use. OpenCV only
            # takes this option from the environment, so set it for the duration of the open.
            with _ENV_LOCK:
                old = os.environ.get(_FFMPEG_OPTIONS_ENV)
                extra = f"rtsp_transport;{self.rtsp_transport}"
                os.environ[_FFMPEG_OPTIONS_ENV] = f"{old}|{extra}" if old else extra
                try:
                    cap = cv2.VideoCapture(self._source, api, params)
                finally:
                    if old is None:
                        os.environ.pop(_FFMPEG_OPTIONS_ENV, None)
                    else:
                        os.environ[_FFMPEG_OPTIONS_ENV] = old
        if not cap.isOpened():
            cap.release()
            elapsed = time.monotonic() - t0
            why = "timed out" if elapsed >= self.timeout_s * 0.9 else "failed (unreachable, refused or unsupported)"
            raise CameraError(f"{self.name}: opening the stream {why} after {elapsed:.1f} s")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _read(self, cap: cv2.VideoCapture) -> np.ndarray:
        # grab() advances without decoding; only the newest grabbed frame is decoded. A grab
        # that fails (timeout, end of stream) ends the flush: the last good frame is used,
        # and no further timeouts are spent on a stalled stream.
        grabbed = 0
        for _ in range(self.flush_frames + 1):
            if not cap.grab():
                break
            grabbed += 1
        ok, frame = cap.retrieve() if grabbed else (False, None)
        if not ok or frame is None:
            raise CameraError(f"{self.name}: no frame within {self.timeout_s:.1f} s (stream stalled or ended)")
        frame = check_frame(frame, self.name)
        if frame.shape[0] * frame.shape[1] > self.max_pixels:
            raise CameraError(f"{self.name}: frame {frame.shape[1]}x{frame.shape[0]} exceeds {self.max_pixels} pixels")
        return frame

    def grab(self) -> np.ndarray:
        with self._lock:
            try:
                return self._grab_locked()
            except CameraError as exc:
                raise CameraError(scrub(str(exc), self._secrets())) from None

    def _grab_locked(self) -> np.ndarray:
        if not self.keep_open:
            cap = self._open()
            try:
                return self._read(cap)
            finally:
                cap.release()
        if self._cap is None:
            self._cap = self._open()
        try:
            return self._read(self._cap)
        except CameraError:
            # Reconnect once: a kept-open stream may have been dropped by the server, and a
            # file may simply be at its end.
            self._release()
            if self._is_file and not self.loop:
                raise CameraError(f"{self.name}: end of video file") from None
            log.info("%s: read failed, reconnecting", self.name)
            self._cap = self._open()
            return self._read(self._cap)

    def light(self, on: bool) -> None:
        if self._light is not None:
            self._light.light(on)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        with self._lock:
            self._release()
        if self._light is not None:
            self._light.close()

    def __repr__(self) -> str:
        return f"StreamCamera(source={self.display_source!r}, timeout_s={self.timeout_s})"


def status_message(name: str, response: httpx.Response | Answer, what: str) -> str:
    """Message for an unexpected HTTP status (401/403 get a credentials hint)."""
    code = response.status_code
    if code in (401, 403):
        return f"{name}: {what} refused with HTTP {code}: wrong username or password?"
    return f"{name}: {what} failed with HTTP {code} {response.reason_phrase}".rstrip()


class SnapshotURLCamera:
    """A camera that serves a still JPEG/PNG at a URL (most IP cameras have one).

    Each ``grab`` is one HTTP GET, so every image is current (no stream staleness). Optional
    basic or digest auth; a body that does not decode gives ``CameraError`` (cameras answer
    login pages or error text with status 200 surprisingly often). ``timeout_s`` bounds the
    whole request, not each read, and a body over ``max_body_bytes`` is not read
    (``httpio.request``).
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        *,
        name: str | None = None,
        username: str | None = None,
        password: str | SecretStr | None = None,
        auth: Literal["basic", "digest"] = "basic",
        verify_tls: bool = True,
        light: LightController | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        client: httpx.Client | None = None,
    ) -> None:
        self._url = url
        self.max_body_bytes = max_body_bytes
        self.display_url = redact_url(url)
        self.name = name or f"snapshot {self.display_url}"
        self.timeout_s = float(timeout_s)
        pw = password.get_secret_value() if isinstance(password, SecretStr) else password
        self._password = pw
        auth_obj: httpx.Auth | None = None
        if username is not None:
            auth_obj = (httpx.DigestAuth if auth == "digest" else httpx.BasicAuth)(username, pw or "")
        self._client = client or httpx.Client(timeout=self.timeout_s, verify=verify_tls, auth=auth_obj)
        if client is not None and auth_obj is not None:
            self._client.auth = auth_obj
        self._light = light
        self.max_pixels = max_pixels

    @property
    def has_light(self) -> bool:
        return self._light is not None

    def _secrets(self) -> list[str | None]:
        return [self._password, url_password(self._url)]

    def grab(self) -> np.ndarray:
        response = request(self._client, "GET", self._url, name=self.name, timeout_s=self.timeout_s,
                           max_bytes=self.max_body_bytes, secrets=self._secrets())
        if response.status_code != 200:
            raise CameraError(status_message(self.name, response, "snapshot request"))
        return decode_image(response.content, self.name, self.max_pixels, self.max_body_bytes)

    def light(self, on: bool) -> None:
        if self._light is not None:
            self._light.light(on)

    def close(self) -> None:
        self._client.close()
        if self._light is not None:
            self._light.close()

    def __repr__(self) -> str:
        return f"SnapshotURLCamera(url={self.display_url!r}, timeout_s={self.timeout_s})"
