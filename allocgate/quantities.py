"""Parsing and formatting of the quantities users type: sizes, counts, percentages, durations."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from allocgate.errors import ConfigError

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
_NUMBER = r"(\d[\d_,]*(?:\.\d+)?)"
_SIZE_RE = re.compile(rf"^{_NUMBER}\s*([a-zA-Z]*)$")
_PERCENT_RE = re.compile(rf"^\+?{_NUMBER}\s*%$")
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(ms|s|m|min|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _number(text: str) -> float:
    return float(text.replace("_", "").replace(",", ""))


def parse_size(value: object, *, what: str = "size") -> int:
    """``4 KiB`` / ``1.5MB`` / ``512`` → bytes (binary units for K/M/G and KiB/MiB/GiB)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size like '4 KiB' or 1024, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{what}: expected a non-negative size, got {value}")
        return value
    if isinstance(value, float) and value >= 0 and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value.strip())
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(_number(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ConfigError(f"{what}: expected a size like '4 KiB', '1 MB' or 1024, got {value!r}")


def parse_count(value: object, *, what: str = "count") -> int:
    """A plain non-negative whole number; sizes are refused so units are never mixed up."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a count like 100, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        if text.isdigit():
            return int(text)
        if _SIZE_RE.match(value.strip()):
            raise ConfigError(f"{what}: {value!r} is a size, but this metric counts blocks")
    raise ConfigError(f"{what}: expected a non-negative count like 100, got {value!r}")


def parse_percent(value: object, *, what: str = "relative tolerance") -> float:
    """``5%`` → 0.05. A bare number is read as a percentage too (``5`` → 0.05)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a percentage like '5%', got {value!r}")
    if isinstance(value, (int, float)) and value >= 0 and math.isfinite(value):
        return float(value) / 100.0
    if isinstance(value, str):
        m = _PERCENT_RE.match(value.strip())
        if m:
            return _number(m.group(1)) / 100.0
    raise ConfigError(f"{what}: expected a percentage like '5%', got {value!r}")


def parse_duration(value: object, *, what: str = "timeout") -> float:
    """``10m`` / ``90s`` / ``1.5h`` / ``30`` (seconds) → seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like '10m' or '90s', got {value!r}")
    if isinstance(value, (int, float)) and value > 0 and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m:
            seconds = _number(m.group(1)) * _DURATION_UNITS[m.group(2) or ""]
            if seconds > 0:
                return seconds
    raise ConfigError(f"{what}: expected a positive duration like '10m' or '90s', got {value!r}")


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
    relative = next((p for p in reversed(parts) if p.endswith("%")), None)
    absolute = next((p for p in reversed(parts) if not p.endswith("%")), None)
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


def parse_tolerance(
    metric: str,
    relative: object | None,
    absolute: object | None,
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
        if relative is None
        else parse_percent(relative, what=relative_what),
        info.default_tolerance.absolute
        if absolute is None
        else parse_size(absolute, what=absolute_what)
        if info.is_bytes
        else parse_count(absolute, what=absolute_what),
    )
