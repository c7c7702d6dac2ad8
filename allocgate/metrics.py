"""The per-callsite metrics allocgate measures, and what each back end can provide."""

from __future__ import annotations

from dataclasses import dataclass

from allocgate.quantities import Tolerance, format_count, format_size


@dataclass(frozen=True)
class MetricInfo:
    name: str
    is_bytes: bool
    """True for byte metrics (take sizes), False for block counts (take counts)."""
    title: str
    default_tolerance: Tolerance


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("total_bytes", True, "total bytes", Tolerance(0.05, 1024)),
        MetricInfo("total_blocks", False, "total blocks", Tolerance(0.05, 100)),
        MetricInfo("peak_bytes", True, "bytes at peak", Tolerance(0.05, 1024)),
        MetricInfo("end_bytes", True, "bytes at exit", Tolerance(0.05, 1024)),
        MetricInfo("temporary_blocks", False, "temporary blocks", Tolerance(0.05, 100)),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def metric_info(name: str) -> MetricInfo:
    from allocgate.errors import ConfigError

    try:
        return METRICS[name]
    except KeyError:
        raise ConfigError(
            f"unknown metric {name!r} (expected one of: {', '.join(METRIC_NAMES)})"
        ) from None


def format_value(metric: str, value: int | float, units: dict[str, str] | None = None) -> str:
    """A metric value for people: sizes for byte metrics, grouped digits for counts."""
    unit = (units or {}).get(metric)
    if unit is not None and unit not in ("bytes", "blocks"):
        return f"{format_count(value)} {unit}"
    if METRICS[metric].is_bytes:
        return format_size(value)
    return format_count(value)


def format_delta(metric: str, delta: int | float, units: dict[str, str] | None = None) -> str:
    sign = "+" if delta > 0 else ("-" if delta < 0 else "±")
    return sign + format_value(metric, abs(delta), units)
