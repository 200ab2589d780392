"""Credentials in camera URLs (query string and user:password@) never reach a message, a log or a repr."""

from __future__ import annotations

import logging

import pytest
from fake_camera import FakeCamera

from aas_core.capture import CameraConfig, CameraError, SessionRunner, SnapshotURLCamera, make_camera
from aas_core.redact import is_secret_key, redact_text, redact_url

SECRET = "s3cr3t-Xy9"
PARAMS = ["pwd", "loginpas", "psw", "password", "pass", "passwd", "token", "key", "apikey", "api_key", "auth",
          "access_token", "auth_token", "sig", "signature", "secret", "credential", "sessionid", "passphrase"]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_every_credential_query_parameter_is_redacted(param: str, case) -> None:  # type: ignore[no-untyped-def]
    key = case(param)
    url = f"http://cam.local:8080/snapshot.cgi?user=admin&{key}={SECRET}&chn=1"
    out = redact_url(url)
    assert SECRET not in out
    assert out == f"http://cam.local:8080/snapshot.cgi?user=admin&{key}=***&chn=1"  # the rest stays readable
    assert is_secret_key(key)
    text = f"GET {url} failed: timeout"
    assert SECRET not in redact_text(text) and "chn=1" in redact_text(text)
    assert SECRET not in redact_text(f"{key}={SECRET}")  # no scheme: a form body, a bare query


def test_harmless_keys_and_text_are_left_alone() -> None:
    assert redact_url("http://cam/snap.jpg?channel=1&user=admin&subtype=0") == "http://cam/snap.jpg?channel=1&user=admin&subtype=0"
    plain = "cam: no image after 3 attempt(s) in 61.0 s; last error: HTTP 500"
    assert redact_text(plain) == plain
    # sentence punctuation after a URL or a value stays (it is not part of the secret)
    assert redact_text("snapshot http://cam/x?pwd=abc: timed out.") == "snapshot http://cam/x?pwd=***: timed out."
    assert redact_text("sent pwd=abc, then failed") == "sent pwd=***, then failed"


@pytest.mark.parametrize(
    "text",
    [
        f"cannot open 'rtsp://admin:{SECRET}@10.0.0.5:554/live'",
        f"Client error '404 Not Found' for url 'http://10.0.0.5/cgi-bin/snap.cgi?loginuse=admin&loginpas={SECRET}'",
        f"connect to admin:{SECRET}@10.0.0.5 failed",
        f'{{"userName": "admin", "password": "{SECRET}"}}',
        f"/videostream.cgi?user=admin&PWD={SECRET}",
        f"rtsp://10.0.0.5/live;token={SECRET}",
    ],
)
def test_redact_text_finds_credentials_in_free_text(text: str) -> None:
    out = redact_text(text)
    assert SECRET not in out and "***" in out
    assert redact_text(out) == out  # idempotent


def test_camera_error_messages_are_redacted() -> None:
    exc = CameraError(f"snapshot http://cam/snapshot.cgi?user=admin&pwd={SECRET}: HTTP 500")
    assert SECRET not in str(exc) and SECRET not in repr(exc) and "pwd=***" in str(exc)


def test_camera_config_repr_and_display_hide_query_credentials() -> None:
    cfg = CameraConfig(kind="snapshot_url", url=f"http://cam/snapshot.cgi?user=admin&pwd={SECRET}",
                       light={"on": {"url": f"http://plug/on?apikey={SECRET}"}, "off": {"url": "http://plug/off"}})
    for shown in (repr(cfg), str(cfg), cfg.display_url or "", cfg.model_dump_json(), repr(make_camera(cfg))):
        assert SECRET not in shown
    assert cfg.display_url == "http://cam/snapshot.cgi?user=admin&pwd=***"
    assert SECRET in str(cfg.to_storage_dict())  # the one place it comes out: storing the secrets file


def test_aas_core_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("aas_core.capture.some_backend")
    url = f"http://cam/snapshot.cgi?user=admin&pwd={SECRET}"
    with caplog.at_level(logging.INFO):
        log.warning("grab from %s failed", url)
        logging.getLogger("aas_core").info("top level %s", url)
        try:
            raise RuntimeError(f"library error for url '{url}'")
        except RuntimeError:
            log.exception("unexpected")
    assert caplog.records and SECRET not in caplog.text
    assert "pwd=***" in caplog.text and "library error" in caplog.text  # the traceback is kept, redacted
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_failing_grab_from_a_url_with_pwd_leaks_nowhere(fake_camera: FakeCamera,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    fake_camera.non_image()
    url = f"{fake_camera.base_url}/snapshot.jpg?user=admin&pwd={SECRET}"
    cam = SnapshotURLCamera(url, timeout_s=2)
    missing: list[str] = []
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(CameraError) as err:
            cam.grab()
        runner = SessionRunner(cam, [0.0], on_snapshot=lambda *a: None, on_missing=lambda i, m: missing.append(m),
                               settle_s=0, capture_window_s=0.5, attempts=2, backoff_s=0.01)
        runner.start()
        assert runner.join(10)
    assert fake_camera.events_of("image_fault")  # the request did go to the URL with the password
    assert SECRET not in str(err.value) and SECRET not in repr(cam) and SECRET not in cam.name
    assert missing and all(SECRET not in m for m in missing)
    assert all(SECRET not in e for e in runner.status.errors)
    assert "HTML page" in caplog.text and SECRET not in caplog.text
    cam.close()
