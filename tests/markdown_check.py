"""Rendering markdown as GitHub does (cmark-gfm) and reading what a reader would see.

Tests use it to check that text from a profile, a config or a baseline renders
literally: no tag, link, image, emphasis or extra table cell of its own, and no
``@mention``, ``#12`` reference or ``:emoji:`` where GitHub would find one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import cmarkgfm
from cmarkgfm.cmark import Options

ZWSP = "\u200b"
# GitHub's filters skip text inside these elements.
_IGNORED_PARENTS = {"code", "pre", "a", "tt"}
# What GitHub's mention, issue-reference and emoji filters look for in text nodes.
MENTION_RE = re.compile(r"(?:^|[^\w`])@[A-Za-z0-9][A-Za-z0-9-]*")
REFERENCE_RE = re.compile(r"(?:^|[^\w&])(?:[\w.-]+/[\w.-]+)?#\d+")
EMOJI_RE = re.compile(r":[a-z0-9_+-]+:")


def render(markdown: str) -> str:
    """GFM to HTML with raw HTML kept (GitHub sanitizes it afterwards, by a whitelist)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


@dataclass
class Rendered:
    tags: list[str] = field(default_factory=list)
    text: str = ""
    linkable_text: list[str] = field(default_factory=list)
    """Text nodes outside code/pre/a: where GitHub looks for mentions and references."""
    cells_per_row: list[int] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    """The text of each table cell."""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.result = Rendered()
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.result.tags.append(tag)
        if tag == "tr":
            self.result.cells_per_row.append(0)
        if tag in ("td", "th"):
            self.result.cells_per_row[-1] += 1
            self.result.cells.append("")
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop() == tag:
                break

    def handle_data(self, data: str) -> None:
        self.result.text += data
        if {"td", "th"}.intersection(self._stack):
            self.result.cells[-1] += data
        if not _IGNORED_PARENTS.intersection(self._stack):
            self.result.linkable_text.append(data)

    def handle_comment(self, data: str) -> None:
        self.result.tags.append("!--")


def read(markdown: str) -> Rendered:
    """The rendered markdown: its tags, its visible text and where links could appear."""
    reader = _Reader()
    reader.feed(render(markdown))
    reader.close()
    return reader.result


def visible(text: str) -> str:
    """What a reader sees of decoded text: zero-width spaces are invisible."""
    return text.replace(ZWSP, "")


def pings(rendered: Rendered) -> list[str]:
    """Every mention, issue reference or emoji shortcode GitHub would act on."""
    found: list[str] = []
    for text in rendered.linkable_text:
        for pattern in (MENTION_RE, REFERENCE_RE, EMOJI_RE):
            found += pattern.findall(text)
    return found
