"""Self check-in (issue 14, item 4) through the services, on SQLite and the real MariaDB, with real
photos (faces_dev) through the real 'fast' pipeline.

The school is ``trust_world``'s: alice teaches A101 (S1, S2), bob teaches B202 (S2, S3); S1 and S2
have student accounts. alice enrolls real photos: S1 is Colin Powell, S2 Vladimir Putin. A101 runs
a two-snapshot session in which the camera sees nobody (a hybrid lecture's students at home):
every presence below comes from a check-in.

Times are given to the services (``now``) on a timeline aligned to the 30-s code steps, so an
"expired" code is one step old for sure, not by luck of the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from trust_world import World, all_files

from aas_core.config import Settings
from aas_core.db import session_scope
from aas_core.db.models import (
    AuditLog,
    CheckIn,
    CheckInAttempt,
    ClassSession,
    SessionStatus,
    Snapshot,
    SnapshotStatus,
    utcnow,
)
from aas_core.domain.course_config import SessionPlan
from aas_core.media.decode import decode_image
from aas_core.services import checkin, privacy, review
from aas_core.services import students as studs
from aas_core.services.auth import AccessDenied, AuthUser, create_user, to_auth_user
from aas_core.services.sessions import SessionService

POWELL, PUTIN, OBAMA = "lfw_Colin_Powell", "lfw_Vladimir_Putin", "glint_Barack_Obama"


def photo(data_dir: Path, person: str, i: int) -> np.ndarray:
    p = data_dir / "faces_dev" / person / f"{i}.jpg"
    return decode_image(p.read_bytes(), name=p.name)


@pytest.fixture
def cfg(world: World, models_dir: Path) -> Settings:
    return Settings(data_dir=world.store.root, models_dir=models_dir, database_url=world.url,
                    secret_key="a-test-key-of-enough-length-0123456789")


@pytest.fixture
def lecture(world: World, cfg: Settings, fast_pipeline, data_dir: Path) -> int:  # type: ignore[no-untyped-def]
    """Real galleries for S1 and S2, and a running two-snapshot A101 session."""
    u = world.users
    for sn, person in (("S1", POWELL), ("S2", PUTIN)):
        out = studs.enroll_photos(world.url, u["alice"], sn, [(f"{person}_{i}", photo(data_dir, person, i))
                                                              for i in (1, 2, 3)], fast_pipeline, world.store, cfg)
        assert all(o.accepted for o in out), [o.line() for o in out]
    with session_scope(world.url) as s:
        a101 = s.scalar(select(ClassSession.course_id).where(ClassSession.id == world.sessions["A_new"]))
        sess = ClassSession(course_id=a101, status=SessionStatus.RUNNING, capture_plan=SessionPlan.for_images(2),
                            started_at=utcnow())
        s.add(sess)
        s.flush()
        return sess.id


def t0() -> datetime:
    """Two seconds into the current 30-s code step (naive UTC, as stored)."""
    now = utcnow().replace(microsecond=0)
    return now - timedelta(seconds=now.second % 30) + timedelta(seconds=2)


def _finalize(world: World, cfg: Settings, pipeline, session_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The camera's two snapshots (processed, nobody in them), then the decision."""
    with session_scope(world.url) as s:
        for k in range(2):
            s.add(Snapshot(session_id=session_id, index=k, status=SnapshotStatus.PROCESSED, captured_at=utcnow()))
    return SessionService(world.url, world.store, pipeline, cfg).finalize(session_id).statuses


def _checkins(world: World) -> int:
    with session_scope(world.url) as s:
        return int(s.scalar(select(func.count(CheckIn.id))) or 0)


