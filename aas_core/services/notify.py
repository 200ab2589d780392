"""At-risk notices by e-mail: the instructor's weekly digest and, when the course enables it, a
notice to each at-risk student (``aas notify at-risk``).

What a notice says comes from the pure ``domain.at_risk`` (how late / left early count is
documented there) over the course's last N decided sessions. Sending is stdlib ``smtplib`` /
``email`` (the kept library for SMTP: it speaks STARTTLS, implicit TLS and AUTH, and nothing
more is needed). Every notice sent is recorded (``NoticeSent``, without address or text) and
audited in the same transaction; a second run within :data:`RESEND_AFTER` sends a notice again
only with ``resend``.

Addresses are never logged, audited or printed in clear (dry runs mask them); the SMTP password
comes from the environment or the secrets file (``config.with_secrets_file``).

Opt-out: a student who opted out (``NoticeOptOut``; the link in the e-mail, the Check-in page or
``aas notify opt-out``) gets no notice. The link carries ``<student db id>.<HMAC>`` keyed with
``AAS_SECRET_KEY``: it opts that one student out and can do nothing else. Without a secret key
(or ``AAS_PUBLIC_URL``) the e-mail says where to switch notices off instead of carrying a link.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aas_core.config import Settings, with_secrets_file
from aas_core.db import repo, session_scope
from aas_core.db.models import (
    AttendanceRecord,
    ClassSession,
    Course,
    NoticeOptOut,
    NoticeSent,
    SessionStatus,
    Student,
    utcnow,
)
from aas_core.domain.at_risk import Standing, standings
from aas_core.services.auth import AuthUser, require_course, require_student_access

log = logging.getLogger(__name__)

__all__ = ["AT_RISK", "NotifyError", "Notice", "AtRiskPlan", "plan_at_risk", "send_at_risk", "mask_address",
           "opt_out_token", "opt_out_by_link", "set_opt_out", "opted_out", "smtp_ready"]

#: The kind of notice an opt-out refers to.
AT_RISK = "at_risk"
#: A notice already sent for the same course (and student) this recently is not sent again unless asked.
RESEND_AFTER = timedelta(days=6)
#: Where a link in an e-mail leads: the Check-in page handles ``?optout=TOKEN`` (``pages/checkin.py``).
OPT_OUT_PATH = "checkin"


class NotifyError(RuntimeError):
    """Notices cannot be sent (SMTP not configured, unreachable, refused); the message says why."""


@dataclass
class Notice:
    """One e-mail to send. ``to`` is held in memory only (never logged, audited or stored)."""

    kind: str  # at_risk_student | at_risk_digest
    to: str
    subject: str
    body: str
    student: str | None = None  # the student a student notice is about
    rate: float | None = None
    unsubscribe: str | None = None  # the opt-out link (student notices)

    def message(self, sender: str) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = self.to
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        if self.unsubscribe:
            msg["List-Unsubscribe"] = f"<{self.unsubscribe}>"
        msg.set_content(self.body)
        return msg

    def shown(self) -> str:
        """The notice as a dry run prints it: the address masked, the opt-out token hidden."""
        body = self.body.replace(self.unsubscribe, _hide_token(self.unsubscribe)) if self.unsubscribe else self.body
        return f"To: {mask_address(self.to)}\nSubject: {self.subject}\n\n{body}"


@dataclass
class AtRiskPlan:
    """What ``aas notify at-risk`` would send for a course, and why anything is not sent."""

    course: str
    sessions: list[int]  # the window: decided sessions, newest first
    threshold: float
    last: int
    standings: list[Standing]
    notices: list[Notice] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (who, why)
    sent: list[Notice] = field(default_factory=list)
    dry_run: bool = True

    @property
    def at_risk(self) -> list[Standing]:
        return [x for x in self.standings if x.at_risk]

    def as_json(self) -> dict[str, Any]:
        """For ``--json``: no addresses, no message text."""
        return {"course": self.course, "sessions": self.sessions, "threshold": self.threshold, "last": self.last,
                "dry_run": self.dry_run,
                "at_risk": [{"student_id": x.student, "rate": round(x.rate or 0.0, 4), "sessions": x.sessions,
                             "counts": x.counts} for x in self.at_risk],
                "notices": [{"kind": n.kind, "student_id": n.student} for n in self.notices],
                "sent": [{"kind": n.kind, "student_id": n.student} for n in self.sent],
                "skipped": [{"who": w, "reason": r} for w, r in self.skipped]}


def mask_address(address: str) -> str:
    """``alice.smith@school.edu`` -> ``a***@school.edu`` (dry runs, messages)."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


