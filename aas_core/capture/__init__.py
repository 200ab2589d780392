"""Cameras, lights, capture plans and the session runner.

Every backend implements the small ``Camera`` protocol (``grab``/``light``/``close``); the
guarantees that matter in a classroom -- the light is always switched off again, retries
stop at a deadline, no password ever appears in a message -- live in ``base`` and apply
to all of them.
"""

from aas_core.domain.plans import CapturePlan

from .base import (
    Camera,
    CameraError,
    CaptureCancelled,
    Clock,
    LightController,
    LightState,
    RealClock,
    Shot,
    camera_has_light,
    camera_name,
    capture_burst,
    capture_shot,
    capture_with_light,
    decode_image,
    grab_with_retry,
    grab_within,
    lit,
    redact_url,
)
from .dahua import DahuaCamera, dahua_login_hash
from .factory import CameraConfig, CameraKind, LightConfig, make_camera
from .http_light import HttpLight, RequestSpec, WithLight
from .images import ImageSequenceCamera
from .ipwebcam import IPWebcamCamera
from .runner import RunnerStatus, SessionRunner
from .stream import SnapshotURLCamera, StreamCamera

__all__ = [
    "Camera",
    "CameraConfig",
    "CameraError",
    "CameraKind",
    "CaptureCancelled",
    "CapturePlan",
    "Clock",
    "DahuaCamera",
    "HttpLight",
    "IPWebcamCamera",
    "ImageSequenceCamera",
    "LightConfig",
    "LightController",
    "LightState",
    "RealClock",
    "RequestSpec",
    "RunnerStatus",
    "SessionRunner",
    "Shot",
    "SnapshotURLCamera",
    "StreamCamera",
    "WithLight",
    "camera_has_light",
    "camera_name",
    "capture_burst",
    "capture_shot",
    "capture_with_light",
    "dahua_login_hash",
    "decode_image",
    "grab_with_retry",
    "grab_within",
    "lit",
    "make_camera",
    "redact_url",
]
