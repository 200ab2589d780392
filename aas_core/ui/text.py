"""User-provided text shown as text, never as Markdown.

Almost every Streamlit element renders its string as Markdown (``st.markdown``, ``caption``,
``error``/``warning``/``success``/``info``, ``toast``, ``subheader``, widget labels), so a
student named ``![x](http://host/beacon)`` would make every viewer's browser fetch that URL
and ``[text](url)`` would become a live link. Every name, code, reason or message that came
from a user, a CSV or a camera goes through ``plain`` before it is interpolated into such a
string. Written by hand because no kept library escapes for Streamlit's Markdown dialect
(GitHub-flavoured Markdown plus ``:color[...]``, ``:material/...:`` and ``$`` math).
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation character; escaping all of them
# also breaks GFM's bare-URL autolinks (``http\:``, ``www\.``), Streamlit's ``:directives:``
# and ``$math$``, and keeps ``#``/``-``/``1.`` at a line start from becoming headings or lists.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]+")


def plain(value: object) -> str:
    """``value`` as a Markdown string that renders exactly as its text, on one line."""
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value))
    return _PUNCTUATION.sub(r"\\\1", text)


def plain_lines(values: list[str] | tuple[str, ...]) -> str:
    """A Markdown bullet list whose items are shown as plain text."""
    return "\n".join(f"- {plain(v)}" for v in values)
