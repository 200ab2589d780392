"""User text rendered through ``plain`` is text: no link, image, emphasis or heading."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from aas_core.ui.text import plain, plain_lines

HOSTILE = [
    "![x](http://127.0.0.1:9/beacon.png)",
    "[click me](http://127.0.0.1:9/phish)",
    "<img src=http://127.0.0.1:9/x>",
    "<http://127.0.0.1:9/auto>",
    "**bold** _it_ ~~gone~~ `code`",
    "# Heading",
    "- item",
    "1. item",
    "> quote",
    "a | b\n---|---\nc | d",
    "O'Brien & Sons <script>alert(1)</script>",
    "Renée Ñúñez 学生",
    "see http://127.0.0.1:9/bare and www.example.org",
    "back\\slash\\*",
]


def rendered(markdown: str) -> str:
    """GitHub-flavoured Markdown as Streamlit's frontend renders it (tables, strikethrough)."""
    return MarkdownIt("gfm-like").render(markdown)


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_renders_as_the_same_text_and_nothing_else(text: str) -> None:
    out = rendered(plain(text)).strip()
    assert out.startswith("<p>") and out.endswith("</p>")
    inner = out[3:-4]
    for tag in ("<a", "<img", "<em", "<strong", "<code", "<h1", "<li", "<blockquote", "<table", "<s>", "<del",
                "<script"):
        assert tag not in inner, (text, out)
    assert html.unescape(inner) == text.replace("\n", " ")


def test_unescaped_text_would_have_been_an_image_and_a_link() -> None:
    # The test above can fail: without plain() the same strings do render as markup.
    assert "<img" in rendered(HOSTILE[0]) and "<a" in rendered(HOSTILE[1])


def test_streamlit_directives_and_math_are_escaped() -> None:
    assert plain(":red[alert] $x^2$ :material/home:") == r"\:red\[alert\] \$x\^2\$ \:material\/home\:"


def test_plain_lines_is_a_list_of_plain_items() -> None:
    out = rendered(plain_lines(["[a](http://x)", "b"]))
    assert out.count("<li>") == 2 and "<a" not in out
