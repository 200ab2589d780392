"""Accounts (administrators): create instructor and student accounts, link students to their record,
reset passwords, disable and enable, change roles. Every change is audited and checked in
``services.accounts`` (the last active administrator stays)."""

from __future__ import annotations

import streamlit as st

from aas_core.db.models import Role
from aas_core.services import accounts as svc
from aas_core.services.auth import AccessDenied, ServerBusy, WeakPassword
from aas_core.ui.auth import require_user, sentence
from aas_core.ui.resources import database_url
from aas_core.ui.text import plain
from aas_core.ui.widgets import flash, show_flashes

user = require_user(Role.ADMIN)
show_flashes()
url = database_url()
st.title(":material/manage_accounts: Accounts")
st.caption("Who may sign in, with which role. New accounts and reset passwords get a temporary password that "
           "the person replaces at their first sign-in; accounts with an e-mail can also use single sign-on.")

ROLE_LABEL = {Role.ADMIN: "administrator", Role.INSTRUCTOR: "instructor", Role.STUDENT: "student"}
ERRORS = (ValueError, LookupError, AccessDenied, WeakPassword, ServerBusy)


def _show_secret() -> None:
    """A temporary password, shown once (it is gone at the next interaction)."""
    shown = st.session_state.pop("accounts_secret", None)
    if shown:
        who, secret = shown
        st.success(f"Temporary password for **{plain(who)}** — give it to them; it is shown only now and must be "
                   "replaced at their first sign-in:", icon=":material/key:")
        st.code(secret, language=None)


