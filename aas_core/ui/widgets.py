"""Small Streamlit building blocks shared by the pages (no business logic)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st

from aas_core.media.draw import to_rgb

STATUS_ICON = {"attended": ":green[:material/check_circle:]", "late": ":orange[:material/schedule:]",
               "left_early": ":orange[:material/logout:]", "absent": ":red[:material/cancel:]"}


def nav_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link`` that degrades to a caption when the page is not registered
    (a page run on its own, e.g. in ``AppTest.from_file('pages/x.py')``)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.caption(f"{icon or ''} {label}")


def show_bgr(image: np.ndarray, caption: str | None = None, width: int | str = "stretch") -> None:
    st.image(to_rgb(image), caption=caption, width=width)  # type: ignore[arg-type]


def image_grid(items: Sequence[tuple[np.ndarray, str]], *, max_side: int = 224, min_px: int = 140) -> None:
    """Images with captions in a grid that wraps to the width (several per row on a phone too).

    The images travel inside the page as data URIs, not as ``/media/`` files: Streamlit deletes a
    run's media files when the next run ends, so images a browser had not fetched yet (hundreds of
    crops, a slider moved meanwhile) came back as 404s. Captions are HTML-escaped (student ids are
    user text)."""
    import html

    from aas_core.media.draw import data_uri

    cells = "".join(
        f"<figure style='margin:0'><img src='{data_uri(img, max_side)}' alt='{html.escape(cap)}' "
        f"style='width:100%;height:auto;border-radius:4px'/><figcaption style='font-size:0.8rem;"
        f"color:rgba(49,51,63,0.7);overflow-wrap:anywhere'>{html.escape(cap)}</figcaption></figure>"
        for img, cap in items)
    st.html(f"<div data-testid='aasImageGrid' style='display:grid;gap:0.6rem;"
            f"grid-template-columns:repeat(auto-fill,minmax({min_px}px,1fr))'>{cells}</div>")


def page_slice(n: int, per_page: int, key: str, label: str = "Page") -> slice:
    """A page picker for ``n`` items (``per_page`` a page): the slice of the page chosen
    (all of them when they fit on one page)."""
    pages = max(1, -(-n // per_page))
    if pages == 1:
        return slice(0, n)
    page = int(st.number_input(f"{label} (1–{pages})", 1, pages, 1, key=key))
    start = (page - 1) * per_page
    st.caption(f"{start + 1}–{min(n, start + per_page)} of {n}")
    return slice(start, min(n, start + per_page))


def status_text(status: str | None) -> str:
    if not status:
        return "—"
    return f"{STATUS_ICON.get(status, ':material/help:')} {status.replace('_', ' ')}"


def pick_course(courses: Sequence[Any], key: str, label: str = "Course", sidebar: bool = False) -> Any | None:
    """Selectbox over course objects (by code), remembered across pages in session state."""
    if not courses:
        return None
    codes = [c.code for c in courses]
    remembered = st.session_state.get("aas_course")
    index = codes.index(remembered) if remembered in codes else 0
    where = st.sidebar if sidebar else st
    def text(c: str) -> str:
        x = next(x for x in courses if x.code == c)
        return f"{c} — {x.name}" + (" (archived)" if getattr(x, "archived", False) else "")

    code = where.selectbox(label, codes, index=index, key=key, format_func=text)
    st.session_state["aas_course"] = code
    return next(c for c in courses if c.code == code)


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    """A toast that survives the ``st.rerun()`` that usually follows a write."""
    st.session_state.setdefault("aas_flash", []).append((message, icon))


def show_flashes() -> None:
    for message, icon in st.session_state.pop("aas_flash", []):
        st.toast(message, icon=icon)


def secrets_mapping() -> dict:
    """``st.secrets`` as a plain dict, or {} when there is no secrets file."""
    try:
        return st.secrets.to_dict()
    except Exception:  # noqa: BLE001 - no secrets.toml, or unreadable
        return {}


def metric_row(metrics: Sequence[tuple[str, Any] | tuple[str, Any, str | None]], min_px: int = 150) -> None:
    """Headline figures side by side that wrap (two a row on a phone) instead of ``st.columns``,
    which stacks them one under the other below 640 px: four metrics then filled a phone's screen."""
    with st.container(horizontal=True, horizontal_alignment="distribute", gap="medium"):
        for label, value, *more in metrics:
            st.metric(label, value, help=more[0] if more else None, width=min_px)
