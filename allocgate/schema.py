"""One small validation layer for every value read from a config, a baseline or a profile.

Each check turns a bad value into one error naming the file and the key, so that
nothing downstream meets a number too long to print, a count too big for JSON,
a NUL byte on its way into ``execve`` or a regex that does not compile. YAML
documents are read by ``safe_yaml``. Callers pass the error class of their file kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

from allocgate.errors import AllocgateError

MAX_COUNT = 2**63 - 1
"""The largest count or size accepted anywhere: what JSON readers and YAML round-trip."""
MAX_REGEX = 1000
_DECIMAL_RE = re.compile(r"[0-9][0-9_,]{0,30}(?:\.[0-9]{1,30})?", re.ASCII)
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

ErrorType = Callable[[str], AllocgateError]


def fail(error: ErrorType, path: Path | str, key: str, message: str) -> NoReturn:
    raise error(f"{path}: {key}: {message}")


def show(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: big values stay readable in a message."""
    try:
        text = repr(value)
    except ValueError:
        # An int too long for repr (Python's int-to-str limit).
        return "a number too long to print"
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- numbers


def is_count(value: object, maximum: int = MAX_COUNT) -> bool:
    """A non-negative int (not a bool) no bigger than ``maximum``."""
    return type(value) is int and 0 <= value <= maximum


def count(
    value: object,
    error: ErrorType,
    path: Path | str,
    key: str,
    *,
    minimum: int = 0,
    maximum: int = MAX_COUNT,
) -> int:
    """A whole number in ``[minimum, maximum]``; bools, floats and strings are refused."""
    if type(value) is not int or not minimum <= value <= maximum:
        what = "a positive" if minimum == 1 else "a non-negative" if minimum == 0 else "a"
        fail(
            error,
            path,
            key,
            f"expected {what} whole number up to {maximum}, got {show(value)}",
        )
    return value


def decimal(text: str) -> float | None:
    """ASCII digits with optional ``_``/``,`` grouping and a fraction, or None.

    Look-alike digits (``٥``, ``²``), exponents and infinities are not numbers here.
    """
    text = text.strip()
    if not _DECIMAL_RE.fullmatch(text):
        return None
    value = float(text.replace("_", "").replace(",", ""))
    return value if math.isfinite(value) else None


def bounded_float(value: float, maximum: float) -> float | None:
    return value if math.isfinite(value) and 0 <= value <= maximum else None


# ---------------------------------------------------------------- strings


def text(
    value: object, error: ErrorType, path: Path | str, key: str, *, allow_empty: bool = False
) -> str:
    """A string without control characters (names, profiles, features, paths)."""
    if not isinstance(value, str) or (not value and not allow_empty):
        fail(error, path, key, f"expected a non-empty string, got {show(value)}")
    bad = _CONTROL_RE.search(value)
    if bad is not None:
        fail(error, path, key, f"holds the control character {show(bad.group())}")
    return value


def argument(value: object, error: ErrorType, path: Path | str, key: str) -> str:
    """One command-line argument: any text but a NUL byte, which execve cannot pass."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        fail(error, path, key, f"expected a string, got {show(value)}")
    if isinstance(value, int) and abs(value) > MAX_COUNT:
        fail(error, path, key, "the number is too long; quote it as a string")
    result = str(value)
    if "\0" in result:
        fail(error, path, key, "holds a NUL byte, which cannot be passed to a program")
    return result


def environment(value: object, error: ErrorType, path: Path | str, key: str) -> dict[str, str]:
    """Variable names without ``=`` or NUL, values without NUL."""
    if not isinstance(value, Mapping):
        fail(error, path, key, "expected a mapping of variable names to strings")
    env: dict[str, str] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not name:
            fail(error, path, key, f"variable names must be non-empty strings, got {show(name)}")
        if "=" in name or "\0" in name:
            fail(error, path, f"{key}.{name}", "a variable name cannot hold '=' or a NUL byte")
        env[name] = argument(raw, error, path, f"{key}.{name}")
    return env


def regex(pattern: object, error: ErrorType, path: Path | str, key: str) -> re.Pattern[str]:
    """A compiled regular expression, or an error saying where it is broken."""
    if not isinstance(pattern, str) or not pattern:
        fail(error, path, key, f"expected a regular expression, got {show(pattern)}")
    if len(pattern) > MAX_REGEX:
        fail(error, path, key, f"the regular expression is longer than {MAX_REGEX} characters")
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        detail = getattr(exc, "msg", None) or str(exc)
        position = getattr(exc, "pos", None)
        at = f" at position {position}" if position is not None else ""
        fail(error, path, key, f"invalid regular expression {show(pattern)}: {detail}{at}")


# ---------------------------------------------------------------- JSON profiles


def top_level_key_once(data: bytes, key: str) -> bool:
    """Whether ``"key":`` occurs at most once in a JSON document.

    A key can only be followed by ``:`` (a string value cannot: inside strings
    quotes are escaped), so two occurrences mean a duplicate or a nested copy,
    which a streaming reader would take for the real one.
    """
    needle = f'"{key}"'.encode()
    if data.count(needle) <= 1:
        return True
    return len(re.findall(re.escape(needle) + rb"\s*:", data)) <= 1
