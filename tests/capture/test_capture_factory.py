"""CameraConfig validation, secret handling and make_camera for every kind."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from fake_camera import FakeCamera, make_frame
from pydantic import ValidationError

from aas_core.capture import (
    CameraConfig,
    DahuaCamera,
    ImageSequenceCamera,
    IPWebcamCamera,
    SnapshotURLCamera,
    StreamCamera,
    WithLight,
    capture_shot,
    make_camera,
)

SECRET = "Sup3r-Secret-pw"


def _all_text(cfg: CameraConfig) -> str:
    return " ".join([repr(cfg), str(cfg), json.dumps(cfg.model_dump(mode="json")), f"{cfg!r}"])


def test_secrets_never_printed() -> None:
    cfg = CameraConfig(
        kind="dahua",
        host="10.1.2.3",
        username="admin",
        password=SECRET,
        rtsp_url=f"rtsp://admin:{SECRET}@10.1.2.3:554/cam/realmonitor?channel=1&subtype=0",
        light={
            "on": {"url": "http://relay/on", "headers": {"Authorization": f"Bearer {SECRET}"}},
            "off": {"url": "http://relay/off", "password": SECRET, "username": "u"},
        },
    )
    text = _all_text(cfg)
    assert SECRET not in text
    assert "rtsp://admin:***@10.1.2.3:554" in repr(cfg) and "10.1.2.3" in repr(cfg)
    stream = CameraConfig(kind="stream", url=f"rtsp://u:{SECRET}@cam/live")
    assert SECRET not in _all_text(stream) and stream.display_url == "rtsp://u:***@cam/live"
    assert SECRET not in repr(make_camera(stream))


def test_storage_round_trip_keeps_secrets() -> None:
    cfg = CameraConfig(
        kind="ipwebcam",
        url="http://192.168.1.5:8080",
        username="phone",
        password=SECRET,
        light={"on": {"url": "http://x/on", "json": {"on": True}}, "off": {"url": "http://x/off"}},
    )
    stored = json.loads(json.dumps(cfg.to_storage_dict()))
    assert stored["password"] == SECRET and stored["light"]["on"]["json"] == {"on": True}
    again = CameraConfig.model_validate(stored)
    assert again == cfg
    assert again.password is not None and again.password.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "stream"}, "exactly one of 'url' or 'device'"),
        ({"kind": "stream", "url": "rtsp://x", "device": 0}, "exactly one"),
        ({"kind": "snapshot_url"}, "needs: url"),
        ({"kind": "ipwebcam", "url": ""}, "needs: url"),
        ({"kind": "dahua", "host": "h"}, "needs: username, password"),
        ({"kind": "images"}, "needs: paths"),
        ({"kind": "onvif"}, "kind"),
        ({"kind": "stream", "device": 0, "passwrd": "x"}, "passwrd"),  # typos rejected
    ],
)
def test_validation(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraConfig.model_validate(data)


def test_make_camera_types(tmp_path: Path) -> None:
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), make_frame(0))
    assert isinstance(make_camera(CameraConfig(kind="stream", device=0)), StreamCamera)
    assert isinstance(make_camera(CameraConfig(kind="stream", url="rtsp://cam/live")), StreamCamera)
    assert isinstance(make_camera(CameraConfig(kind="snapshot_url", url="http://cam/s.jpg")), SnapshotURLCamera)
    assert isinstance(make_camera(CameraConfig(kind="ipwebcam", url="http://phone:8080")), IPWebcamCamera)
    assert isinstance(
        make_camera(CameraConfig(kind="dahua", host="10.0.0.2", username="a", password="b")), DahuaCamera
    )
    assert isinstance(make_camera(CameraConfig(kind="images", paths=[str(img)])), ImageSequenceCamera)
    with_light = make_camera(
        CameraConfig(
            kind="dahua",
            host="10.0.0.2",
            username="a",
            password="b",
            light={"on": {"url": "http://r/on"}, "off": {"url": "http://r/off"}},
        )
    )
    assert isinstance(with_light, WithLight)
    assert not with_light.camera.has_light  # type: ignore[attr-defined]  # external light replaces built-in


def test_factory_cameras_work_against_fake(fake_camera: FakeCamera) -> None:
    configs = [
        CameraConfig(kind="ipwebcam", url=fake_camera.base_url, timeout_s=2),
        CameraConfig(kind="dahua", host=fake_camera.host, username="admin", password=fake_camera.password, timeout_s=2),
        CameraConfig(kind="snapshot_url", url=fake_camera.base_url + "/snapshot.jpg", timeout_s=2),
        CameraConfig(kind="stream", url=fake_camera.base_url + "/video", timeout_s=2),
        CameraConfig(
            kind="snapshot_url",
            url=fake_camera.base_url + "/snapshot.jpg",
            light={
                "on": {"method": "GET", "url": fake_camera.base_url + "/enabletorch"},
                "off": {"method": "GET", "url": fake_camera.base_url + "/disabletorch"},
            },
        ),
    ]
    for cfg in configs:
        cam = make_camera(cfg)
        shot = capture_shot(cam, settle_s=0.01)
        assert shot.image.shape == (240, 320, 3), cfg
        assert not fake_camera.light_on, cfg
        cam.close()
    assert fake_camera.light_log() == [True, False] * 3  # ipwebcam, dahua, external light