def test_a_student_checks_in_with_the_current_code_and_the_decision_reads_it(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int) -> None:
    u, t = world.users, t0()
    w = checkin.open_window(world.url, u["alice"], lecture, 0, minutes=5, now=t)
    [shown] = checkin.display_sessions(world.url, u["alice"], now=t)
    assert shown.window == w and shown.n_snapshots == 2
    code = checkin.current_code(world.url, u["alice"], w.id, cfg, now=t + timedelta(seconds=3))
    assert len(code.code) == 6 and code.code.isdigit() and 1 <= code.seconds_left <= 30 and code.roster == 2
    assert checkin.open_windows_for(world.url, u["s1"], now=t + timedelta(seconds=5)) == [w]
    assert checkin.enter_code(world.url, u["s1"], f" {code.code[:3]} {code.code[3:]} ", cfg,
                              now=t + timedelta(seconds=8)) == w
    done = checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, photo(data_dir, POWELL, 4),
                                 now=t + timedelta(seconds=40))  # the selfie may take longer than the code lives
    assert done.course_code == "A101" and done.snapshot_index == 0
    assert done.threshold == pytest.approx(fast_pipeline.threshold + 0.10) and done.similarity >= done.threshold
    assert checkin.current_code(world.url, u["alice"], w.id, cfg, now=t + timedelta(seconds=41)).checked_in == 1
    with pytest.raises(checkin.CheckInRefused, match="already checked in"):
        checkin.enter_code(world.url, u["s1"], code.code, cfg, now=t + timedelta(seconds=9))
    assert [c["snapshot"] for c in checkin.my_check_ins(world.url, u["s1"])] == [1]

    # The decision reads the check-in as a sighting in snapshot 1: seen first, not last.
    statuses = _finalize(world, cfg, fast_pipeline, lecture)
    assert statuses == {"S1": "left_early", "S2": "absent"}
    r = review.load_review(world.url, world.store, u["alice"], lecture)
    [ev] = next(x for x in r.rows if x.student_number == "S1").evidence
    assert ev.source == "self_check_in" and ev.snapshot == 0 and ev.crop is not None
    s1_row = next(x for x in review.editor_rows(r) if x["student_id"] == "S1")
    assert s1_row["similarity"].startswith("check-in 0.") and s1_row["similarity"].endswith(" · –")
    with session_scope(world.url) as s:
        actions = [a.action for a in s.scalars(select(AuditLog).where(AuditLog.action.like("checkin.%"))
                                                .order_by(AuditLog.id))]
    assert actions == ["checkin.open", "checkin.code_ok", "checkin.checked_in"]
    # A check-in is refused once the session has ended.
    with pytest.raises(checkin.CheckInRefused, match="No check-in is open"):
        checkin.enter_code(world.url, u["s2"], code.code, cfg, now=t + timedelta(seconds=9))


def test_an_expired_code_checks_no_one_in(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int) -> None:
    u, t = world.users, t0()
    first = checkin.open_window(world.url, u["alice"], lecture, 0, now=t)
    old_window_code = checkin.current_code(world.url, u["alice"], first.id, cfg, now=t).code
    w = checkin.open_window(world.url, u["alice"], lecture, 0, now=t + timedelta(seconds=1))  # closes the first
    shown = checkin.current_code(world.url, u["alice"], w.id, cfg, now=t + timedelta(seconds=3)).code
    # Sent to a friend at home who types it in the next 30-s step: refused, whatever the face.
    with pytest.raises(checkin.CheckInRefused, match="That code has expired") as err:
        checkin.enter_code(world.url, u["s1"], shown, cfg, now=t + timedelta(seconds=31))
    assert err.value.attempts_left == 4
    # Two minutes later: still refused, as expired.
    with pytest.raises(checkin.CheckInRefused, match="expired"):
        checkin.enter_code(world.url, u["s1"], shown, cfg, now=t + timedelta(seconds=150))
    # The code of the window before, in its own step: not this window's code.
    if old_window_code != shown:
        with pytest.raises(checkin.CheckInRefused, match="not the code"):
            checkin.enter_code(world.url, u["s1"], old_window_code, cfg, now=t + timedelta(seconds=4))
    # Without a right code the selfie is not even looked at.
    with pytest.raises(checkin.CheckInRefused, match="Enter the code on the room's screen first"):
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, photo(data_dir, POWELL, 4),
                              now=t + timedelta(seconds=32))
    # A right code whose 2 minutes for the selfie have passed does not count either.
    checkin.enter_code(world.url, u["s1"], shown, cfg, now=t + timedelta(seconds=20))
    with pytest.raises(checkin.CheckInRefused, match="first"):
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, photo(data_dir, POWELL, 4),
                              now=t + timedelta(seconds=20 + 121))
    # A code after the window closed (5 of its minutes... its closing time) opens nothing.
    late = w.closes_at + timedelta(seconds=1)
    with pytest.raises(checkin.CheckInRefused, match="No check-in is open"):
        checkin.enter_code(world.url, u["s1"], shown, cfg, now=late)
    assert _checkins(world) == 0
    assert _finalize(world, cfg, fast_pipeline, lecture) == {"S1": "absent", "S2": "absent"}
    with session_scope(world.url) as s:
        outcomes = [a.outcome for a in s.scalars(select(CheckInAttempt).order_by(CheckInAttempt.id))]
        assert outcomes.count("expired_code") == 2 and "checked_in" not in outcomes


