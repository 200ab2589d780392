"""Camera protocol, errors, and the light + retry capture logic shared by every backend.

Why this lives in one place: the rules "the light is always switched off again" and
"retries stop at a deadline" must hold for every camera, including ones we have not
written yet. Backends only implement ``grab`` / ``light`` / ``close``; the guarantees come
from ``capture_shot`` / ``capture_with_light`` / ``grab_with_retry``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import cv2
import numpy as np
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from aas_core.media import decode as media_decode
from aas_core.media.decode import DEFAULT_MAX_PIXELS
from aas_core.redact import redact_text, redact_url

log = logging.getLogger(__name__)

__all__ = [
    "Camera",
    "CameraError",
    "CaptureCancelled",
    "Clock",
    "LightController",
    "LightState",
    "RealClock",
    "Shot",
    "camera_has_light",
    "camera_name",
    "capture_burst",
    "capture_shot",
    "capture_with_light",
    "decode_image",
    "grab_with_retry",
    "grab_within",
    "lit",
    "redact_url",
    "scrub",
    "url_password",
]

class CameraError(RuntimeError):
    """A camera could not deliver an image or switch its light.

    Messages are meant for the UI ("why is snapshot 2 missing?") and are stored with the
    snapshot. They are built from redacted URLs, and the message is passed through
    ``redact_text`` here as well: a URL that slipped in from a library message
    (``?user=admin&pwd=...``) must not reach the database, a log or the page.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(redact_text(message), *args)


class CaptureCancelled(CameraError):
    """The capture was stopped from outside (``SessionRunner.stop``) before it finished."""


@runtime_checkable
class Camera(Protocol):
    """What the runner needs from a camera.

    ``grab`` returns one *fresh* BGR ``uint8`` image (H, W, 3) or raises ``CameraError``.
    ``light(on)`` switches the camera's light (a no-op for cameras without one).
    ``close`` releases connections; it must be safe to call twice.

    Optional attributes read with ``getattr`` (all backends here provide them):
    ``name: str`` (shown in the UI and stored with snapshots) and ``has_light: bool``.
    """

    def grab(self) -> np.ndarray: ...

    def light(self, on: bool) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class LightController(Protocol):
    """Anything that can switch a light; every ``Camera`` is one (e.g. a phone's torch)."""

    def light(self, on: bool) -> None: ...

    def close(self) -> None: ...


def camera_name(camera: object) -> str:
    """Display name of a camera (``name`` attribute, else its class name)."""
    name = getattr(camera, "name", None)
    return str(name) if name else type(camera).__name__


def camera_has_light(camera: object) -> bool:
    """Whether switching the camera's light does anything (unknown cameras: assume yes)."""
    return bool(getattr(camera, "has_light", True))


# --- redaction ---------------------------------------------------------------------------

# ``redact_url`` (imported above) is the one shared with the database URLs: aas_core/redact.py.


def url_password(url: str | int | None) -> str | None:
    """The password embedded in ``scheme://user:password@host`` (to scrub it), else None."""
    if not isinstance(url, str) or "@" not in url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Remove literal secrets from a message that came from a library (defence in depth).

    Library exception texts are short and normally secret-free, but some include the request
    URL; this makes sure a password that slipped into one never reaches a log or the UI.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            quoted = quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, "***")
    return text


# --- decoding ----------------------------------------------------------------------------


def decode_image(data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int = 64 * 1024 * 1024) -> np.ndarray:
    """JPEG/PNG bytes -> BGR uint8 image, or ``CameraError`` naming the (redacted) source.

    Decoding and its limits are :func:`aas_core.media.decode.decode_image`'s (one decoder for
    uploads and cameras: the format is sniffed from the bytes and the pixel count is read
    from the header before any pixel is decoded); only the wording is the camera's: an HTML
    body is called one, because a camera that answers with its login page is the usual cause.
    Any other failure of the decoder is a ``CameraError`` too, never a raw library error.
    """
    try:
        return media_decode.decode_image(data, name=source, max_pixels=max_pixels, max_bytes=max_bytes)
    except media_decode.ImageError as exc:
        if exc.problem == "empty":
            message = f"{source}: empty image body"
        elif exc.problem == "too_many_pixels" and exc.size is not None:
            message = f"{source}: image {exc.size[0]}x{exc.size[1]} exceeds the limit of {max_pixels} pixels"
        elif exc.problem in ("not_an_image", "corrupt"):
            head = data[:16]
            kind = "HTML page" if head.lstrip().lower().startswith((b"<!doctype", b"<html")) else "data"
            message = f"{source}: could not decode the image ({len(data)} bytes of {kind}; expected JPEG or PNG)"
        else:
            message = str(exc)
        raise CameraError(message) from None
    except Exception as exc:  # noqa: BLE001 - the camera's bytes are hostile input (incl. MemoryError)
        raise CameraError(f"{source}: could not decode the image ({type(exc).__name__})") from None