def _hide_token(link: str) -> str:
    base, sep, _ = link.partition("optout=")
    return f"{base}{sep}***" if sep else link


# --- settings -----------------------------------------------------------------------------------

def smtp_ready(settings: Settings) -> str | None:
    """None when notices can be sent, else what is missing (for the CLI and the page)."""
    s = with_secrets_file(settings)
    missing = [name for name, v in (("AAS_SMTP_HOST", s.smtp_host), ("AAS_SMTP_FROM", s.smtp_from)) if not v]
    if missing:
        return (f"e-mail is not configured: set {' and '.join(missing)} (environment or [smtp] in "
                ".streamlit/secrets.toml)")
    if s.smtp_user and s.smtp_password is None:
        return "AAS_SMTP_USER is set but no password (AAS_SMTP_PASSWORD or [smtp] password in the secrets file)"
    return None


def _key(settings: Settings) -> bytes | None:
    key = settings.secret_key.get_secret_value() if settings.secret_key is not None else ""
    return key.encode() if key else None


# --- opt-out --------------------------------------------------------------------------------------

def opt_out_token(settings: Settings, student_id: int, student_number: str, kind: str = AT_RISK) -> str | None:
    """``<id>.<mac>``: opts this one student out of ``kind``; None without ``AAS_SECRET_KEY``.

    The student number is inside the MAC (not the URL), so a token stays tied to the person
    even if a database reuses a deleted row's id.
    """
    key = _key(with_secrets_file(settings))
    if key is None:
        return None
    mac = hmac.new(key, f"aas-optout\x1f{kind}\x1f{student_id}\x1f{student_number}".encode(), hashlib.sha256)
    return f"{student_id}.{mac.hexdigest()[:32]}"


def opt_out_link(settings: Settings, student_id: int, student_number: str) -> str | None:
    s = with_secrets_file(settings)
    token = opt_out_token(s, student_id, student_number)
    if token is None or not s.public_url:
        return None
    return f"{s.public_url.rstrip('/')}/{OPT_OUT_PATH}?optout={token}"


def _record_opt_out(s: Session, student: Student, kind: str, source: str, actor: str, on: bool) -> bool:
    row = s.scalar(select(NoticeOptOut).where(NoticeOptOut.student_id == student.id, NoticeOptOut.kind == kind))
    if on and row is None:
        s.add(NoticeOptOut(student_id=student.id, kind=kind, source=source))
    elif not on and row is not None:
        s.delete(row)
    else:
        return False
    repo.audit(s, actor, "notice.opt_out" if on else "notice.opt_in", "student", student.student_number,
               kind=kind, source=source)
    return True


def opt_out_by_link(url: str, settings: Settings, token: str) -> bool:
    """Opt the student of a link's ``token`` out of at-risk notices (no sign-in: the token is the
    proof). False when the token is not valid (the page says so, naming nobody)."""
    head, _, mac = (token or "").strip().partition(".")
    if not head.isdigit() or not mac or len(token) > 80:
        return False
    with session_scope(url) as s:
        student = s.get(Student, int(head))
        if student is None:
            return False
        expected = opt_out_token(settings, student.id, student.student_number)
        if expected is None or not hmac.compare_digest(expected, token.strip()):
            return False
        # The actor names no one (an erasure pseudonymises ids, not text built from them).
        _record_opt_out(s, student, AT_RISK, "link", "optout-link", True)
        return True


def set_opt_out(url: str, user: AuthUser, student_number: str, opted_out: bool, *, source: str = "page") -> bool:
    """Switch a student's at-risk notices off (``opted_out``) or on again: the student themself,
    or (on the student's request) an instructor of one of their courses or an admin. Returns
    whether anything changed."""
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)  # a student: only themself
        return _record_opt_out(s, student, AT_RISK, source, user.username, opted_out)


def opted_out(url: str, user: AuthUser, student_number: str) -> bool:
    with session_scope(url) as s:
        student = repo.get_student(s, student_number)
        require_student_access(user, student)
        return s.scalar(select(NoticeOptOut.id).where(NoticeOptOut.student_id == student.id,
                                                      NoticeOptOut.kind == AT_RISK)) is not None


# --- the plan -------------------------------------------------------------------------------------

