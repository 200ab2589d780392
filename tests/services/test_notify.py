"""At-risk notices (issue 14, item 5) against a real SMTP server on loopback (aiosmtpd), on SQLite
and the real MariaDB: who gets what, opt-out by link and by setting, dedupe within the week,
dry run, access, SMTP AUTH over a real STARTTLS, and no address in the audit log or the logs.

School: alice teaches C1 (at_risk: last 4 decided sessions, min 2, students notified). In the
window (oldest first; a fifth, older session and an aborted one lie outside it):
S1 absent, absent, attended, late (50 %), S2 always attended, S3 always absent but opted out,
S4 always absent without an e-mail address.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from typer.testing import CliRunner

from aas_core.config import Settings
from aas_core.db import repo, session_scope
from aas_core.db.models import AttendanceRecord, AuditLog, ClassSession, NoticeOptOut, NoticeSent, SessionStatus, utcnow
from aas_core.domain.course_config import CourseConfig
from aas_core.services import notify
from aas_core.services.auth import AccessDenied, AuthUser, create_user, to_auth_user

PASSWORD = "correct horse battery"  # noqa: S105 - test accounts
SMTP_PASSWORD = "smtp-pass-7f3a9c"  # noqa: S105 - the loopback server's
SECRET_KEY = "k" * 40
WINDOW = {  # oldest first; the first column is outside the last 4
    "S1": ["attended", "absent", "absent", "attended", "late"],
    "S2": ["attended"] * 5,
    "S3": ["absent"] * 5,
    "S4": ["absent"] * 5,
}


# --- a real SMTP server on loopback -------------------------------------------------------------------

class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Smtp:
    inbox: Inbox
    port: int
    logins: list[str]


def _authenticator(logins: list[str]):  # type: ignore[no-untyped-def]
    def check(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"aas" and \
            auth_data.password == SMTP_PASSWORD.encode()
        logins.append(f"{mechanism}:{'ok' if ok else 'refused'}")
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 235 / 535
    return check


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A plain SMTP server (no TLS) that also takes AUTH (allowed without TLS here: loopback only)."""
    inbox, logins, port = Inbox(), [], _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator(logins),
                     auth_exclude_mechanism=["LOGIN"],  # one mechanism: smtplib tries no second after a refusal
                     auth_require_tls=False)
    ctl.start()
    try:
        yield Smtp(inbox, port, logins)
    finally:
        ctl.stop()


def _settings(tmp_path: Path, url: str, port: int, **kw: object) -> Settings:
    base = dict(database_url=url, data_dir=tmp_path / "data", smtp_host="127.0.0.1", smtp_port=port,
                smtp_from="aas@school.test", smtp_security="none", secret_key=SECRET_KEY,
                public_url="https://aas.school.test")
    return Settings(**{**base, **kw})


# --- the school ----------------------------------------------------------------------------------

@dataclass
class School:
    url: str
    alice: AuthUser
    bob: AuthUser
    s1: AuthUser