def test_a_student_cannot_check_in_someone_else_or_see_their_data(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    u, t = world.users, t0()
    w = checkin.open_window(world.url, u["alice"], lecture, 1, now=t)
    # Only the course's instructor (or an admin) sees or shows the code.
    for who in ("s1", "s2", "bob"):
        with pytest.raises(AccessDenied):
            checkin.current_code(world.url, u[who], w.id, cfg, now=t)
        with pytest.raises(AccessDenied):
            checkin.open_window(world.url, u[who], lecture, 0, now=t)
    assert checkin.display_sessions(world.url, u["s1"], now=t) == []
    assert checkin.display_sessions(world.url, u["bob"], now=t) == []
    code = checkin.current_code(world.url, u["admin"], w.id, cfg, now=t).code

    # S1 holds S2's face to the camera: the selfie is checked against S1's own photos only.
    checkin.enter_code(world.url, u["s1"], code, cfg, now=t + timedelta(seconds=1))
    with pytest.raises(checkin.CheckInRefused, match="does not match your enrolled photos") as err:
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, photo(data_dir, PUTIN, 4),
                              now=t + timedelta(seconds=5))
    assert "0." not in str(err.value)  # no similarity figure for tuning a fake
    assert _checkins(world) == 0
    # An instructor or an admin account cannot check anyone in (there is no "for whom").
    for who in ("alice", "admin"):
        with pytest.raises(AccessDenied):
            checkin.enter_code(world.url, u[who], code, cfg, now=t + timedelta(seconds=1))
    # A student of another course does not even see the window.
    from argon2 import PasswordHasher

    from aas_core.services import auth

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    with session_scope(world.url) as s:
        s3: AuthUser = to_auth_user(s, create_user(s, "s3", "correct horse battery", "student", student_number="S3"))
    assert checkin.open_windows_for(world.url, s3, now=t) == []
    with pytest.raises(checkin.CheckInRefused, match="No check-in is open for your courses"):
        checkin.enter_code(world.url, s3, code, cfg, now=t + timedelta(seconds=1))

    # S2 checks in with their own face; S1 may not see S2's selfie, nor S2's check-ins.
    checkin.enter_code(world.url, u["s2"], code, cfg, now=t + timedelta(seconds=2))
    checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s2"], w.id, photo(data_dir, PUTIN, 5),
                          now=t + timedelta(seconds=6))
    with session_scope(world.url) as s:
        cid = s.scalar(select(CheckIn.id))
        assert privacy.checkin_crop(s, world.store, u["s2"], cid).ndim == 3  # their own
        for who in ("s1", "bob"):
            with pytest.raises(AccessDenied):
                privacy.checkin_crop(s, world.store, u[who], cid)
    assert checkin.my_check_ins(world.url, u["s1"]) == []
    assert [c["course"] for c in checkin.my_check_ins(world.url, u["s2"])] == ["A101"]
    with pytest.raises(AccessDenied):
        review.load_review(world.url, world.store, u["s1"], lecture)


