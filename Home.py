"""AAS dashboard entry point: who is signed in, and the pages their role may open.

Run with ``streamlit run app.py`` (adds the sign-in cookie routes; ``Home.py`` alone works,
but a sign-in then ends with a reload). ``PAGES`` is the one list of pages: a new page is one
line with the roles that see it. Before sign-in the menu is hidden and every page shows the
sign-in form (a typed URL comes back to its page after signing in); while no account exists,
the only page creates the administrator.
"""

import streamlit as st

from aas_core.db.models import Role
from aas_core.ui import auth
from aas_core.ui.errors import run_page

st.set_page_config(page_title="AAS — attendance", page_icon="🎓", layout="wide")

ADMIN, INSTRUCTOR, STUDENT = Role.ADMIN, Role.INSTRUCTOR, Role.STUDENT
EVERYONE = (ADMIN, INSTRUCTOR, STUDENT)
STAFF = (ADMIN, INSTRUCTOR)

# (file, title, icon, roles that see it). Students' pages show only their own data (services check it).
PAGES = [
    ("pages/home.py", "Home", ":material/home:", EVERYONE),
    ("pages/courses.py", "Courses", ":material/menu_book:", STAFF),
    ("pages/rooms.py", "Rooms", ":material/meeting_room:", STAFF),
    ("pages/students.py", "Students", ":material/school:", EVERYONE),
    ("pages/live_session.py", "Live Session", ":material/videocam:", STAFF),
    ("pages/checkin.py", "Check-in", ":material/how_to_reg:", EVERYONE),
    ("pages/my_sessions.py", "My sessions", ":material/fact_check:", (STUDENT,)),
    ("pages/follow_up.py", "Follow-up", ":material/assignment_late:", STAFF),
    ("pages/inspector.py", "Pipeline Inspector", ":material/biotech:", STAFF),
    ("pages/trends.py", "Attendance Trends", ":material/trending_up:", EVERYONE),
    ("pages/evaluation.py", "Evaluation", ":material/science:", STAFF),
    ("pages/operations.py", "Operations", ":material/monitor_heart:", (ADMIN,)),
    ("pages/accounts.py", "Accounts", ":material/manage_accounts:", (ADMIN,)),
]


def pages_for(role: Role | None) -> list[st.Page]:
    """The pages ``role`` may open (every page, unlisted, before sign-in: each shows the sign-in form)."""
    return [st.Page(path, title=title, icon=icon, default=(path == "pages/home.py"))
            for path, title, icon, roles in PAGES if role is None or role in roles]


class Dashboard:
    """One run: resolve the user, then navigate (inside ``run_page``: errors show only an id)."""

    def run(self) -> None:
        from aas_core.services.accounts import first_run_needed
        from aas_core.ui.resources import database_url

        user, notice = auth.resolve()
        if user is None and first_run_needed(database_url()):
            page = st.navigation([st.Page(auth.first_run_page, title="Set up AAS", icon=":material/key:",
                                          url_path="setup", default=True)], position="hidden")
        elif user is None or user.must_change_password:
            notice = auth.first_run_over(notice) if user is None else notice
            page = st.navigation(pages_for(None), position="hidden")
        else:
            page = st.navigation(pages_for(user.role))
        with auth.resolved(user, notice):
            page.run()


# An uncaught error shows the user only an error id; the details go to the server log.
run_page(Dashboard())
