""""How a session works": the snapshots of a capture plan on a timeline, for Home.

Built from a real ``PlanConfig`` (the installation's defaults or a course's plan), so the
picture never drifts from what the runner does: the first snapshot ``first_after_s`` after the
start, the middle ones spread over the next ``second_after_s``, the last at a random moment in
``CapturePlan.last_window`` (shown as that window, with its marker at the window's middle).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import plotly.graph_objects as go

from aas_core.domain.course_config import PlanConfig

__all__ = ["Shot", "plan_shots", "timeline_figure", "how_it_works_lines"]

# The status colours of the rest of the dashboard (widgets.STATUS_ICON: green, orange, red).
_SHOT = "#2563eb"
_WINDOW = "rgba(37, 99, 235, 0.15)"
_LIGHT = "#f59e0b"


@dataclass(frozen=True)
class Shot:
    """One snapshot of the plan: where its marker sits (minutes from the start) and its label."""

    index: int  # 1-based
    minute: float
    label: str
    window: tuple[float, float] | None = None  # minutes; only for the random last one


def _minutes(seconds: float) -> float:
    return seconds / 60.0


def _dur(seconds: float) -> str:
    """A duration in words: '5 min', '50 min', '1 h 30 min', '45 s'."""
    if seconds < 60:
        return f"{seconds:g} s"
    m = round(seconds / 60)
    return f"{m} min" if m < 60 else f"{m // 60} h" + (f" {m % 60} min" if m % 60 else "")


def plan_shots(plan: PlanConfig) -> list[Shot]:
    """The plan's snapshots in time order (as ``CapturePlan.schedule`` places them; the random last
    one at the middle of its window)."""
    cp = plan.capture_plan()
    shots = [Shot(1, _minutes(cp.first_after_s), f"after {_dur(cp.first_after_s)}")]
    if cp.n == 1:
        return shots
    middles = cp.n - 2
    for k in range(1, middles + 1):
        at = cp.first_after_s + cp.second_after_s * k / middles
        shots.append(Shot(k + 1, _minutes(at), f"{_dur(cp.second_after_s * k / middles)} after the first"
                          if middles > 1 else f"{_dur(cp.second_after_s)} later"))
    lo, hi = cp.last_window
    shots.append(Shot(cp.n, _minutes((lo + hi) / 2), f"random, {_dur(lo)}–{_dur(hi)}",
                      window=(_minutes(lo), _minutes(hi))))
    return shots


@lru_cache(maxsize=32)
def timeline_figure(plan: PlanConfig, height: int = 230) -> go.Figure:
    """The session from start to end (minutes) with one marker per snapshot, the random window of
    the last one shaded, and the light's on/off around each burst on a lane below.

    Cached per plan (a frozen, hashable model): plotly validates every property as a figure is
    built, 50-80 ms on this machine, on every run of Home. Callers must not modify the figure."""
    shots = plan_shots(plan)
    end = _minutes(plan.session_length_s)
    fig = go.Figure()
    for s in shots:
        if s.window:
            fig.add_shape(type="rect", x0=s.window[0], x1=s.window[1], y0=0.55, y1=1.45, fillcolor=_WINDOW,
                          line_width=0, layer="below")
    burst = (f"{plan.burst_frames} frames {plan.burst_interval_s:g} s apart" if plan.burst_frames > 1
             else "one photo")
    fig.add_trace(go.Scatter(
        x=[s.minute for s in shots], y=[1] * len(shots), mode="markers+text", name="snapshot",
        marker={"size": 18, "color": _SHOT, "symbol": "square"},
        text=[str(s.index) for s in shots], textposition="middle center", textfont={"color": "white", "size": 11},
        customdata=[s.label for s in shots],
        hovertemplate="Snapshot %{text}: %{customdata}<br>" + burst + "<extra></extra>"))
    # The light is switched on just before each burst and off right after: drawn as a short bar.
    fig.add_trace(go.Scatter(
        x=[s.minute for s in shots], y=[0] * len(shots), mode="markers", name="light on",
        marker={"size": 14, "color": _LIGHT, "symbol": "line-ns", "line": {"width": 6, "color": _LIGHT}},
        hovertemplate="light on for the burst, off after<extra></extra>"))
    fig.add_shape(type="line", x0=0, x1=end, y0=1, y1=1, line={"color": "#94a3b8", "width": 2}, layer="below")
    fig.add_shape(type="line", x0=0, x1=end, y0=0, y1=0, line={"color": "#e2e8f0", "width": 2}, layer="below")
    # Labels alternate between two heights: on a phone, neighbours 7 minutes apart would overlap.
    for i, s in enumerate(shots):
        # The random one's label ends at its window's end: centred, it ran off a phone's screen.
        fig.add_annotation(x=s.window[1] if s.window else s.minute, xanchor="right" if s.window else "center",
                           y=1.45 if i % 2 == 0 else 1.95, text=s.label, showarrow=False, yanchor="bottom",
                           font={"size": 11})
    fig.update_xaxes(range=[-end * 0.02, end * 1.02], title="minutes from the start of the class",
                     tickvals=sorted({0, round(end), *[round(s.minute) for s in shots if not s.window]}),
                     showgrid=False, zeroline=False, fixedrange=True)
    fig.update_yaxes(range=[-0.6, 2.6], tickvals=[0, 1], ticktext=["light", "snapshots"], showgrid=False,
                     zeroline=False, fixedrange=True)
    fig.update_layout(height=height, showlegend=False, margin={"l": 10, "r": 10, "t": 10, "b": 40},
                      plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)")
    return fig


def how_it_works_lines(plan: PlanConfig) -> list[str]:
    """The few lines of text that go with the picture (Markdown, no user text in them)."""
    shots = plan_shots(plan)
    burst = (f"a burst of {plan.burst_frames} frames {plan.burst_interval_s:g} s apart"
             if plan.burst_frames > 1 else "one photo")
    lines = [f"The camera takes **{len(shots)} snapshot(s)** in a {_dur(plan.session_length_s)} class: the first "
             f"{_dur(plan.first_after_s)} after the start, when late-comers have sat down"
             + (f", the next {_dur(plan.second_after_s)} later" if len(shots) > 2 else "") + ".",
             ]
    if len(shots) >= 2:
        lo, hi = shots[-1].window or (0.0, 0.0)
        lines.append(f"The last one comes at a **random** moment between minute {lo:g} and {hi:g}, so nobody can "
                     "learn when it is safe to leave.")
    lines.append(f"For each snapshot the room's light goes on, the camera takes {burst} (fused: a face one frame "
                 "misses is often named in another), and the light goes off.")
    lines.append("Seen in the first and the last snapshot: **attended** · only in the last: **late** · "
                 "in the first but not the last: **left early** · in none: **absent**.")
    lines.append("Faces the system is unsure of are marked for review; the instructor confirms or corrects "
                 "them on **Live Session**, and students can dispute a status on **My sessions**.")
    return lines
