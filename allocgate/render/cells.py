"""A site's numbers as people read them: baseline, current, delta, relative delta."""

from __future__ import annotations

from allocgate.compare import GONE, NEW, SiteDelta
from allocgate.metrics import format_delta, format_value
from allocgate.quantities import format_percent


def _relative(base: int | None, cur: int | None) -> float | None:
    if base is None or cur is None:
        return None
    if base == 0:
        return 0.0 if cur == 0 else None
    return (cur - base) / base


def site_cells(site: SiteDelta, metric: str, units: dict[str, str]) -> dict[str, str]:
    """Baseline, current, delta and relative delta of one site, formatted."""
    base = site.value(metric, "baseline")
    cur = site.value(metric, "current")
    dash = "—"
    delta = (cur or 0) - (base or 0)
    rel = _relative(base, cur)
    if site.status == NEW:
        pct = "new"
    elif site.status == GONE:
        pct = "gone"
    else:
        pct = format_percent(rel) if rel is not None else "new"
    return {
        "baseline": dash if base is None else format_value(metric, base, units),
        "current": dash if cur is None else format_value(metric, cur, units),
        "delta": format_delta(metric, delta, units),
        "pct": pct,
    }