def check_frame(img: np.ndarray | None, source: str) -> np.ndarray:
    """Normalise a frame to BGR uint8 (H, W, 3); ``CameraError`` if it is unusable."""
    if img is None or not isinstance(img, np.ndarray) or img.size == 0:
        raise CameraError(f"{source}: camera returned no image")
    if img.dtype != np.uint8:
        raise CameraError(f"{source}: unexpected pixel type {img.dtype} (need uint8)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise CameraError(f"{source}: unexpected image shape {img.shape}")
    return img


# --- clock ---------------------------------------------------------------------------------


class Clock(Protocol):
    """Time source for waits, injectable so tests of minute-long plans run in milliseconds."""

    def monotonic(self) -> float:
        """Seconds on a monotonic scale (for deadlines and schedules)."""
        ...

    def now(self) -> datetime:
        """Current wall-clock time, timezone-aware UTC (stored with snapshots)."""
        ...

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep ``seconds`` (<= 0: return at once); return True early if ``stop`` gets set."""
        ...


class RealClock:
    """The real clock: ``time.monotonic`` and ``Event.wait`` (interruptible sleep)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            if seconds > 0:
                time.sleep(seconds)
            return False
        if stop.is_set():
            return True
        return stop.wait(max(0.0, seconds))


REAL_CLOCK = RealClock()


# --- retry and light -----------------------------------------------------------------------


def grab_within(
    camera: Camera,
    timeout_s: float,
    *,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """``camera.grab()``, given up after ``timeout_s`` on ``clock`` (or when ``stop`` is set).

    Why a helper thread: the backends bound their own requests (``httpio.request``), but
    not everything can be bounded from inside -- a camera that trickles its HTTP headers,
    a DNS lookup, an FFmpeg call that ignores its timeout. The grab runs in a daemon thread
    and the caller stops waiting at the deadline: ``CameraError`` (the snapshot is then
    recorded missing and the light switched off by the caller's ``lit``), or
    ``CaptureCancelled`` on ``stop`` so that stopping a session never waits for a stuck
    camera. The abandoned thread ends on its own at the backend's timeout; its result is
    dropped. With a virtual clock (tests) the deadline does not pass while the grab runs.
    """
    name = camera_name(camera)
    outcome: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["image"] = camera.grab()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    deadline = clock.monotonic() + max(0.0, timeout_s)
    threading.Thread(target=work, name=f"aas-grab {name}", daemon=True).start()
    while not done.is_set():
        if stop is not None and stop.is_set():
            raise CaptureCancelled(f"{name}: capture cancelled")
        left = deadline - clock.monotonic()
        if left <= 0:
            log.warning("%s: grab still running after %.1f s; abandoned", name, timeout_s)
            raise CameraError(f"{name}: no image within {timeout_s:.1f} s (camera stuck or sending too slowly); "
                              "gave up")
        done.wait(min(left, 0.05) if stop is not None else left)
    error = outcome.get("error")
    if error is not None:
        raise error  # type: ignore[misc]
    return outcome["image"]  # type: ignore[return-value]


def grab_with_retry(
    camera: Camera,
    deadline_s: float,
    attempts: int = 3,
    *,
    backoff_s: float = 0.5,
    max_backoff_s: float = 5.0,
    min_attempt_s: float = 1.0,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """``camera.grab()`` up to ``attempts`` times, backing off exponentially, within ``deadline_s``.

    Why a deadline and not only a count: a snapshot is only meaningful near its scheduled
    time, and a camera that hangs for its full timeout on every attempt would otherwise push
    the capture minutes late. No attempt starts after the deadline (a backoff is cut short
    so that a last attempt starts at it), and an attempt still running at the deadline is
    abandoned (``grab_within``; an attempt that starts at the deadline still gets
    ``min_attempt_s``), so the whole call ends within ``deadline_s + min_attempt_s`` whatever
    the camera does. Non-camera exceptions (bugs) are not retried.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    start = clock.monotonic()
    deadline = start + max(0.0, deadline_s)
    name = camera_name(camera)

    def cancelled() -> CaptureCancelled:
        return CaptureCancelled(f"{name}: capture cancelled")

    def sleep(seconds: float) -> None:  # tenacity's sleep, on our clock and interruptible by stop
        if clock.wait(seconds, stop) or (stop is not None and stop.is_set()):
            raise cancelled()

    def log_failure(state: RetryCallState) -> None:
        log.warning("%s: grab attempt %d/%d failed: %s", name, state.attempt_number, attempts, _failure(state))

    def give_up(state: RetryCallState) -> np.ndarray:
        elapsed = clock.monotonic() - start
        raise CameraError(
            f"{name}: no image after {state.attempt_number} attempt(s) in {elapsed:.1f} s; "
            f"last error: {_failure(state)}"
        )

    def attempt() -> np.ndarray:
        return grab_within(camera, max(deadline - clock.monotonic(), min_attempt_s), clock=clock, stop=stop)

    backoff = wait_exponential(multiplier=backoff_s, max=max_backoff_s)
    retryer = Retrying(
        # anything else is a bug: raised at once; a cancel is not retried either
        retry=retry_if_exception_type(CameraError) & retry_if_not_exception_type(CaptureCancelled),
        # no attempt after the deadline, and a backoff is cut short so the last one starts at it
        stop=stop_after_attempt(attempts) | (lambda state: deadline - clock.monotonic() <= 0),
        wait=lambda state: min(backoff(state), deadline - clock.monotonic()),
        sleep=sleep,
        after=log_failure,
        retry_error_callback=give_up,
    )
    if stop is not None and stop.is_set():
        raise cancelled()
    return retryer(attempt)


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


@dataclass(frozen=True)
class Shot:
    """One captured image and how it was taken (stored with the snapshot)."""

    image: np.ndarray
    captured_at: datetime
    camera_name: str
    light_used: bool
    light_error: str | None = None  # why the light could not be used / switched off
    # Every frame of the snapshot's burst, ``image`` first (``capture_burst``); a single grab
    # is a burst of one. ``frame_errors``: why the frames that are missing from it are.
    frames: tuple[np.ndarray, ...] = ()
    frame_errors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.frames:
            object.__setattr__(self, "frames", (self.image,))


def _switch(camera: Camera, on: bool, tries: int = 1) -> str | None:
    """Switch the light; return an error message instead of raising (the image matters more)."""
    last: str | None = None
    for _ in range(tries):
        try:
            camera.light(on)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure here must not lose the image
            last = str(exc) if isinstance(exc, CameraError) else f"{type(exc).__name__}: {exc}"
    return last


@dataclass
class LightState:
    """Outcome of ``lit``: whether the light was on for the capture, and any light error."""

    used: bool = False
    error: str | None = None


@contextmanager
def lit(
    camera: Camera,
    settle_s: float = 1.0,
    *,
    use_light: bool = True,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> Iterator[LightState]:
    """``with lit(camera, 1.0) as light: img = camera.grab()`` -- light on, settle, ALWAYS off.

    The light is switched off on leaving the block whatever happens inside it (grab failed,
    timed out, cancelled, a bug), and also when the light-on request itself failed half-way
    (the light may be on although the request errored). A light that cannot be switched
    *on* does not prevent the capture -- an unlit image is better than a missing snapshot --
    it is reported in ``light.used`` / ``light.error``. A failed switch-off is retried once,
    then logged and reported in ``light.error``, never raised, so it cannot discard a good
    image. ``settle_s``: time for exposure / white balance to adapt to the light.
    """
    name = camera_name(camera)
    wants_light = use_light and camera_has_light(camera)
    state = LightState()
    try:
        if wants_light:
            state.error = _switch(camera, True)
            state.used = state.error is None
            if state.error:
                log.warning("%s: light could not be switched on: %s", name, state.error)
            elif settle_s > 0 and clock.wait(settle_s, stop):
                raise CaptureCancelled(f"{name}: capture cancelled")
        yield state
    finally:
        if wants_light:
            off_error = _switch(camera, False, tries=2)
            if off_error:
                log.error("%s: light could not be switched OFF: %s", name, off_error)
                prefix = f"{state.error}; " if state.error else ""
                state.error = f"{prefix}switching the light off failed: {off_error}"


def capture_shot(
    camera: Camera,
    *,
    settle_s: float = 1.0,
    deadline_s: float = 30.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
    use_light: bool = True,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> Shot:
    """Light on, settle, ``grab_with_retry`` within ``deadline_s``, light off (see ``lit``): a
    burst of one frame (``capture_burst``).

    The light stays on across retries (one on/off cycle per snapshot, not per attempt).
    """
    return capture_burst(camera, frames=1, settle_s=settle_s, deadline_s=deadline_s, attempts=attempts,
                         backoff_s=backoff_s, use_light=use_light, clock=clock, stop=stop)


def capture_burst(
    camera: Camera,
    *,
    frames: int = 1,
    interval_s: float = 0.4,
    settle_s: float = 1.0,
    deadline_s: float = 30.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
    use_light: bool = True,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> Shot:
    """One snapshot as a burst: light on, settle, ``frames`` grabs ``interval_s`` apart, light off.

    The light stays on for the whole burst and goes off after it whatever happens (``lit``):
    one on/off cycle per snapshot, not per frame. Every grab is bounded by the same capture
    window, ``deadline_s`` from the first grab: the first frame gets the retries of
    ``grab_with_retry``; each later one a single attempt (a burst's later frames only add
    evidence, and retrying them would stretch the burst past its planned span). A frame that
    fails is left out and the burst goes on: a burst with some frames is a usable snapshot.
    No frame at all raises ``CameraError`` (the snapshot is missing, as for a single grab).
    Frame ``k`` is due ``k * interval_s`` after the first frame arrived (or at once when a
    slow grab has passed that time).
    """
    if frames < 1:
        raise ValueError("frames must be >= 1")
    name = camera_name(camera)
    got: list[np.ndarray] = []
    errors: list[str] = []
    captured_at: datetime | None = None
    with lit(camera, settle_s, use_light=use_light, clock=clock, stop=stop) as light:
        deadline = clock.monotonic() + max(0.0, deadline_s)
        first_at: float | None = None
        for k in range(frames):
            if k:
                base = first_at if first_at is not None else clock.monotonic()
                if clock.wait(base + k * interval_s - clock.monotonic(), stop) or (stop is not None and stop.is_set()):
                    raise CaptureCancelled(f"{name}: capture cancelled")
            left = deadline - clock.monotonic()
            if k and left <= 0:
                errors.append(f"frames {k + 1}-{frames} of {frames} not taken: the capture window of "
                              f"{deadline_s:g} s had passed")
                break
            try:
                image = grab_with_retry(camera, left, attempts if not got else 1, backoff_s=backoff_s,
                                        clock=clock, stop=stop)
            except CaptureCancelled:
                raise
            except CameraError as exc:
                if frames == 1:
                    raise
                errors.append(f"frame {k + 1} of {frames}: {exc}")
                continue
            got.append(image)
            if first_at is None:
                first_at, captured_at = clock.monotonic(), clock.now()
    if not got:
        raise CameraError(f"{name}: no frame of a burst of {frames}; " + "; ".join(errors))
    assert captured_at is not None
    return Shot(image=got[0], captured_at=captured_at, camera_name=name, light_used=light.used,
                light_error=light.error, frames=tuple(got), frame_errors=tuple(redact_text(e) for e in errors))


def capture_with_light(
    camera: Camera,
    settle_s: float = 1.0,
    *,
    deadline_s: float = 0.0,
    attempts: int = 1,
    clock: Clock = REAL_CLOCK,
    stop: threading.Event | None = None,
) -> np.ndarray:
    """Light on, wait, grab, light off (always) -- the image only; see ``capture_shot``."""
    return capture_shot(
        camera,
        settle_s=settle_s,
        deadline_s=deadline_s,
        attempts=attempts,
        clock=clock,
        stop=stop,
    ).image

