"""A folded profile: what every loader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

from allocgate.callsites import Callsite
from allocgate.envelope import Span


@dataclass(frozen=True)
class Profile:
    """One run's allocations, folded into callsites."""

    source: str
    """Where it came from (a file path), for messages."""
    profiler: str
    """``dhat-rs``, ``valgrind-dhat`` or ``heaptrack``."""
    mode: str
    """``heap`` or ``ad-hoc``."""
    command: str
    metrics: tuple[str, ...]
    """The metrics this profile measures; others are absent, never zero."""
    totals: dict[str, int]
    callsites: tuple[Callsite, ...]
    """Every callsite, largest first by the first metric."""
    depth: int = 1
    points: int = 0
    """Program points read."""
    units: dict[str, str] = field(default_factory=dict)
    """Unit label per metric (``bytes``/``blocks``; an ad-hoc profile's own units)."""
    symbolized: bool = True
    keys: str = "workspace"
    """How its callsites are keyed: ``workspace`` or ``innermost`` (see callsites)."""
    """False when no frame had a function name (a build without debug info)."""
    runs: int = 1
    """How many runs the values are the median of."""
    spans: dict[str, dict[str, Span]] = field(default_factory=dict)
    """Per callsite key and metric, the range the runs spanned; absent means one value."""
    total_spans: dict[str, Span] = field(default_factory=dict)
    """Per metric, the range the totals spanned over the runs."""

    def span(self, site: Callsite, metric: str) -> Span:
        """The range a site's metric spanned over the runs (a point for one run)."""
        recorded = self.spans.get(site.key, {}).get(metric)
        return recorded if recorded is not None else Span.point(site.metrics.get(metric, 0))

    def total_span(self, metric: str) -> Span:
        recorded = self.total_spans.get(metric)
        return recorded if recorded is not None else Span.point(self.totals.get(metric, 0))

    def top(self, n: int, metric: str | None = None) -> tuple[Callsite, ...]:
        from allocgate.callsites import sort_callsites

        if metric is None or metric == self.metrics[0]:
            return self.callsites[:n]
        return tuple(sort_callsites(self.callsites, metric)[:n])
