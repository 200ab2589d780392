"""My sessions (students): my status in each session, the photos of my own face that support
it, and a dispute when I think it is wrong. Nobody else's face or record is ever shown here."""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import disputes
from aas_core.ui.auth import require_user
from aas_core.ui.resources import database_url, image_store
from aas_core.ui.text import plain
from aas_core.ui.widgets import flash, show_bgr, show_flashes, status_text

user = require_user()  # anyone signed in; only a linked student account has sessions here
show_flashes()
url = database_url()
store = image_store()
st.title(":material/fact_check: My sessions")
st.caption("Your status in each class session and the photos of your face the system used. "
           "If a status is wrong, dispute it: your instructor answers here.")

if user.role != Role.STUDENT or not user.student_number:
    st.info("This page is for student accounts linked to a student record.")
    st.stop()

sessions = disputes.my_sessions(url, user)
if not sessions:
    st.info("No class sessions recorded for you yet: they appear here after a session of your course. Until "
            "then, check on **My photos & consent** that your consent is recorded and your photos accepted.")
    st.stop()

for ms in sessions:
    title = f"{ms.started_at:%Y-%m-%d %H:%M} UTC · {ms.course} · {status_text(ms.status)}"
    with st.expander(title, expanded=ms.dispute is not None and ms.dispute.status == disputes.OPEN):
        if ms.overridden:
            st.caption("Your instructor set this status by hand.")
        if ms.evidence:
            st.write(f"Your face was seen {len(ms.evidence)} time(s):")
            cols = st.columns(min(len(ms.evidence), 6))
            for k, oid in enumerate(ms.evidence):
                try:
                    with cols[k % len(cols)]:
                        show_bgr(disputes.my_face(url, store, user, oid), width=96)
                except (FileNotFoundError, OSError):
                    cols[k % len(cols)].caption("photo no longer kept")
        else:
            st.write("Your face was not recognised in this session.")
        d = ms.dispute
        if d is not None:
            if d.status == disputes.OPEN:
                st.info(f"Disputed on {d.created_at:%Y-%m-%d}: waiting for your instructor.\n\n> {plain(d.message)}")
            else:
                outcome = (f"upheld: your status is now **{status_text(d.status_after)}**"
                           if d.status == disputes.UPHELD else "rejected: the status stands")
                st.success(f"Your dispute was {outcome}. {plain(d.resolved_by)} wrote: {plain(d.resolution)}")
        if d is None or d.status != disputes.OPEN:
            with st.form(f"dispute_{ms.session_id}", clear_on_submit=False):
                message = st.text_area("Why is this status wrong?", max_chars=disputes.MAX_MESSAGE,
                                       placeholder="Where you sat, when you arrived or left…",
                                       key=f"dispute_msg_{ms.session_id}")
                if st.form_submit_button("Dispute this status"):
                    try:
                        disputes.open_dispute(url, user, ms.session_id, message)
                    except (ValueError, PermissionError) as exc:
                        st.error(plain(exc))
                    else:
                        flash("Dispute sent to your instructor.")
                        st.rerun()