def _do(action, *args, done: str, secret_for: str | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """One service call; its error as a message (what was typed stays), or a toast and a rerun."""
    try:
        result = action(url, user, *args, **kwargs)
    except ERRORS as exc:
        st.error(sentence(plain(str(exc))))
        return
    if secret_for is not None:
        secret = result[1] if isinstance(result, tuple) else result
        if secret:
            st.session_state["accounts_secret"] = (secret_for, secret)
    flash(done)
    st.rerun()


_show_secret()
accounts = svc.list_accounts(url, user)
students = svc.linkable_students(url, user)
student_label = {sn: f"{sn} — {name}" for sn, name in students}

st.subheader(f"{len(accounts)} account{'s' if len(accounts) != 1 else ''}")
st.dataframe(
    [{"username": a.username, "role": ROLE_LABEL[a.role], "status": "active" if a.active else "disabled",
      "sign_in": " + ".join(x for x, on in (("password", a.password_sign_in), ("single sign-on", bool(a.email)))
                            if on) or "—",
      "email": a.email or "", "linked": a.student_number or a.instructor_name or "",
      "new_password": "must choose one" if a.must_change_password else "",
      "last": f"{a.last_sign_in_at:%Y-%m-%d %H:%M}" if a.last_sign_in_at else "never"} for a in accounts],
    hide_index=True, width="stretch",
    column_config={"username": st.column_config.TextColumn("Username"),
                   "role": st.column_config.TextColumn("Role"),
                   "status": st.column_config.TextColumn("Status", width="small"),
                   "sign_in": st.column_config.TextColumn("Signs in with"),
                   "email": st.column_config.TextColumn("E-mail"),
                   "linked": st.column_config.TextColumn("Student record / instructor"),
                   "new_password": st.column_config.TextColumn("Password"),
                   "last": st.column_config.TextColumn("Last sign-in (UTC)")})

def new_account() -> None:
    with st.form("accounts_new"):
        c1, c2 = st.columns(2)
        username = c1.text_input("Username", key="acc_new_username")
        role = c2.selectbox("Role", [Role.INSTRUCTOR, Role.STUDENT, Role.ADMIN], key="acc_new_role",
                            format_func=lambda r: ROLE_LABEL[r])
        c3, c4 = st.columns(2)
        name = c3.text_input("Full name", key="acc_new_name", help="Shown as the instructor of their courses.")
        email = c4.text_input("E-mail", key="acc_new_email",
                              help="Needed for single sign-on: the first sign-in through the university's identity "
                                   "provider with this verified address links the account.")
        sid = st.selectbox("Student record (student accounts)", [None, *student_label], key="acc_new_student",
                           format_func=lambda s: "— none —" if s is None else student_label[s],
                           help="A student account sees this record's photos, consent and attendance, nothing else.")
        how = st.radio("Signs in with", ["temporary password", "single sign-on only"], key="acc_new_how",
                       horizontal=True)
        if st.form_submit_button("Create account", type="primary"):
            if not username.strip():
                st.error("An account needs a username.")
            else:
                _do(svc.create_account, username, role, sso_only=how == "single sign-on only", email=email or None,
                    name=name or None, student_number=sid if role == Role.STUDENT else None,
                    done=f"Account {username.strip()} created.", secret_for=username.strip())


def change_account() -> None:
    if not accounts:
        st.info("No accounts yet.")
        return
    names = [a.username for a in accounts]
    pick = st.selectbox("Account", names, key="acc_pick",
                        format_func=lambda n: f"{n} ({ROLE_LABEL[next(a.role for a in accounts if a.username == n)]})")
    acct = next(a for a in accounts if a.username == pick)
    me = acct.username == user.username
    st.caption(f"Status: **{'active' if acct.active else 'disabled'}** · e-mail: {plain(acct.email or '—')} · "
               f"single sign-on {'linked' if acct.sso_linked else 'not linked yet'}"
               + (f" · student record {plain(acct.student_number)}" if acct.student_number else ""))

    r1, r2 = st.columns(2)
    with r1.container(border=True):
        st.markdown("**Role**")
        new_role = st.selectbox("New role", list(ROLE_LABEL), index=list(ROLE_LABEL).index(acct.role),
                                key=f"acc_role_{pick}", format_func=lambda r: ROLE_LABEL[r])
        role_sid = None
        if new_role == Role.STUDENT:
            opts = [s for s in ([acct.student_number] if acct.student_number else []) + list(student_label)]
            role_sid = st.selectbox("Student record", opts or [None], key=f"acc_role_student_{pick}",
                                    format_func=lambda s: "— no unlinked student —" if s is None
                                    else student_label.get(s, s))
        if st.button("Change role", key="acc_role_go", disabled=new_role == acct.role and new_role != Role.STUDENT):
            _do(svc.change_role, pick, new_role, student_number=role_sid,
                done=f"{pick} is now {ROLE_LABEL[new_role]}; their open sessions ended.")
    with r2.container(border=True):
        st.markdown("**Password and access**")
        if st.button("Reset password", key="acc_reset", icon=":material/lock_reset:",
                     help="A new temporary password; every session of the account ends."):
            _do(svc.reset_password, pick, done=f"Password of {pick} reset.", secret_for=pick)
        if acct.active:
            if st.button("Disable account", key="acc_disable", icon=":material/block:", disabled=me,
                         help="You cannot disable your own account." if me else
                         "Signs the account out everywhere; nothing is deleted."):
                _do(svc.set_active, pick, False, done=f"{pick} disabled and signed out.")
        elif st.button("Enable account", key="acc_enable", icon=":material/check_circle:"):
            _do(svc.set_active, pick, True, done=f"{pick} enabled.")

    r3, r4 = st.columns(2)
    with r3.container(border=True):
        st.markdown("**E-mail (single sign-on)**")
        new_email = st.text_input("E-mail", value=acct.email or "", key=f"acc_email_{pick}")
        if st.button("Save e-mail", key="acc_email_go"):
            _do(svc.set_email, pick, new_email or None, done=f"E-mail of {pick} saved.")
    with r4.container(border=True):
        st.markdown("**Student record**")
        if acct.role != Role.STUDENT:
            st.caption("Only student accounts are linked to a student record.")
        else:
            opts = [None, *([acct.student_number] if acct.student_number else []), *student_label]
            link = st.selectbox("Linked student", opts, key=f"acc_link_{pick}",
                                index=opts.index(acct.student_number) if acct.student_number else 0,
                                format_func=lambda s: "— none —" if s is None else student_label.get(s, s))
            if st.button("Save link", key="acc_link_go"):
                _do(svc.link_student, pick, link, done=f"Student record of {pick} saved.")


# Tracked tabs: an action's rerun stays on the tab it was made on, and only that tab's widgets run.
new_tab, change_tab = st.tabs(["New account", "Change an account"], key="accounts_tab", on_change="rerun")
if new_tab.open:
    with new_tab:
        new_account()
if change_tab.open:
    with change_tab:
        change_account()

st.caption(f"Active administrators: {svc.count_admins(url)}. The last one cannot be disabled or demoted. "
           f"From a shell: `aas user list | add | reset | role | link | disable | enable`.")
