"""The PR comment's picture: how much each changed callsite grew or shrank.

Mermaid's xychart draws every bar series from the axis, on top of each other,
so "baseline vs current" hides one of the two. Here each site has one bar, its
change (in bytes, or blocks), in one of two series that never overlap: growth
in red, shrinkage in green. A new site's change is its whole value, a vanished
one's minus its old value, so every changed site has an honest bar.
"""

from __future__ import annotations

import re

from allocgate.compare import UNCHANGED, Comparison, SiteDelta
from allocgate.escape import mermaid_label
from allocgate.metrics import METRICS, format_delta
from allocgate.quantities import format_percent

GREW, SHRANK = "#d73a49", "#2da44e"
LABEL_LIMIT = 40
_ARROWS = re.compile(r"\s*(?:→|←|->|<-)\s*")
_QUALIFIED = re.compile(r"^<(?:&(?:mut )?)?([^<>]*?)(?:<[^<>]*>)? as [^<>]*(?:<[^<>]*>)?>")
_CLOSURE = re.compile(r"::\{\{closure\}\}|::\{closure#\d+\}|::\{closure_env#\d+\}")


def site_label(key: str) -> str:
    """A short readable name: the site's own function, ``type::method``, closures marked.

    ``fdlite::walk::scan → ignore::WalkBuilder::build`` → ``walk::scan``;
    ``app::main::{{closure}}`` → ``app::main (closure)``.
    """
    own = _ARROWS.split(key, maxsplit=1)[0]
    # `<app::Ledger as core::clone::Clone>::clone` reads as `Ledger::clone`.
    own = _QUALIFIED.sub(lambda m: m.group(1), own)
    closure = bool(_CLOSURE.search(own))
    own = _CLOSURE.sub("", own)
    # Generic arguments add length, not meaning, to a label.
    while True:
        shorter = re.sub(r"<[^<>]*>", "", own)
        if shorter == own:
            break
        own = shorter
    parts = [p for p in own.split("::") if p]
    name = "::".join(parts[-2:]) if parts else key
    return name + (" (closure)" if closure else "")


def _change(site: SiteDelta, metric: str) -> int:
    return (site.value(metric, "current") or 0) - (site.value(metric, "baseline") or 0)


def _percent(site: SiteDelta, metric: str) -> str:
    base, cur = site.value(metric, "baseline"), site.value(metric, "current")
    if base is None or (base == 0 and cur):
        return "new"
    if cur is None:
        return "gone"
    return format_percent((cur - base) / base) if base else "+0.0%"


def _scale(metric: str, peak: int, units: dict[str, str]) -> tuple[int, str]:
    if not METRICS[metric].is_bytes:
        # An ad-hoc profile names its own units: profile text, escaped like a label.
        return 1, mermaid_label(units.get(metric, "blocks"), fallback="units")
    for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if peak >= factor:
            return factor, name
    return 1, "B"


def _number(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def mermaid_chart(c: Comparison, limit: int = 10) -> str:
    """A horizontal bar chart of the changed sites; empty when nothing changed."""
    metric = c.settings.rank_metric
    changed = [s for s in c.sites if s.status != UNCHANGED and _change(s, metric) != 0]
    if not changed:
        return ""
    changed.sort(key=lambda s: (-abs(_change(s, metric)), s.key))
    changed = changed[:limit]
    peak = max(abs(_change(s, metric)) for s in changed)
    factor, unit = _scale(metric, peak, c.units)
    labels = []
    for i, site in enumerate(changed, 1):
        # The label carries the figures (the bar's length is their picture), so
        # the value axis needs no tick labels, which would offset every bar.
        delta = mermaid_label(format_delta(metric, _change(site, metric), c.units), 24)
        name = mermaid_label(f"{i}. {site_label(site.key)}", LABEL_LIMIT)
        # The percentage is allocgate's own text (digits, sign, one %), never a `%%`.
        labels.append(f'"{name}  {delta}, {_percent(site, metric)}"')
    grew = [_number(max(_change(s, metric), 0) / factor) for s in changed]
    shrank = [_number(max(-_change(s, metric), 0) / factor) for s in changed]
    top = peak / factor
    title = f"Change in {METRICS[metric].title} per callsite: red grew, green shrank"
    return "\n".join(
        [
            "```mermaid",
            "%%{init: {'xyChart': {'yAxis': {'showLabel': false, 'showTick': false}}, "
            f"'themeVariables': {{'xyChart': {{'plotColorPalette': '{GREW}, {SHRANK}'}}}}}}}}%%",
            "xychart-beta horizontal",
            f'  title "{title}"',
            f"  x-axis [{', '.join(labels)}]",
            f'  y-axis "size of the change ({unit})" 0 --> {_number(top * 1.05 if top else 1)}',
            f"  bar [{', '.join(grew)}]",
            f"  bar [{', '.join(shrank)}]",
            "```",
        ]
    )
