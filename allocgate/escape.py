"""Escaping untrusted text (from a profile, a config or a baseline) for every output.

One place decides how a string is made safe for each destination:

- ``one_line``: terminals and one-line messages; line breaks and control
  characters become visible escapes, so a name can never split a line.
- ``md_text`` / ``md_code``: GitHub-flavoured markdown (table cells included).
  GitHub finds ``@mentions`` and ``#12`` references in the *rendered* text, after
  entities are decoded, so ``&#64;`` does not help (github/cmark-gfm#181); a
  zero-width space after ``@`` and ``#`` does, and reads the same. ``md_code``
  also wraps the text in ``<code>``, inside which GitHub links nothing.
- ``html_text``: text inside an HTML block such as ``<pre>``.
- ``mermaid_label``: a quoted label in a mermaid chart (a whitelist).
- ``workflow_data`` / ``workflow_property`` / ``workflow_command``: GitHub
  Actions workflow commands (``::error file=…::message``), per GitHub's rules.
- ``json_for_html``: JSON embedded in markdown or HTML (a comment, a ``<script>``).
- ``md_fence``: a fenced code block that its content cannot close.

Display names are cut to ``DISPLAY_LIMIT`` characters with an ellipsis; the
full string stays in JSON output and in the baseline.
"""

from __future__ import annotations

import re

DISPLAY_LIMIT = 200
"""Characters of a name shown in text and markdown; JSON keeps the whole name."""
ELLIPSIS = "…"
ZWSP = "\u200b"

# Line and paragraph separators every renderer must flatten (Python's own
# str.splitlines() breaks on all of them, and so do some viewers).
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# C0/C1 controls (minus tab and the breaks above), DEL, and the bidirectional
# overrides and isolates that make text display in another order than it reads.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0e-\x1b\x1f\x7f\x80-\x84\x86-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_BREAK_RE = re.compile(f"[{re.escape(_BREAKS)}]+|\t")


def shorten(text: object, limit: int | None = DISPLAY_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    s = str(text)
    if limit is None or len(s) <= limit:
        return s
    return s[: max(limit - 1, 0)] + ELLIPSIS


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: object, limit: int | None = None) -> str:
    """Plain text on one line: breaks become spaces, controls visible escapes."""
    s = _BREAK_RE.sub(" ", shorten(text, limit))
    return _INVISIBLE_RE.sub(_visible, s)


# ---------------------------------------------------------------- markdown / HTML

# Every character with a meaning in GFM inline syntax or tables becomes an
# entity, so it renders literally and cannot open a link, an image, emphasis,
# a code span, a tag, a table cell or a math block.
_MD_ENTITIES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "|": "&#124;",
    "`": "&#96;",
    "*": "&#42;",
    "_": "&#95;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
    "~": "&#126;",
    "!": "&#33;",
    "$": "&#36;",
    "^": "&#94;",
}
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# After entity decoding GitHub still sees these, so a zero-width space goes
# right after: ``@`` (mentions, e-mail autolinks) and ``#`` (issue references).
_UNLINK = {"@": "@" + ZWSP, "#": "#" + ZWSP}
_MD_RE = re.compile("[" + re.escape("".join(_MD_ENTITIES) + "".join(_UNLINK)) + "]")
_HTML_RE = re.compile("[" + re.escape("".join(_HTML_ENTITIES) + "".join(_UNLINK)) + "]")
# GFM's autolink extension and GitHub's emoji shortcodes (``:b:`` in
# ``a::b::c``) work on decoded text too: break "www.", "://" and ":word".
_AUTOLINK_RE = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)")
_EMOJI_RE = re.compile(r"(?<=:)(?=\w)")
# A line that starts like a list item, a heading underline or an ordered list
# marker ("1." / "1)") would change the block: the first character is an entity.
_BLOCK_START_RE = re.compile(r"^[-+=0-9]")


def _md_sub(match: re.Match[str]) -> str:
    c = match.group()
    return _MD_ENTITIES.get(c) or _UNLINK[c]


def _html_sub(match: re.Match[str]) -> str:
    c = match.group()
    return _HTML_ENTITIES.get(c) or _UNLINK[c]


def _unlink(text: str) -> str:
    return _AUTOLINK_RE.sub(ZWSP, text)