@pytest.fixture
def school(migrated: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> School:
    from argon2 import PasswordHasher

    from aas_core.services import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    monkeypatch.chdir(tmp_path)  # no .streamlit/secrets.toml of the checkout is read
    url = migrated
    with session_scope(url) as s:
        alice = create_user(s, "alice", PASSWORD, "instructor", name="Alice", email="alice@school.test")
        bob = create_user(s, "bob", PASSWORD, "instructor", name="Bob", email="bob@school.test")
        users = {"alice": to_auth_user(s, alice), "bob": to_auth_user(s, bob)}
        cfg = CourseConfig().with_settings(["at_risk.last_sessions=4", "at_risk.min_sessions=2",
                                            "at_risk.notify_students=true"])
        course = repo.add_course(s, "C1", "Chemistry", instructor_id=users["alice"].instructor_id, config=cfg)
        studs = {}
        for sn in WINDOW:
            address = None if sn == "S4" else f"{sn.lower()}@mail.test"
            studs[sn] = repo.add_student(s, sn, f"Student {sn}", email=address)
            repo.enroll_in_course(s, course, studs[sn])
        s1 = create_user(s, "s1", PASSWORD, "student", student_number="S1")
        users["s1"] = to_auth_user(s, s1)
        start = utcnow() - dt.timedelta(days=30)
        for k in range(5):
            sess = ClassSession(course_id=course.id, status=SessionStatus.COMPLETED,
                                started_at=start + dt.timedelta(days=7 * k))
            s.add(sess)
            s.flush()
            for sn, statuses in WINDOW.items():
                s.add(AttendanceRecord(session_id=sess.id, student_id=studs[sn].id, auto_status=statuses[k],
                                       final_status=statuses[k]))
        # An aborted session (no records) and a newer running one decide nothing: outside the window.
        s.add(ClassSession(course_id=course.id, status=SessionStatus.ABORTED, started_at=utcnow()))
        s.add(NoticeOptOut(student_id=studs["S3"].id, kind="at_risk", source="cli"))
    return School(url, users["alice"], users["bob"], users["s1"])


def _audit(url: str) -> list[AuditLog]:
    with session_scope(url) as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


# --- tests ---------------------------------------------------------------------------------------

def test_notices_reach_the_at_risk_student_and_the_instructor_and_nobody_else(
        school: School, smtp: Smtp, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _settings(tmp_path, school.url, smtp.port)
    caplog.set_level(logging.DEBUG, logger="aas_core")
    plan = notify.send_at_risk(school.url, school.alice, "C1", cfg)
    assert len(plan.sessions) == 4 and plan.threshold == 0.75
    assert [x.student for x in plan.at_risk] == ["S3", "S4", "S1"]  # lowest rate first
    assert dict(plan.skipped) == {"S3": "opted out of at-risk notices", "S4": "no e-mail address on record"}
    assert [(n.kind, n.student) for n in plan.sent] == [("at_risk_student", "S1"), ("at_risk_digest", None)]

    [to_s1] = smtp.inbox.to("s1@mail.test")
    assert str(to_s1["Subject"]) == "[C1] Your attendance is under 75%" and to_s1["From"] == "aas@school.test"
    assert to_s1["Auto-Submitted"] == "auto-generated"
    body = to_s1.get_content()
    assert "Dear Student S1" in body and "is 50%" in body
    assert "attended 1, late 1, left early 0, absent 2" in body  # late counts as attended (partial_credit 1)
    link = str(to_s1["List-Unsubscribe"]).strip().strip("<>")
    assert link.startswith("https://aas.school.test/checkin?optout=") and link in body
    [digest] = smtp.inbox.to("alice@school.test")
    text = digest.get_content()
    assert str(digest["Subject"]) == "[C1] 3 student(s) under 75% attendance"
    assert all(sn in text for sn in ("S1", "S3", "S4")) and "S2" not in text
    assert {r for rcpt, _ in smtp.inbox.messages for r in rcpt} == {"s1@mail.test", "alice@school.test"}

    # Recorded and audited without an address; nothing logged names one either.
    with session_scope(school.url) as s:
        sent = s.execute(select(NoticeSent.kind, NoticeSent.student_id.is_not(None))).all()
    assert sorted(sent) == [("at_risk_digest", False), ("at_risk_student", True)]
    rows = [a for a in _audit(school.url) if a.action.startswith("notify.")]
    assert [(a.action, a.target_id) for a in rows] == [("notify.at_risk", "S1"), ("notify.digest", "C1")]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("aas_core"))
    everything = repr([(a.actor, a.target_id, a.details) for a in _audit(school.url)]) + ours
    assert "@mail.test" not in everything and "alice@school.test" not in everything
    assert SECRET_KEY not in everything


def test_a_second_run_in_the_week_sends_nothing_unless_asked_and_partial_credit_counts(
        school: School, smtp: Smtp, tmp_path: Path) -> None:
    cfg = _settings(tmp_path, school.url, smtp.port)
    notify.send_at_risk(school.url, school.alice, "C1", cfg)
    again = notify.send_at_risk(school.url, school.alice, "C1", cfg)
    assert again.sent == [] and len(smtp.inbox.messages) == 2
    assert dict(again.skipped)["S1"].startswith("already notified on ")
    assert dict(again.skipped)["instructor"].startswith("digest already sent on ")
    forced = notify.send_at_risk(school.url, school.alice, "C1", cfg, resend=True)
    assert len(forced.sent) == 2 and len(smtp.inbox.messages) == 4
    # The CLI's --threshold and --last: over the last 2 sessions S1 has attended + late = 100 %.
    last2 = notify.plan_at_risk(school.url, school.alice, "C1", cfg, last=2, threshold=0.6)
    assert [x.student for x in last2.at_risk] == ["S3", "S4"]
    # Late counting half a session: S1 is at 1.5 of 4.
    from aas_core.services import courses

    courses.update_config(school.url, school.alice, "C1", assignments=["at_risk.partial_credit=0.5"])
    half = notify.plan_at_risk(school.url, school.alice, "C1", cfg)
    assert next(x for x in half.standings if x.student == "S1").rate == pytest.approx(1.5 / 4)


def test_the_opt_out_link_stops_the_students_notices_and_a_forged_one_does_nothing(
        school: School, smtp: Smtp, tmp_path: Path) -> None:
    cfg = _settings(tmp_path, school.url, smtp.port)
    notify.send_at_risk(school.url, school.alice, "C1", cfg)
    link = str(smtp.inbox.to("s1@mail.test")[0]["List-Unsubscribe"]).strip().strip("<>")
    token = link.split("optout=", 1)[1]
    head, mac = token.split(".")
    for forged in (f"{head}.{'0' * len(mac)}", f"{int(head) + 1}.{mac}", "", "x.y", token + "0"):
        assert notify.opt_out_by_link(school.url, cfg, forged) is False
    # Another installation's key does not make valid tokens here.
    other = _settings(tmp_path, school.url, smtp.port, secret_key="z" * 40)
    assert notify.opt_out_by_link(school.url, other, token) is False
    assert notify.opted_out(school.url, school.s1, "S1") is False
    assert notify.opt_out_by_link(school.url, cfg, token) is True
    assert notify.opted_out(school.url, school.s1, "S1") is True
    plan = notify.send_at_risk(school.url, school.alice, "C1", cfg, resend=True)
    assert dict(plan.skipped)["S1"] == "opted out of at-risk notices"
    assert [n.kind for n in plan.sent] == ["at_risk_digest"]  # the instructor still hears about S1
    # The student switches them on again themself (the Check-in page's setting).
    assert notify.set_opt_out(school.url, school.s1, "S1", False) is True
    assert notify.plan_at_risk(school.url, school.alice, "C1", cfg, resend=True).notices[0].student == "S1"
    actions = [(a.action, a.actor) for a in _audit(school.url) if a.action.startswith("notice.")]
    assert actions == [("notice.opt_out", "optout-link"), ("notice.opt_in", "s1")]
    # Without a secret key there is no link: the e-mail says where to switch notices off.
    plain = _settings(tmp_path, school.url, smtp.port, secret_key=None)
    [n] = [x for x in notify.plan_at_risk(school.url, school.alice, "C1", plain, resend=True).notices if x.student]
    assert n.unsubscribe is None and "switch them off on the Check-in page" in n.body


def test_who_may_plan_send_and_switch_notices(school: School, smtp: Smtp, tmp_path: Path) -> None:
    cfg = _settings(tmp_path, school.url, smtp.port)
    with pytest.raises(AccessDenied):
        notify.send_at_risk(school.url, school.bob, "C1", cfg)
    with pytest.raises(AccessDenied):
        notify.plan_at_risk(school.url, school.s1, "C1", cfg)
    with pytest.raises(AccessDenied):  # a student switches only their own notices
        notify.set_opt_out(school.url, school.s1, "S2", True)
    with pytest.raises(AccessDenied):  # an instructor only for students on their courses
        notify.set_opt_out(school.url, school.bob, "S2", True)
    assert notify.set_opt_out(school.url, school.alice, "S2", True) is True
    assert smtp.inbox.messages == []


def test_dry_run_prints_what_would_go_and_sends_nothing(school: School, smtp: Smtp, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from aas_core import cli

    for k, v in {"AAS_SMTP_HOST": "127.0.0.1", "AAS_SMTP_PORT": str(smtp.port), "AAS_SMTP_FROM": "aas@school.test",
                 "AAS_SMTP_SECURITY": "none", "AAS_SECRET_KEY": SECRET_KEY,
                 "AAS_PUBLIC_URL": "https://aas.school.test"}.items():
        monkeypatch.setenv(k, v)
    from aas_core.config import get_settings

    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli.app, ["--database-url", school.url, "notify", "at-risk", "--course", "C1",
                                         "--dry-run"])
        assert r.exit_code == 0, r.output
        assert smtp.inbox.messages == []
        assert "To: s***@mail.test" in r.output and "To: a***@school.test" in r.output
        assert "s1@mail.test" not in r.output and "alice@school.test" not in r.output
        assert "checkin?optout=***" in r.output and "Dear Student S1" in r.output
        assert "not sent  S4: no e-mail address on record" in r.output
        assert "dry run: 2 notice(s) would be sent, nothing was sent" in r.output
        j = CliRunner().invoke(cli.app, ["--database-url", school.url, "notify", "at-risk", "--course", "C1",
                                         "--threshold", "0.7", "--last", "3", "--json"])
        assert j.exit_code == 0, j.output
        import json

        data = json.loads(j.output)
        assert data["threshold"] == 0.7 and len(data["sessions"]) == 3 and data["dry_run"] is False
        assert [x["student_id"] for x in data["at_risk"]] == ["S3", "S4", "S1"]  # S1: 2 of 3 = 67 %
        assert [x["kind"] for x in data["sent"]] == ["at_risk_student", "at_risk_digest"]
        assert "@" not in j.output  # no address in the JSON
        assert len(smtp.inbox.messages) == 2
        bad = CliRunner().invoke(cli.app, ["--database-url", school.url, "notify", "at-risk", "--course", "C1",
                                           "--threshold", "75"])
        assert bad.exit_code == 1 and "give a share between 0 and 1" in bad.output
    finally:
        get_settings.cache_clear()


def test_smtp_auth_wrong_password_and_a_missing_setting_say_why(school: School, smtp: Smtp, tmp_path: Path) -> None:
    good = _settings(tmp_path, school.url, smtp.port, smtp_user="aas", smtp_password=SMTP_PASSWORD)
    assert len(notify.send_at_risk(school.url, school.alice, "C1", good).sent) == 2
    assert smtp.logins and all(x.endswith(":ok") for x in smtp.logins)
    wrong = _settings(tmp_path, school.url, smtp.port, smtp_user="aas", smtp_password="not-it-4411")
    with pytest.raises(notify.NotifyError) as err:
        notify.send_at_risk(school.url, school.alice, "C1", wrong, resend=True)
    assert "SMTPAuthenticationError" in str(err.value) and "not-it-4411" not in str(err.value)
    # The default (STARTTLS) refuses a server that does not offer it, instead of sending in clear.
    starttls = _settings(tmp_path, school.url, smtp.port, smtp_security="starttls")
    with pytest.raises(notify.NotifyError, match="does not offer STARTTLS"):
        notify.send_at_risk(school.url, school.alice, "C1", starttls, resend=True)
    with pytest.raises(notify.NotifyError, match="set AAS_SMTP_HOST"):
        notify.send_at_risk(school.url, school.alice, "C1", _settings(tmp_path, school.url, 1, smtp_host=None),
                            resend=True)
    assert len(smtp.inbox.messages) == 2  # nothing more went out


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # TLS is not about the database
def test_starttls_with_auth_against_a_server_that_requires_it(
        school: School, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default security: STARTTLS, certificate verified (the test trusts its own CA through
    SSL_CERT_FILE, which OpenSSL reads), then AUTH; the server refuses mail before STARTTLS."""
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox, logins, port = Inbox(), [], _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls, require_starttls=True,
                     authenticator=_authenticator(logins))
    ctl.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        cfg = _settings(tmp_path, school.url, port, smtp_security="starttls", smtp_user="aas",
                        smtp_password=SMTP_PASSWORD)
        assert len(notify.send_at_risk(school.url, school.alice, "C1", cfg).sent) == 2
        assert logins == ["PLAIN:ok"] or logins == ["LOGIN:ok"]
        assert len(inbox.messages) == 2
        # Without trusting that certificate the client refuses the server (no mail, a clear error).
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
        with pytest.raises(notify.NotifyError, match="SSLCertVerificationError"):
            notify.send_at_risk(school.url, school.alice, "C1", cfg, resend=True)
        assert len(inbox.messages) == 2
    finally:
        ctl.stop()
