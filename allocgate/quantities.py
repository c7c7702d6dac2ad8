"""Parsing and formatting of the quantities users type: sizes, counts, percentages, durations."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from allocgate.errors import ConfigError
from allocgate.schema import MAX_COUNT, show

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
# ASCII digits only (re.ASCII): '٥' or '²' are not numbers here, and the length
# is bounded, so nothing reaches float() or int() that they cannot take.
_NUMBER = r"([0-9][0-9_,]{0,30}(?:\.[0-9]{1,30})?)"
_SIZE_RE = re.compile(rf"^{_NUMBER}\s*([a-zA-Z]*)$", re.ASCII)
_PERCENT_RE = re.compile(rf"^\+?{_NUMBER}\s*%$", re.ASCII)
_BARE_RE = re.compile(rf"^\+?{_NUMBER}$", re.ASCII)
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(ms|s|m|min|h)?$", re.ASCII)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
MAX_QUANTITY = MAX_COUNT
MAX_PERCENT = 1_000_000.0
MAX_SECONDS = 30 * 24 * 3600.0
"""A month: longer timeouts overflow the clocks they are added to."""


def _number(text: str) -> float:
    return float(text.replace("_", "").replace(",", ""))


def _bounded_size(value: float, what: str, shown: object) -> int:
    if not math.isfinite(value) or not 0 <= value <= MAX_QUANTITY:
        raise ConfigError(f"{what}: {show(shown)} is out of range (at most {MAX_QUANTITY})")
    return int(value)


def parse_size(value: object, *, what: str = "size") -> int:
    """``4 KiB`` / ``1.5MB`` / ``512`` → bytes (binary units for K/M/G and KiB/MiB/GiB)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size like '4 KiB' or 1024, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{what}: expected a non-negative size, got {show(value)}")
        return _bounded_size(value, what, value)
    if isinstance(value, float) and value >= 0 and math.isfinite(value):
        return _bounded_size(value, what, value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value.strip())
        if m and m.group(2).lower() in _SIZE_UNITS:
            return _bounded_size(_number(m.group(1)) * _SIZE_UNITS[m.group(2).lower()], what, value)
    raise ConfigError(f"{what}: expected a size like '4 KiB', '1 MB' or 1024, got {show(value)}")


def parse_count(value: object, *, what: str = "count") -> int:
    """A plain non-negative whole number; sizes are refused so units are never mixed up."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a count like 100, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return _bounded_size(value, what, value)
    if isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        if text.isascii() and text.isdigit() and len(text) <= 19:
            return _bounded_size(int(text), what, value)
        if _SIZE_RE.match(value.strip()):
            raise ConfigError(f"{what}: {value!r} is a size, but this metric counts blocks")
    raise ConfigError(f"{what}: expected a non-negative count like 100, got {show(value)}")


def did_you_mean(value: float) -> str:
    """``0.05`` → ``5%``; ``5`` → ``5%``: numbers below 1 read as fractions."""
    percent = value * 100 if 0 < value < 1 else value
    return f"{percent:g}%"


def parse_percent(value: object, *, what: str = "relative tolerance") -> float:
    """``5%`` → 0.05. A bare number is refused: ``0.05`` reads as a fraction and ``5`` as
    a percentage, so either guess would be wrong for someone."""
    if isinstance(value, bool):
        raise _threshold_error(what, f"expected a percentage like 5%, got {value!r}")
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        m = _PERCENT_RE.match(text)
        if m:
            return _number(m.group(1)) / 100.0
        if _BARE_RE.match(text):
            number = _number(text)
    if number is not None and math.isfinite(number) and number >= 0:
        raise _threshold_error(
            what, f"{value!r} is a bare number; did you mean {did_you_mean(number)}?"
        )
    raise _threshold_error(what, f"expected a percentage like 5%, got {value!r}")


def parse_duration(value: object, *, what: str = "timeout") -> float:
    """``10m`` / ``90s`` / ``1.5h`` / ``30`` (seconds) → seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like '10m' or '90s', got {value!r}")
    seconds: float | None = None
    if isinstance(value, (int, float)) and abs(value) <= MAX_SECONDS:
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m:
            seconds = _number(m.group(1)) * _DURATION_UNITS[m.group(2) or ""]
    if seconds is not None and math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS:
        return seconds
    raise ConfigError(
        f"{what}: expected a positive duration like '10m' or '90s' (at most 30 days), "
        f"got {show(value)}"
    )


@dataclass(frozen=True)
class Tolerance:
    """How much a metric may grow: it regresses only when it exceeds both bounds."""

    relative: float
    """Fraction of the baseline value (0.05 = 5 %)."""
    absolute: int
    """Bytes or blocks, depending on the metric."""

    def exceeded_by(self, baseline: int, current: int) -> bool:
        delta = current - baseline
        return delta > self.absolute and delta > self.relative * baseline

    def improved_by(self, baseline: int, current: int) -> bool:
        delta = baseline - current
        return delta > self.absolute and delta > self.relative * baseline


_UNITS_BINARY = ("B", "KiB", "MiB", "GiB", "TiB")


def format_size(n: int | float) -> str:
    """1536 → '1.5 KiB'; exact bytes below 1 KiB."""
    value = float(abs(n))
    sign = "-" if n < 0 else ""
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in _UNITS_BINARY[1:]:
        value /= 1024.0
        if value < 1024 or unit == _UNITS_BINARY[-1]:
            return f"{sign}{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_count(n: int | float) -> str:
    return f"{int(n):,}"


def format_percent(fraction: float | None) -> str:
    if fraction is None:
        return "new"
    return f"{fraction * 100:+.1f}%"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


