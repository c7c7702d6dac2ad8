"""The one escaper for text that goes into markdown or HTML: everything from a
profile, a config or a baseline is escaped with these before it is shown."""

from __future__ import annotations

import re

# Everything taken from a profile is user- or compiler-controlled text: in markdown
# it must render literally, break no table, ping nobody and link no issue.
_MD_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "*": "&#42;",
    "_": "&#95;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
    "~": "&#126;",
    "@": "&#64;",
    "#": "&#35;",
    "!": "&#33;",
    "$": "&#36;",
    "\n": " ",
    "\r": " ",
}
_MD_RE = re.compile("[" + re.escape("".join(_MD_ESCAPES)) + "]")
_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "#": "&#35;", '"': "&quot;"}
_HTML_RE = re.compile('[&<>@#"]')


def escape_md(text: object) -> str:
    """Literal text inside markdown (tables included)."""
    return _MD_RE.sub(lambda m: _MD_ESCAPES[m.group()], str(text))


def escape_html(text: object) -> str:
    """Literal text inside an HTML block such as ``<pre>``."""
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], str(text))


def code_span(text: object) -> str:
    """Literal text as an inline code span, fenced with more backticks than it holds."""
    body = str(text).replace("\n", " ").replace("\r", " ")
    runs = re.findall(r"`+", body)
    fence = "`" * (max((len(r) for r in runs), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"
