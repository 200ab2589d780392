"""The student's "My sessions" page and the instructor's "Follow-up" page, through AppTest:
a student disputes a status with their own evidence shown, the instructor answers, the student
reads the answer; nobody sees another student's face or record."""

from __future__ import annotations

from typing import Any

from test_pages_apptest import _env, make_user, ok, page, texts, users  # noqa: F401 - _env: autouse fixture

from aas_core.services import disputes


def test_a_student_disputes_and_reads_the_instructors_answer(populated: dict[str, Any]) -> None:
    url = populated["url"]
    me, *others = populated["students"]
    stud = make_user(url, "stud", "student")
    at = ok(page("my_sessions.py", stud).run())
    assert [t.value for t in at.title] == [":material/fact_check: My sessions"]
    text = texts(at)
    assert not any(o in text for o in others)
    assert len(at.expander) == 1 and populated["statuses"][me].replace("_", " ") in at.expander[0].label
    mine = disputes.my_sessions(url, stud)[0]
    assert mine.evidence and len(at.image) == len(mine.evidence)  # their own faces, nobody else's
    at.text_area(key=f"dispute_msg_{mine.session_id}").input("I sat in the second row all lecture.")
    at.button[0].click()
    ok(at.run())
    [d] = disputes.my_sessions(url, stud)[0:1]
    assert d.dispute is not None and d.dispute.status == "open"
    assert "waiting for your instructor" in texts(at)

    # The course's instructor answers on Follow-up; another instructor sees no dispute.
    assert "No open disputes" in texts(ok(page("follow_up.py", users(url)["stranger_teacher"]).run()))
    teach = users(url)["teach"]
    at = ok(page("follow_up.py", teach).run())
    assert "I sat in the second row all lecture." in texts(at)
    form_key = d.dispute.id
    at.radio(key=f"resolve_choice_{form_key}").set_value("Change the status")
    at.selectbox(key=f"resolve_status_{form_key}").set_value("attended")
    at.text_input(key=f"resolve_reason_{form_key}").input("Checked the seating plan: you were there.")
    next(b for b in at.button if b.label == "Send answer").click()
    ok(at.run())
    assert "No open disputes" in texts(at)

    at = ok(page("my_sessions.py", stud).run())
    assert "upheld" in texts(at) and "Checked the seating plan" in texts(at)
    assert disputes.my_sessions(url, stud)[0].status == "attended"


def test_follow_up_lists_corrections_and_unknown_people_for_the_instructor(populated: dict[str, Any]) -> None:
    teach = users(populated["url"])["teach"]
    at = ok(page("follow_up.py", teach).run())
    assert [t.label for t in at.tabs] == ["Disputes", "Unknown people", "Corrections"]
    assert any(m.label == "Standing corrections against this student" for m in at.metric)
    stud = make_user(populated["url"], "stud", "student")
    at = ok(page("follow_up.py", stud).run())
    assert any("instructor" in e.value for e in at.error)


def test_not_this_student_in_the_review_keeps_a_correction(populated: dict[str, Any]) -> None:
    from sqlalchemy import select

    from aas_core.db import session_scope
    from aas_core.db.models import FaceCorrection, FaceObservation

    teach = users(populated["url"])["teach"]
    at = ok(page("live_session.py", teach).run())
    seen = next(sn for sn, st in populated["statuses"].items() if st == "attended")
    at.selectbox(key="evidence_pick").set_value(seen)
    ok(at.run())
    buttons = [b for b in at.button if str(b.key).startswith("not_")]
    assert buttons, "no 'Not this student' button next to the evidence"
    oid = int(str(buttons[0].key).removeprefix("not_"))
    with session_scope(populated["url"]) as s:
        named = s.get(FaceObservation, oid).student.student_number
    buttons[0].click()
    ok(at.run())
    with session_scope(populated["url"]) as s:
        [c] = s.scalars(select(FaceCorrection)).all()
        assert c.observation_id == oid and c.not_student.student_number == named
        assert s.get(FaceObservation, oid).student_id is None


def test_courses_preview_at_risk_notices_and_export_for_moodle(populated: dict[str, Any]) -> None:
    teach = users(populated["url"])["teach"]
    at = ok(page("courses.py", teach).run())
    assert "Notices & Moodle" in [t.label for t in at.tabs]
    next(b for b in at.button if b.key == "notify_preview").click()
    ok(at.run())
    shown = at.session_state["notify_plan"]
    assert shown["dry_run"] and shown["course"] == "CS101"
    assert any(d.key == "moodle_csv" for d in at.get("download_button"))