THRESHOLD_EXAMPLE = "e.g. threshold: 5% or 1 KiB"
_SEPARATOR_RE = re.compile(r"\s+or\s+|\s*:\s*", re.IGNORECASE)
_UNIT_RE = re.compile(r"[A-Za-z]\s*$")


def _threshold_error(what: str, message: str) -> ConfigError:
    return ConfigError(f"{what}: {message} ({THRESHOLD_EXAMPLE})")


# The one tolerance grammar, for allocgate.yml, --threshold and the pytest ini:
#
#     SPEC     := [METRIC ":"] PART [("or" | ":") PART]
#     PART     := RELATIVE ("5%") | ABSOLUTE (a size for byte metrics, a count for blocks)
#
# A SPEC that names no metric applies to every metric; an absolute part with a
# size unit only to the byte metrics (block metrics keep their default).


def parse_threshold(
    spec: str, metrics: tuple[str, ...] | None = None, *, what: str = "threshold"
) -> dict[str, Tolerance]:
    """``5%``, ``5% or 1 KiB``, ``5%:1KiB``, ``total_blocks: 10% or 100`` → tolerances."""
    from allocgate.metrics import METRIC_NAMES, METRICS

    parts = [p for p in _SEPARATOR_RE.split(spec.strip()) if p]
    targets = metrics or METRIC_NAMES
    if parts and parts[0] in METRICS:
        targets = (parts.pop(0),)
    elif parts and re.fullmatch(r"[A-Za-z_]+", parts[0]):
        raise _threshold_error(
            what, f"unknown metric {parts[0]!r} (expected one of: {', '.join(METRIC_NAMES)})"
        )
    if not parts or len(parts) > 2:
        raise _threshold_error(what, f"expected [METRIC:]RELATIVE% [or ABSOLUTE], got {spec!r}")
    relative = [p for p in parts if p.endswith("%")]
    absolute = [p for p in parts if not p.endswith("%")]
    if len(relative) > 1 or len(absolute) > 1:
        raise _threshold_error(what, f"expected one relative and one absolute part, got {spec!r}")
    if not relative and _BARE_RE.match(absolute[0]):
        parse_percent(absolute[0], what=what)  # `threshold: 5` alone: nobody means 5 bytes
    result = {}
    for metric in targets:
        sized = bool(absolute) and bool(_UNIT_RE.search(absolute[0]))
        # A size says nothing about block counts: they keep their default.
        keep_default = sized and not METRICS[metric].is_bytes and len(targets) > 1
        result[metric] = parse_tolerance(
            metric,
            relative[0] if relative else DEFAULT,
            absolute[0] if absolute and not keep_default else DEFAULT,
            relative_what=what,
            absolute_what=what,
        )
    return result


#: A part of a tolerance that was not given (None is a value someone typed, and wrong).
DEFAULT = object()


def parse_tolerance(
    metric: str,
    relative: object,
    absolute: object,
    *,
    relative_what: str,
    absolute_what: str,
) -> Tolerance:
    """One metric's tolerance from its parts as typed (a missing part keeps the
    metric's default): a percentage, and a size for byte metrics or a count."""
    from allocgate.metrics import METRICS

    info = METRICS[metric]
    rel = info.default_tolerance.relative
    if relative is not DEFAULT:
        rel = parse_percent(relative, what=relative_what)
    if absolute is DEFAULT:
        return Tolerance(rel, info.default_tolerance.absolute)
    try:
        if info.is_bytes:
            return Tolerance(rel, parse_size(absolute, what=absolute_what))
        return Tolerance(rel, parse_count(absolute, what=f"{absolute_what} ({metric})"))
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({THRESHOLD_EXAMPLE})") from None


def parse_threshold_value(value: object, *, what: str) -> dict[str, Tolerance]:
    """A ``threshold`` from YAML: a SPEC string, ``{relative: 5%, absolute: 1 KiB}`` (the
    byte metrics), or a mapping of metric names to either."""
    from allocgate.metrics import METRIC_NAMES, METRICS

    if isinstance(value, str):
        return parse_threshold(value, what=what)
    if not isinstance(value, dict):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parse_percent(value, what=what)  # raises "did you mean N%?"
        raise _threshold_error(
            what,
            f"expected '5%', '5% or 1 KiB' or {{relative: 5%, absolute: 1 KiB}}, got {value!r}",
        )
    if not value:
        return {}
    if set(value) & {"relative", "absolute"}:
        return {m: _from_parts(value, m, what=what) for m in METRIC_NAMES if METRICS[m].is_bytes}
    result = {}
    for metric, spec in value.items():
        if metric not in METRICS:
            raise _threshold_error(
                f"{what}.{metric}", f"unknown metric (expected: {', '.join(METRIC_NAMES)})"
            )
        at = f"{what}.{metric}"
        if isinstance(spec, dict):
            result[metric] = _from_parts(spec, metric, what=at)
        elif isinstance(spec, str):
            result[metric] = parse_threshold(spec, (metric,), what=at)[metric]
        else:
            parse_percent(spec, what=at)
    return result


def _from_parts(spec: dict[object, object], metric: str, *, what: str) -> Tolerance:
    for key in spec:
        if key not in ("relative", "absolute"):
            raise _threshold_error(
                f"{what}.{key}", "unknown key (expected 'relative' and/or 'absolute')"
            )
    return parse_tolerance(
        metric,
        spec.get("relative", DEFAULT),
        spec.get("absolute", DEFAULT),
        relative_what=f"{what}.relative",
        absolute_what=f"{what}.absolute",
    )
