"""When to take the snapshots of a session.

Default (N = 3): the first at ``t1`` after the start (late-comers have had time to sit
down), the second ``t2`` later, and the last at a *random* moment in
``[t1 + t2 + margin, session_length - margin]``. The last one is random because a fixed time
would be learned quickly ("leave after the 45-minute photo"); the margin keeps it away from
the second snapshot and from the very end, when students legitimately pack up.

For N > 3 the middle snapshots are spread evenly over ``(t1, t1 + t2]`` (so the last middle
one is always at ``t1 + t2``, as for N = 3); N = 2 is "first + random last"; N = 1 is just
the first.

The schedule is a pure function of the plan and a seed, so a session stores its seed and
can recompute the same times after a restart (``SessionRunner.start(skip_indices=...)``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["CapturePlan"]


@dataclass(frozen=True)
class CapturePlan:
    """Snapshot count and timing, in seconds from the session start."""

    n: int = 3
    first_after_s: float = 300.0
    second_after_s: float = 1800.0
    session_length_s: float = 3000.0
    margin_s: float = 60.0

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> CapturePlan:
        """Plan from ``aas_core.config.Settings`` (``snapshots``, ``first_after_s``, ...)."""
        values: dict[str, Any] = {
            "n": settings.snapshots,
            "first_after_s": settings.first_after_s,
            "second_after_s": settings.second_after_s,
            "session_length_s": settings.session_length_s,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def last_window(self) -> tuple[float, float]:
        """``(earliest, latest)`` offset of the random last snapshot (N >= 2)."""
        return (
            self.first_after_s + self.second_after_s + self.margin_s,
            self.session_length_s - self.margin_s,
        )

    def validate(self) -> None:
        """``ValueError`` with the numbers when the times do not fit in the session."""
        if self.n < 1:
            raise ValueError(f"need at least 1 snapshot, got n={self.n}")
        if self.first_after_s < 0 or self.second_after_s < 0 or self.margin_s < 0:
            raise ValueError("first_after_s, second_after_s and margin_s must be >= 0")
        if self.session_length_s <= 0:
            raise ValueError(f"session_length_s must be > 0, got {self.session_length_s}")
        if self.first_after_s >= self.session_length_s:
            raise ValueError(
                f"first snapshot at {self.first_after_s:g} s is not before the end of the "
                f"session ({self.session_length_s:g} s)"
            )
        if self.n >= 3 and self.second_after_s <= 0:
            raise ValueError("second_after_s must be > 0 when there are middle snapshots")
        if self.n >= 2:
            lo, hi = self.last_window
            if lo > hi:
                raise ValueError(
                    f"no room for the last snapshot: it must come after t1 + t2 + margin = "
                    f"{lo:g} s and before session_length - margin = {hi:g} s; shorten t1/t2/"
                    f"margin or lengthen the session"
                )

    def schedule(self, seed: int) -> list[float]:
        """Offsets in seconds from the start, in time order; same plan + seed -> same list.

        Strictly increasing when ``margin_s > 0`` (with a zero margin the last snapshot may
        coincide with the one at ``t1 + t2``).
        """
        offsets = [float(self.first_after_s)]
        if self.n == 1:
            return offsets
        middles = self.n - 2
        for k in range(1, middles + 1):
            offsets.append(self.first_after_s + self.second_after_s * k / middles)
        lo, hi = self.last_window
        # random.Random is specified to give the same sequence for the same seed on every
        # platform and Python version (Mersenne Twister; uniform = a + (b - a) * random()).
        offsets.append(random.Random(seed).uniform(lo, hi))
        return offsets
