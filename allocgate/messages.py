"""What goes to a person as one line: no line breaks, no control characters, no secrets.

Keys, paths and names come from files a user (or an attacker) wrote; echoed into
an error they must not split the line a CI log or a test reads as the error.
"""

from __future__ import annotations

import re

from allocgate.github.redact import redact

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators (which
# some terminals and editors break lines at), bidi overrides that reorder text.
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": "\\0"}
MAX_MESSAGE = 2000


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as a single printable line: breaks and controls escaped, secrets masked,
    at most ``limit`` characters."""
    line = _UNSAFE_RE.sub(_escape, redact(text))
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def error_line(prog: str, error: BaseException | str) -> str:
    """The one line of an error: ``allocgate: error: <what and where>``."""
    return f"{prog}: error: {one_line(str(error))}"
