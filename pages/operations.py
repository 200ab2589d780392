"""Operations (admins): today's sessions and their snapshots, sessions awaiting review, snapshots
queued or failed, and the workers and queue depth of the broker; the same facts as
`aas status --json` (one service call: services.operations.operations_status)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aas_core.services.operations import operations_status
from aas_core.ui.auth import require_user
from aas_core.ui.resources import database_url, settings
from aas_core.ui.text import plain
from aas_core.ui.widgets import metric_row, show_flashes



def _when(iso: str | None) -> str:
    """'2026-12-02 19:38' for the service's ISO time in UTC (the column says UTC)."""
    return iso[:16].replace("T", " ") if iso else "—"


user = require_user()
show_flashes()
url = database_url()
st.title(":material/monitor_heart: Operations")
if not user.is_admin:  # the service refuses too; say it plainly here
    st.error("Operations is for administrators.")
    st.stop()
st.caption("Is everything running? Today's sessions and meetings, what waits for processing or review, the "
           "workers, and each camera's last grab.")
c1, c2 = st.columns([1, 3])
c1.button("Refresh", icon=":material/refresh:", key="ops_refresh")
ask = c2.toggle("Ask the broker and the workers (waits up to 1 s for their answers)", value=True, key="ops_ask")

facts = operations_status(url, user, settings(), broker=ask)
sessions, waiting, snaps, broker = (facts["sessions_today"], facts["awaiting_review"], facts["snapshots"],
                                    facts["broker"])

metric_row([("Sessions today", len(sessions)), ("Sessions awaiting review", len(waiting)),
            ("Snapshots waiting for processing", snaps["queued"]),
            ("Snapshots failed or missing today", snaps["failed_today"] + snaps["missing_today"])], min_px=170)
if snaps["oldest_queued_at"]:
    st.caption(f"Oldest snapshot waiting was captured at {_when(snaps['oldest_queued_at'])} (UTC).")

st.subheader("Workers and queues")
if broker is None:
    st.info("No broker configured (AAS_BROKER_URL): snapshots are processed by the process that captures them.")
elif not broker.get("checked"):
    st.caption(f"Broker {plain(broker['url'])}: not asked.")
elif not broker["reachable"]:
    st.error(f"The broker {plain(broker['url'])} is not reachable: {plain(broker['error'] or '')}")
else:
    st.caption(f"Broker {plain(broker['url'])}")
    st.dataframe(pd.DataFrame([{"Queue": q, "Messages waiting": v["messages"], "Consumers": v["consumers"]}
                               for q, v in broker["queues"].items()]), hide_index=True, width="stretch")
    if broker["workers"]:
        st.dataframe(pd.DataFrame([{"Worker": w["name"], "Queues": ", ".join(w["queues"]),
                                    "Tasks running": w["active"], "Tasks done": w["processed"],
                                    "Tasks at once": w["concurrency"]} for w in broker["workers"]]),
                     hide_index=True, width="stretch")
    else:
        st.warning("No worker answered: start `aas worker` on a machine that reaches the broker, the database "
                   "and the data folder.")

st.subheader("Today's meetings")
meetings = facts["meetings_today"]
if meetings:
    st.dataframe(pd.DataFrame([{"Course": m["course"], "Starts (local)": m["local_start"], "Ends (local)": m["local_end"],
                                "Room": m["room"], "State": m["state"], "Session": m["session_id"],
                                "Why": m["reason"]} for m in meetings]), hide_index=True, width="stretch")
else:
    st.caption("No timetabled meeting today (timetables are set per course on **Courses**).")

st.subheader("Today's sessions")
if sessions:
    st.dataframe(pd.DataFrame([{
        "Session": x["session_id"], "Course": x["course"], "Started (UTC)": _when(x["started_at"]),
        "State": x["status"],
        "Camera": x["camera"] or "—", "Snapshots planned": x["planned"], "Processed": x["snapshots"]["processed"],
        "Waiting": x["snapshots"]["captured"], "Missing": x["snapshots"]["missing"],
        "Failed": x["snapshots"]["failed"]} for x in sessions]), hide_index=True, width="stretch")
else:
    st.caption("No session today yet.")

st.subheader("Awaiting review")
if waiting:
    st.dataframe(pd.DataFrame([{"Session": x["session_id"], "Course": x["course"],
                                "Started (UTC)": _when(x["started_at"]),
                                "Students to review": x["students"]} for x in waiting]),
                 hide_index=True, width="stretch")
    st.caption("Open a session on **Live Session** to review it.")
else:
    st.caption("Nothing waits for a review.")

st.subheader("Cameras")
cams = facts["cameras"]
if not cams:
    st.caption("No camera has been used yet. Rooms and their cameras are set up on **Rooms**.")
else:
    failing = [c for c in cams if c["failing"]]
    if failing:
        st.error(f"{len(failing)} camera(s) failed at their last use: " + ", ".join(plain(c["camera"]) for c in failing))
    st.dataframe(pd.DataFrame([{"Camera": c["camera"], "Last good grab (UTC)": _when(c["last_ok_at"]),
                                "Last error": c["last_error"] or "—",
                                "Error at (UTC)": _when(c["last_error_at"])}
                               for c in cams]), hide_index=True, width="stretch")
