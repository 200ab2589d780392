"""Who is at risk of failing a course's attendance requirement: pure, no I/O.

The service (``services.notify``) picks the window, the course's last N *decided* sessions
(completed, with attendance records; aborted sessions decided nothing), and hands each
rostered student's final statuses in it (after instructor overrides) to :func:`standings`.

How a session counts
--------------------
* ``attended`` counts 1, ``absent`` 0.
* ``late`` and ``left_early`` count ``partial_credit`` (a course setting, default 1): by default
  they count as attended, so the rate in a notice is the attendance rate the student and the
  instructor see on Home and Attendance Trends (``reports.PRESENT_STATUSES``: the student was in
  the room). A course that wants lateness to weigh sets e.g. 0.5 (half a session). Either way
  the notice lists late and left-early sessions separately, so nothing is hidden in the rate.
* The rate is the credit over the sessions the student has a record in (a student who joined
  the roster late is judged on their own sessions, not on the ones before they joined).
* At risk: rate **below** the threshold (exactly 75 % is not under 75 %), once the student has
  at least ``min_sessions`` records in the window (one missed first session is not a trend).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aas_core.domain.attendance import Status

__all__ = ["Standing", "credit", "standing", "standings"]


def credit(status: Status | str, partial_credit: float) -> float:
    """What one session counts for (see the module docstring)."""
    s = Status(status)
    if s == Status.ATTENDED:
        return 1.0
    if s in (Status.LATE, Status.LEFT_EARLY):
        return float(partial_credit)
    return 0.0


@dataclass(frozen=True)
class Standing:
    """One student's attendance over the window."""

    student: str
    sessions: int  # records in the window
    credit: float
    rate: float | None  # None without records
    counts: dict[str, int] = field(default_factory=dict)  # per status
    at_risk: bool = False
    assessed: bool = False  # False: fewer than min_sessions records (no notice either way)

    def summary(self) -> str:
        """``"3 of 6 sessions (50 %): attended 2, late 1, left early 0, absent 3"``."""
        parts = ", ".join(f"{s.value.replace('_', ' ')} {self.counts.get(s.value, 0)}" for s in Status)
        rate = f"{self.rate:.0%}" if self.rate is not None else "–"
        return f"{self.credit:g} of {self.sessions} sessions ({rate}): {parts}"


def standing(student: str, statuses: Sequence[Status | str], *, threshold: float, min_sessions: int,
             partial_credit: float) -> Standing:
    """The standing of one student from their final statuses in the window (any order)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is not a share between 0 and 1")
    if not 0.0 <= partial_credit <= 1.0:
        raise ValueError(f"partial_credit {partial_credit} is not between 0 and 1")
    values = [Status(s) for s in statuses]
    counts = {s.value: sum(v == s for v in values) for s in Status}
    total = sum(credit(v, partial_credit) for v in values)
    n = len(values)
    rate = total / n if n else None
    assessed = n >= max(1, min_sessions)
    return Standing(student, n, total, rate, counts, at_risk=assessed and rate is not None and rate < threshold,
                    assessed=assessed)


def standings(statuses_by_student: Mapping[str, Sequence[Status | str]], *, threshold: float, min_sessions: int,
              partial_credit: float) -> list[Standing]:
    """Every student's standing, at-risk students first (lowest rate first), then by student id."""
    out = [standing(st, v, threshold=threshold, min_sessions=min_sessions, partial_credit=partial_credit)
           for st, v in statuses_by_student.items()]
    return sorted(out, key=lambda x: (not x.at_risk, x.rate if x.rate is not None else 2.0, x.student))