def decided_sessions(s: Session, course: Course, last: int) -> list[ClassSession]:
    """The course's last ``last`` decided sessions (completed, with records), newest first."""
    has_records = select(AttendanceRecord.id).where(AttendanceRecord.session_id == ClassSession.id).exists()
    q = (select(ClassSession).where(ClassSession.course_id == course.id, ClassSession.status == SessionStatus.COMPLETED,
                                    has_records)
         .order_by(ClassSession.started_at.desc(), ClassSession.id.desc()).limit(last))
    return list(s.scalars(q))


def _recently_sent(s: Session, course: Course, kind: str, student_id: int | None, now: datetime) -> datetime | None:
    q = select(NoticeSent.sent_at).where(NoticeSent.course_id == course.id, NoticeSent.kind == kind,
                                         NoticeSent.sent_at >= now - RESEND_AFTER)
    q = q.where(NoticeSent.student_id.is_(None) if student_id is None else NoticeSent.student_id == student_id)
    return s.scalar(q.order_by(NoticeSent.sent_at.desc()).limit(1))


def _student_body(course: Course, student: Student, x: Standing, threshold: float, last: int, link: str | None) -> str:
    stop = (f"To stop these notices: {link}" if link else
            "To stop these notices, switch them off on the Check-in page of AAS or ask your instructor.")
    return (f"Dear {student.name},\n\n"
            f"your attendance in {course.code} ({course.name}) over its last {x.sessions} sessions is "
            f"{x.rate:.0%}, under the course's {threshold:.0%}.\n\n"
            f"  {x.summary()}\n\n"
            "If a status is wrong, ask your instructor to check it: every status can be reviewed.\n\n"
            f"{stop}\n\n-- AAS attendance (sent automatically; please do not reply)\n")


def _digest_body(course: Course, at_risk: Sequence[Standing], names: dict[str, str], threshold: float,
                 n_sessions: int) -> str:
    lines = [f"{x.student}  {names.get(x.student, '')}: {x.summary()}" for x in at_risk]
    return (f"Attendance digest for {course.code} ({course.name})\n\n"
            f"{len(at_risk)} student(s) under {threshold:.0%} over the course's last {n_sessions} decided "
            "session(s) (late and left early count as the course's at_risk.partial_credit):\n\n"
            + "\n".join(f"  {line}" for line in lines)
            + "\n\nStatuses can be reviewed on the Live Session page of AAS.\n\n"
              "-- AAS attendance (sent automatically)\n")


def plan_at_risk(url: str, user: AuthUser, course_code: str, settings: Settings, *, threshold: float | None = None,
                 last: int | None = None, resend: bool = False, now: datetime | None = None) -> AtRiskPlan:
    """Who is at risk in a course and which notices would go (nothing is sent; the course's
    instructor or an admin). ``threshold`` / ``last`` override the course's ``at_risk`` settings."""
    now = now or utcnow()
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        require_course(user, course)
        cfg = course.config.at_risk
        threshold = cfg.threshold if threshold is None else float(threshold)
        last = cfg.last_sessions if last is None else int(last)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"--threshold {threshold:g}: give a share between 0 and 1 (e.g. 0.75)")
        if not 1 <= last <= 100:
            raise ValueError(f"--last {last}: give a number of sessions between 1 and 100")
        window = decided_sessions(s, course, last)
        roster = {st.id: st for st in repo.roster(s, course)}
        statuses: dict[str, list[str]] = {st.student_number: [] for st in roster.values()}
        if window:
            recs = s.execute(select(AttendanceRecord.student_id, AttendanceRecord.final_status)
                             .where(AttendanceRecord.session_id.in_([x.id for x in window]))).all()
            for sid, status in recs:
                if sid in roster:
                    statuses[roster[sid].student_number].append(status)
        result = standings(statuses, threshold=threshold, min_sessions=min(cfg.min_sessions, last),
                           partial_credit=cfg.partial_credit)
        plan = AtRiskPlan(course.code, [x.id for x in window], threshold, last, result)
        by_number = {st.student_number: st for st in roster.values()}
        risky = plan.at_risk
        if not window:
            plan.skipped.append(("everyone", "the course has no decided session yet"))
            return plan
        if cfg.notify_students:
            opted = set(s.scalars(select(NoticeOptOut.student_id).where(NoticeOptOut.kind == AT_RISK)))
            for x in risky:
                st = by_number[x.student]
                if st.id in opted:
                    plan.skipped.append((x.student, "opted out of at-risk notices"))
                elif not st.email:
                    plan.skipped.append((x.student, "no e-mail address on record"))
                elif not resend and (when := _recently_sent(s, course, "at_risk_student", st.id, now)):
                    plan.skipped.append((x.student, f"already notified on {when:%Y-%m-%d} (use --resend)"))
                else:
                    link = opt_out_link(settings, st.id, st.student_number)
                    plan.notices.append(Notice(
                        "at_risk_student", st.email,
                        f"[{course.code}] Your attendance is under {threshold:.0%}",
                        _student_body(course, st, x, threshold, last, link), x.student, x.rate, link))
        elif risky:
            plan.skipped.append(("students", "the course does not notify students (at_risk.notify_students)"))
        if not cfg.notify_instructor:
            plan.skipped.append(("instructor", "the course sends no digest (at_risk.notify_instructor)"))
        elif not risky:
            plan.skipped.append(("instructor", "no student at risk: no digest"))
        elif course.instructor is None or not course.instructor.email:
            plan.skipped.append(("instructor", "the course's instructor has no e-mail address on record"))
        elif not resend and (when := _recently_sent(s, course, "at_risk_digest", None, now)):
            plan.skipped.append(("instructor", f"digest already sent on {when:%Y-%m-%d} (use --resend)"))
        else:
            names = {st.student_number: st.name for st in roster.values()}
            plan.notices.append(Notice(
                "at_risk_digest", course.instructor.email,
                f"[{course.code}] {len(risky)} student(s) under {threshold:.0%} attendance",
                _digest_body(course, risky, names, threshold, len(window))))
        return plan


