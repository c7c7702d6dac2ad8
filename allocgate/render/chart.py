"""A mermaid bar chart of baseline against current for a comparison's top sites."""

from __future__ import annotations

import re

from allocgate.compare import Comparison
from allocgate.metrics import METRICS

_LABEL_RE = re.compile(r"[^A-Za-z0-9_:. -]")


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
        unit = c.units.get(metric, "blocks")
    labels = []
    for i, s in enumerate(sites, 1):
        short = s.key.split(" ← ")[0].rsplit("::", 1)[-1]
        labels.append('"' + (_LABEL_RE.sub("", short)[:24] or f"site {i}") + '"')

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