def test_failed_tries_say_why_and_are_bounded_then_consent_and_gallery_are_required(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int) -> None:
    from aas_core.services import courses

    u, t = world.users, t0()
    courses.update_config(world.url, u["alice"], "A101", assignments=["check_in.max_attempts=3"])
    w = checkin.open_window(world.url, u["alice"], lecture, 0, now=t)
    code = checkin.current_code(world.url, u["alice"], w.id, cfg, now=t).code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(checkin.CheckInRefused, match="not the code on the room's screen. 2 tries left"):
        checkin.enter_code(world.url, u["s1"], wrong, cfg, now=t + timedelta(seconds=1))
    with pytest.raises(checkin.CheckInRefused, match="has 6 digits.* 1 try left"):
        checkin.enter_code(world.url, u["s1"], "12a4", cfg, now=t + timedelta(seconds=2))
    checkin.enter_code(world.url, u["s1"], code, cfg, now=t + timedelta(seconds=3))
    blank = np.full((480, 640, 3), 128, np.uint8)
    with pytest.raises(checkin.CheckInRefused, match="could not be used: no face found.*No tries left") as err:
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, blank,
                              now=t + timedelta(seconds=4))
    assert err.value.attempts_left == 0
    # Out of tries: even the right code and face are refused now.
    with pytest.raises(checkin.CheckInRefused, match="no tries left"):
        checkin.enter_code(world.url, u["s1"], code, cfg, now=t + timedelta(seconds=5))
    with pytest.raises(checkin.CheckInRefused, match="no tries left"):
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s1"], w.id, photo(data_dir, POWELL, 4),
                              now=t + timedelta(seconds=6))
    with session_scope(world.url) as s:
        rows = s.execute(select(AuditLog.action, AuditLog.target_id).where(AuditLog.action.like("checkin.%"))
                         .order_by(AuditLog.id)).all()
    assert [a for a, _ in rows] == ["checkin.open", "checkin.wrong_code", "checkin.wrong_code", "checkin.code_ok",
                                    "checkin.no_face"]
    assert {sid for a, sid in rows if a != "checkin.open"} == {"S1"}

    # S2 after withdrawing consent: nothing to compare with, told why, no try spent.
    studs.withdraw_consent(world.url, world.store, u["s2"], "S2")
    checkin.enter_code(world.url, u["s2"], code, cfg, now=t + timedelta(seconds=7))
    with pytest.raises(checkin.CheckInRefused, match="needs your consent"):
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s2"], w.id, photo(data_dir, PUTIN, 4),
                              now=t + timedelta(seconds=8))
    studs.give_consent(world.url, u["s2"], "S2")  # consent back, but the photos went with the withdrawal
    with pytest.raises(checkin.CheckInRefused, match="no accepted face photo"):
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u["s2"], w.id, photo(data_dir, PUTIN, 4),
                              now=t + timedelta(seconds=9))
    assert _checkins(world) == 0


