"""A site's numbers as people read them: baseline, current, delta, relative delta."""

from __future__ import annotations

from allocgate.compare import GONE, NEW, UNCHANGED, SiteDelta
from allocgate.envelope import Span
from allocgate.heavy import StackDelta
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


def site_status(site: SiteDelta, metric: str) -> str:
    """The status of a site on one metric: a site that regressed on blocks alone is
    ``unchanged`` in the bytes table, so each mark sits on the metric that moved."""
    moved = site.moved_on(metric)
    if moved is not None:
        return moved
    return site.status if site.status in (NEW, GONE) else UNCHANGED


def stack_delta_text(stack: StackDelta, units: dict[str, str]) -> str:
    """``+96 KiB (32 KiB → 128 KiB)`` or ``new, 128 KiB``: one stack's own move
    (stack values are the fold's rank metric, total bytes)."""
    now = format_value("total_bytes", stack.current, units)
    if stack.baseline is None:
        return f"new, {now}"
    was = format_value("total_bytes", stack.baseline, units)
    return f"{format_delta('total_bytes', stack.delta, units)} ({was} → {now})"


def span_text(metric: str, span: Span, units: dict[str, str]) -> str:
    """``447.5 KiB–511.5 KiB (swing 12.5%)``."""
    low, high = format_value(metric, span.low, units), format_value(metric, span.high, units)
    return f"{low}–{high} (swing {span.relative_width() * 100:.1f}%)"