def md_text(text: object, limit: int | None = None, *, line_start: bool = False) -> str:
    """Prose in markdown (a table cell, a list item, a heading): renders literally.

    ``line_start`` when the text begins a line, where ``- ``, ``1.`` or ``===``
    would start a list or underline a heading.
    """
    escaped = _md(_EMOJI_RE.sub(ZWSP, one_line(text, limit)))
    if line_start:
        return _BLOCK_START_RE.sub(lambda m: f"&#{ord(m.group())};", escaped)
    return escaped


def _md(line: str) -> str:
    return _MD_RE.sub(_md_sub, _unlink(line))


def md_code(text: object, limit: int | None = DISPLAY_LIMIT) -> str:
    """An identifier (a callsite key, a path, a unit) in markdown, as ``<code>``.

    ``<code>`` rather than a backtick span because it is safe in every context
    (a table cell's ``|`` included) and GitHub links no mention inside it.
    """
    # GitHub makes no emoji inside <code>, so "::" stays as typed there.
    return f"<code>{_md(one_line(text, limit))}</code>"


def html_text(text: object, limit: int | None = DISPLAY_LIMIT, *, in_pre: bool = False) -> str:
    """Text inside HTML (``<summary>``, ``<b>``; ``in_pre`` for ``<pre>``): one line, no markup."""
    line = one_line(text, limit)
    # GitHub makes no emoji inside <pre>, so frames keep their "::" as typed there.
    if not in_pre:
        line = _EMOJI_RE.sub(ZWSP, line)
    return _HTML_RE.sub(_html_sub, _unlink(line))


def md_fence(text: str, lang: str = "") -> str:
    """``text`` in a fenced code block whose fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", lang)
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}"


def json_for_html(data: bytes | str) -> str:
    """Serialized JSON made safe inside HTML or a markdown HTML comment.

    ``<``, ``>`` and ``&`` become ``\\u`` escapes (still the same JSON), so the
    text cannot close a ``-->`` comment or a ``</script>``; U+2028/9 too, which
    some JavaScript parsers treat as line ends.
    """
    s = data.decode("utf-8") if isinstance(data, bytes) else data
    for c in "<>&\u2028\u2029":
        s = s.replace(c, f"\\u{ord(c):04x}")
    return s


# ---------------------------------------------------------------- mermaid


def mermaid_label(text: object, limit: int = 24, fallback: str = "?") -> str:
    """Text safe inside a double-quoted mermaid label: letters, digits and ``_:. -+,/()``.

    Mermaid has its own entity syntax (``#35;``), markdown strings (backticks),
    comments (``%%``) and HTML labels, so only a whitelist is safe.
    """
    kept = "".join(
        c if (c.isalnum() and c.isprintable()) or c in "_:. -+,/()" else "" for c in one_line(text)
    )
    kept = re.sub(r"\s+", " ", kept).strip()
    return shorten(kept, limit) or fallback


# ---------------------------------------------------------------- workflow commands

_DATA_ESCAPES = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_PROPERTY_ESCAPES = {**_DATA_ESCAPES, ":": "%3A", ",": "%2C"}
_COMMAND_RE = re.compile(r"^[a-z][a-z-]*$")
_PROPERTY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def workflow_data(text: object) -> str:
    """The message of a workflow command (after the second ``::``), per GitHub's rules."""
    return "".join(_DATA_ESCAPES.get(c, c) for c in str(text))


def workflow_property(text: object) -> str:
    """A property value of a workflow command (``file=``, ``title=``…), per GitHub's rules."""
    return "".join(_PROPERTY_ESCAPES.get(c, c) for c in str(text))


def workflow_command(command: str, message: object, **properties: object) -> str:
    """``::command k=v,…::message`` with every part escaped; ``None`` properties left out.

    >>> workflow_command("error", "grew 5%", file="src/a,b.rs", line=3)
    '::error file=src/a%2Cb.rs,line=3::grew 5%25'
    """
    if not _COMMAND_RE.match(command):
        raise ValueError(f"not a workflow command name: {command!r}")
    parts = []
    for name, value in properties.items():
        if value is None:
            continue
        if not _PROPERTY_RE.match(name):
            raise ValueError(f"not a workflow command property: {name!r}")
        parts.append(f"{name}={workflow_property(value)}")
    head = f"::{command}" + (" " + ",".join(parts) if parts else "")
    return f"{head}::{workflow_data(message)}"