def test_withdrawal_erasure_purge_and_sweep_treat_the_selfie_as_biometric_data(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int) -> None:
    u, t = world.users, t0()
    w = checkin.open_window(world.url, u["alice"], lecture, 0, now=t)
    code = checkin.current_code(world.url, u["alice"], w.id, cfg, now=t).code
    for sn, person in (("s1", POWELL), ("s2", PUTIN)):
        checkin.enter_code(world.url, u[sn], code, cfg, now=t + timedelta(seconds=1))
        checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u[sn], w.id, photo(data_dir, person, 4),
                              now=t + timedelta(seconds=5))
    with session_scope(world.url) as s:
        crops = dict(s.execute(select(CheckIn.student_id, CheckIn.crop_path)).all())
    assert len(crops) == 2 and all(p in all_files(world.store) for p in crops.values())
    # The orphan sweep keeps them: rows refer to them.
    with session_scope(world.url) as s:
        assert not set(privacy.sweep_orphan_files(s, world.store, u["admin"], min_age_s=0)) & set(crops.values())
    studs.withdraw_consent(world.url, world.store, u["s1"], "S1")
    with session_scope(world.url) as s:
        left = dict(s.execute(select(CheckIn.student_id, CheckIn.crop_path)).all())
    gone = [p for sid, p in crops.items() if left[sid] is None]
    assert len(gone) == 1 and gone[0] not in all_files(world.store)  # S1's selfie went; the check-in stays
    studs.erase_student(world.url, world.store, u["admin"], "S2")
    with session_scope(world.url) as s:
        assert s.scalar(select(func.count(CheckIn.id))) == 1  # S2's rows went with them
        assert s.scalar(select(func.count(CheckInAttempt.id)).where(CheckInAttempt.student_id.not_in(
            select(CheckIn.student_id)))) == 0
    assert not set(crops.values()) & all_files(world.store)


def test_an_online_lecture_without_a_camera_is_decided_from_its_check_ins(  # type: ignore[no-untyped-def]
        world: World, cfg: Settings, fast_pipeline, data_dir: Path, lecture: int) -> None:
    """No camera: the instructor starts a check-in-only session of two check-ins. S1 checks in at
    both (attended), S2 only at the second (late); bob's student never could."""
    u, t = world.users, t0()
    with pytest.raises(AccessDenied):
        checkin.start_online_session(world.url, u["bob"], "A101")
    sid = checkin.start_online_session(world.url, u["alice"], "A101", snapshots=2)
    shown = {x.session_id: x for x in checkin.display_sessions(world.url, u["alice"], now=t)}
    assert shown[sid].online and not shown[lecture].online and shown[sid].n_snapshots == 2
    for k, people in ((0, [("s1", POWELL, 4)]), (1, [("s1", POWELL, 5), ("s2", PUTIN, 4)])):
        at = t + timedelta(minutes=15 * k)
        w = checkin.open_window(world.url, u["alice"], sid, k, minutes=5, now=at)
        code = checkin.current_code(world.url, u["alice"], w.id, cfg, now=at).code
        for who, person, i in people:
            checkin.enter_code(world.url, u[who], code, cfg, now=at + timedelta(seconds=1))
            checkin.submit_selfie(world.url, world.store, fast_pipeline, cfg, u[who], w.id, photo(data_dir, person, i),
                                  now=at + timedelta(seconds=10))
    with pytest.raises(ValueError, match="has a camera"):
        checkin.finish_online_session(world.url, world.store, fast_pipeline, cfg, u["alice"], lecture)
    outcome = checkin.finish_online_session(world.url, world.store, fast_pipeline, cfg, u["alice"], sid)
    assert outcome.statuses == {"S1": "attended", "S2": "late"}
    with session_scope(world.url) as s:
        assert s.get(ClassSession, sid).status == SessionStatus.COMPLETED
        snaps = s.scalars(select(Snapshot).where(Snapshot.session_id == sid).order_by(Snapshot.index)).all()
        assert [(x.index, x.status, x.image_path, x.camera) for x in snaps] == [
            (0, SnapshotStatus.PROCESSED, None, "check-in"), (1, SnapshotStatus.PROCESSED, None, "check-in")]
    r = review.load_review(world.url, world.store, u["alice"], sid)
    assert {x.student_number: [e.source for e in x.evidence] for x in r.rows} == {
        "S1": ["self_check_in", "self_check_in"], "S2": ["self_check_in"]}
    # An online session nobody opened a window in decides nothing ("no data", never "all absent").
    empty = checkin.start_online_session(world.url, u["alice"], "A101", snapshots=1)
    assert checkin.finish_online_session(world.url, world.store, fast_pipeline, cfg, u["alice"], empty) is None
    with session_scope(world.url) as s:
        assert s.get(ClassSession, empty).status == SessionStatus.ABORTED
