"""One small validation layer for every value read from a config, a baseline or a profile.

Each check turns a bad value into one error naming the file and the key, so that
nothing downstream meets a number too long to print, a count too big for JSON,
a NUL byte on its way into ``execve``, a regex that does not compile or YAML
nested deeper than the stack. Callers pass the error class of their file kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from allocgate.errors import AllocgateError

MAX_COUNT = 2**63 - 1
"""The largest count or size accepted anywhere: what JSON readers and YAML round-trip."""
MAX_DIGITS = 40
"""Longer numbers in YAML are refused before Python's int() sees them."""
MAX_DEPTH = 100
"""YAML nested deeper than this is refused before the composer recurses."""
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


# ---------------------------------------------------------------- YAML


class SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses what would crash or mislead later.

    Duplicate keys (the last would silently win), unhashable keys (``? [a, b]``),
    integers longer than MAX_DIGITS (Python's int-to-str limit would raise deep
    inside a report) and nesting deeper than MAX_DEPTH (the composer recurses).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a mapping key must be a plain value, not a list or mapping",
                key_node.start_mark,
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {show(key)}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _construct_int(loader: SafeLoader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"the number has {digits} digits (at most {MAX_DIGITS})", node.start_mark
        )
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    assert isinstance(value, int)
    return value


SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
SafeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(path: Path | str, source: str, error: ErrorType) -> Any:
    """The YAML document in ``source``; every problem one error naming file:line:column."""
    try:
        return yaml.load(source, Loader=SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"{where}: invalid YAML: {' '.join(problem.split())}") from None
    except yaml.reader.ReaderError as exc:
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else show(char)
        raise error(
            f"{path}: invalid YAML: unacceptable character {shown} at position {exc.position}"
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{path}: invalid YAML: nested too deeply") from None


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