# --- sending ----------------------------------------------------------------------------------

def _connect(settings: Settings) -> smtplib.SMTP:
    s = settings
    assert s.smtp_host is not None
    try:
        if s.smtp_security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s,
                                                  context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
            conn.ehlo()
            if s.smtp_security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.quit()
                    raise NotifyError(f"{s.smtp_host}:{s.smtp_port} does not offer STARTTLS; set AAS_SMTP_SECURITY=ssl "
                                      "(implicit TLS) or, for a relay on a trusted network only, none")
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
        if s.smtp_user:
            assert s.smtp_password is not None
            conn.login(s.smtp_user, s.smtp_password.get_secret_value())
        return conn
    except NotifyError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        # smtplib's messages carry the server's answer, never the password we sent.
        raise NotifyError(f"cannot send through {s.smtp_host}:{s.smtp_port}: {exc.__class__.__name__}: {exc}") \
            from None


def send_at_risk(url: str, user: AuthUser, course_code: str, settings: Settings, *, threshold: float | None = None,
                 last: int | None = None, dry_run: bool = False, resend: bool = False) -> AtRiskPlan:
    """Plan (``plan_at_risk``) and, unless ``dry_run``, send the notices over one SMTP connection.

    Each notice is recorded and audited right after the server accepted it, so a failure half-way
    keeps the record of what went (a retry sends only the rest). ``NotifyError`` when e-mail is
    not configured or the server fails; ``plan.sent`` then holds what was sent before.
    """
    plan = plan_at_risk(url, user, course_code, settings, threshold=threshold, last=last, resend=resend)
    plan.dry_run = dry_run
    if dry_run or not plan.notices:
        return plan
    problem = smtp_ready(settings)
    if problem:
        raise NotifyError(problem)
    s_cfg = with_secrets_file(settings)
    assert s_cfg.smtp_from is not None
    conn = _connect(s_cfg)
    try:
        for notice in plan.notices:
            try:
                conn.send_message(notice.message(s_cfg.smtp_from))
            except (OSError, smtplib.SMTPException) as exc:
                raise NotifyError(f"sending a {notice.kind.replace('_', ' ')} notice failed after {len(plan.sent)} "
                                  f"sent: {exc.__class__.__name__}: {exc}") from None
            _record_sent(url, user, plan.course, notice)
            plan.sent.append(notice)
            log.info("sent %s notice for %s%s", notice.kind, plan.course,
                     f" (student {notice.student})" if notice.student else "")
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            pass
    return plan


def _record_sent(url: str, user: AuthUser, course_code: str, notice: Notice) -> None:
    with session_scope(url) as s:
        course = repo.get_course(s, course_code)
        student = repo.get_student(s, notice.student) if notice.student else None
        s.add(NoticeSent(kind=notice.kind, course_id=course.id, student_id=student.id if student else None,
                         rate=notice.rate))
        if student is not None:
            repo.audit(s, user.username, "notify.at_risk", "student", student.student_number, course=course.code,
                       rate=round(notice.rate or 0.0, 4))
        else:
            repo.audit(s, user.username, "notify.digest", "course", course.code, kind=notice.kind)
