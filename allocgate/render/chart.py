"""A mermaid bar chart of baseline against current for a comparison's top sites."""

from __future__ import annotations

from allocgate.compare import Comparison
from allocgate.escape import mermaid_label
from allocgate.metrics import METRICS


def mermaid_chart(c: Comparison, limit: int = 8) -> str:
    """An xychart bar chart of baseline vs current for the top sites (labels sanitised)."""
    metric = c.settings.rank_metric
    sites = [s for s in c.sites][:limit]
    if not sites:
        return ""
    peak = max(
        max(s.value(metric, "baseline") or 0, s.value(metric, "current") or 0) for s in sites
    )
    scale, unit = (1, "B")
    if METRICS[metric].is_bytes:
        for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if peak >= factor:
                scale, unit = factor, name
                break
    else:
        # An ad-hoc profile names its own units: profile text, so a label too.
        unit = mermaid_label(c.units.get(metric, "blocks"), fallback="units")
    labels = []
    for i, s in enumerate(sites, 1):
        short = s.key.split(" ← ")[0].rsplit("::", 1)[-1]
        labels.append('"' + mermaid_label(short, fallback=f"site {i}") + '"')

    def series(side: str) -> str:
        return ", ".join(f"{(s.value(metric, side) or 0) / scale:.1f}" for s in sites)

    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'  title "{METRICS[metric].title}: baseline (first bar) vs current"',
            f"  x-axis [{', '.join(labels)}]",
            f'  y-axis "{unit}"',
            f"  bar [{series('baseline')}]",
            f"  bar [{series('current')}]",
            "```",
        ]
    )
