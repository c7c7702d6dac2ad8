"""The one tolerance grammar, for allocgate.yml, ``--threshold`` and the pytest ini.

    SPEC      := [METRIC ":"] PART [("or" | ":") PART]
    PART      := RELATIVE | ABSOLUTE
    RELATIVE  := NUMBER "%"                       5%, 2.5%
    ABSOLUTE  := a size for byte metrics          1 KiB, 512 B, 1024
               | a count for block metrics        100

A bare number is never a percentage: ``0.05`` and ``5`` are refused with "did
you mean 5%?", because one reads as a fraction and the other as a percent. In
YAML a threshold is a SPEC string, ``{relative: 5%, absolute: 1 KiB}``, or a
mapping of metric names to either. A threshold that names no metric applies to
every metric; an absolute part with a size unit only to the byte metrics (the
block metrics keep their default absolute tolerance).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from allocgate.errors import ConfigError
from allocgate.metrics import METRIC_NAMES, METRICS
from allocgate.quantities import Tolerance, parse_count, parse_size

EXAMPLE = "e.g. threshold: 5% or 1 KiB"
_SEPARATOR = re.compile(r"\s+or\s+|\s*:\s*", re.IGNORECASE)
_PERCENT = re.compile(r"^\+?(\d[\d_]*(?:\.\d+)?)\s*%$")
_BARE = re.compile(r"^\+?\d[\d_]*(?:\.\d+)?$")


def _error(what: str, message: str) -> ConfigError:
    return ConfigError(f"{what}: {message} ({EXAMPLE})")


def did_you_mean(value: float) -> str:
    """``0.05`` → ``5%``; ``5`` → ``5%``: fractions below 1 are read as fractions."""
    percent = value * 100 if 0 < value < 1 else value
    return f"{percent:g}%"


def parse_relative(value: object, *, what: str) -> float:
    """``5%`` → 0.05. Bare numbers are refused with the percentage they probably meant."""
    if isinstance(value, bool):
        raise _error(what, f"expected a percentage like 5%, got {value!r}")
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        m = _PERCENT.match(text)
        if m:
            return float(m.group(1).replace("_", "")) / 100.0
        if _BARE.match(text):
            number = float(text.replace("_", ""))
    if number is not None and math.isfinite(number) and number >= 0:
        raise _error(what, f"{value!r} is a bare number; did you mean {did_you_mean(number)}?")
    raise _error(what, f"expected a percentage like 5%, got {value!r}")


def parse_absolute(value: object, metric: str, *, what: str) -> int:
    """A size for byte metrics, a count for block metrics."""
    try:
        if METRICS[metric].is_bytes:
            return parse_size(value, what=what)
        return parse_count(value, what=f"{what} ({metric} counts blocks)")
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({EXAMPLE})") from None


def _has_unit(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]\s*$", text))


def parse_spec(
    text: str, metrics: tuple[str, ...] = METRIC_NAMES, *, what: str
) -> dict[str, Tolerance]:
    """One SPEC string → a tolerance for each metric it applies to."""
    parts = [p for p in _SEPARATOR.split(text.strip()) if p]
    targets = metrics
    if parts and parts[0] in METRICS:
        targets = (parts.pop(0),)
    elif parts and re.fullmatch(r"[A-Za-z_]+", parts[0]):
        raise _error(
            what, f"unknown metric {parts[0]!r} (expected one of: {', '.join(METRIC_NAMES)})"
        )
    if not parts or len(parts) > 2:
        raise _error(what, f"expected [METRIC:]RELATIVE% [or ABSOLUTE], got {text!r}")
    relative = [p for p in parts if p.endswith("%")]
    absolute = [p for p in parts if not p.endswith("%")]
    if len(relative) > 1 or len(absolute) > 1:
        raise _error(what, f"expected one relative and one absolute part, got {text!r}")
    if not relative and _BARE.match(absolute[0]):
        # `threshold: 5` alone: nobody means five bytes.
        parse_relative(absolute[0], what=what)
    rel = parse_relative(relative[0], what=what) if relative else None
    result = {}
    for metric in targets:
        default = METRICS[metric].default_tolerance
        abs_value = default.absolute
        if absolute:
            sized = _has_unit(absolute[0])
            if sized and not METRICS[metric].is_bytes and len(targets) > 1:
                abs_value = default.absolute  # a size says nothing about block counts
            else:
                abs_value = parse_absolute(absolute[0], metric, what=what)
        result[metric] = Tolerance(default.relative if rel is None else rel, abs_value)
    return result


def _from_mapping(spec: Mapping[Any, Any], metric: str, *, what: str) -> Tolerance:
    for key in spec:
        if key not in ("relative", "absolute"):
            raise _error(f"{what}.{key}", "unknown key (expected 'relative' and/or 'absolute')")
    default = METRICS[metric].default_tolerance
    relative = (
        parse_relative(spec["relative"], what=f"{what}.relative")
        if "relative" in spec
        else default.relative
    )
    absolute = (
        parse_absolute(spec["absolute"], metric, what=f"{what}.absolute")
        if "absolute" in spec
        else default.absolute
    )
    return Tolerance(relative, absolute)


def _one(value: Any, metric: str, *, what: str) -> Tolerance:
    if isinstance(value, Mapping):
        return _from_mapping(value, metric, what=what)
    if isinstance(value, str):
        return parse_spec(value, (metric,), what=what)[metric]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parse_relative(value, what=what)  # raises "did you mean N%?"
    raise _error(
        what, f"expected '5%', '5% or 1 KiB' or {{relative: 5%, absolute: 1 KiB}}, got {value!r}"
    )


def parse_threshold(value: Any, *, what: str) -> dict[str, Tolerance]:
    """A ``threshold`` value from YAML (string, {relative, absolute} or per metric)."""
    if isinstance(value, str):
        return parse_spec(value, what=what)
    if isinstance(value, Mapping):
        if not value:
            return {}
        if set(value) & {"relative", "absolute"}:
            # {relative, absolute} without a metric: the byte metrics, like before.
            return {
                m: _from_mapping(value, m, what=what) for m in METRIC_NAMES if METRICS[m].is_bytes
            }
        result = {}
        for metric, spec in value.items():
            if metric not in METRICS:
                raise _error(
                    f"{what}.{metric}", f"unknown metric (expected: {', '.join(METRIC_NAMES)})"
                )
            result[metric] = _one(spec, metric, what=f"{what}.{metric}")
        return result
    return {m: _one(value, m, what=what) for m in METRIC_NAMES}
