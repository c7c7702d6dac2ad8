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


def parse_percent(value: object, *, what: str = "relative tolerance") -> float:
    """``5%`` → 0.05. A bare number is read as a percentage too (``5`` → 0.05)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a percentage like '5%', got {value!r}")
    number: float | None = None
    if isinstance(value, (int, float)) and abs(value) <= MAX_PERCENT:
        number = float(value)
    elif isinstance(value, str):
        m = _PERCENT_RE.match(value.strip())
        if m:
            number = _number(m.group(1))
    if number is not None and math.isfinite(number) and 0 <= number <= MAX_PERCENT:
        return number / 100.0
    raise ConfigError(
        f"{what}: expected a percentage like '5%' (up to {MAX_PERCENT:g}%), got {show(value)}"
    )


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


def parse_threshold(spec: str, metrics: tuple[str, ...]) -> dict[str, Tolerance]:
    """``5%``, ``1KiB``, ``5%:1KiB``, ``total_blocks:10%:100`` → tolerances per metric.

    Without a metric name the spec applies to every gated metric it fits (sizes
    to byte metrics, plain counts to every metric); a part left out keeps the
    metric's default.
    """
    from allocgate.metrics import METRIC_NAMES, METRICS

    parts = [p.strip() for p in spec.split(":") if p.strip()]
    targets = metrics
    if parts and parts[0] in METRICS:
        targets = (parts.pop(0),)
    elif parts and parts[0].replace("_", "").isalpha():
        raise ConfigError(
            f"threshold {spec!r}: unknown metric {parts[0]!r} (expected one of: "
            f"{', '.join(METRIC_NAMES)})"
        )
    if not parts or len(parts) > 2:
        raise ConfigError(
            f"threshold {spec!r}: expected [METRIC:]RELATIVE%[:ABSOLUTE], e.g. 'total_bytes:5%:1KiB'"
        )
    relative = next((p for p in reversed(parts) if p.endswith("%")), DEFAULT)
    absolute = next((p for p in reversed(parts) if not p.endswith("%")), DEFAULT)
    return {
        metric: parse_tolerance(
            metric,
            relative,
            absolute,
            relative_what=f"threshold {spec!r}",
            absolute_what=f"threshold {spec!r}"
            + ("" if METRICS[metric].is_bytes else f" ({metric})"),
        )
        for metric in targets
    }


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
    return Tolerance(
        info.default_tolerance.relative
        if relative is DEFAULT
        else parse_percent(relative, what=relative_what),
        info.default_tolerance.absolute
        if absolute is DEFAULT
        else parse_size(absolute, what=absolute_what)
        if info.is_bytes
        else parse_count(absolute, what=absolute_what),
    )
