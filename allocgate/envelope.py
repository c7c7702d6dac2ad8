"""The noise envelope: what N runs of a workload saw per callsite, and when a value leaves it.

A threaded program allocates a little differently on every run (which worker got
which item, how many per-thread caches a pool made), so one value per callsite is
not enough to judge a change. A measurement keeps, per callsite and metric, the
median of its runs and the range (lowest to highest) they spanned; a site that
is missing from a run counts as 0 there, so a site that only sometimes appears
has a range from 0 and is flagged, not hidden.

Two measurements differ on a metric only when their ranges are apart by more
than the tolerance (relative AND absolute) and by more than the site's own
swing: the current lowest value above the recorded highest (growth), or the
current highest below the recorded lowest (shrinkage). The swing counts because
a few runs rarely see a noisy site's extremes: a site seen to swing by W can
swing by W again the next time. With one run on each side, or a site that never
varied, this is the plain value-to-value rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from allocgate.quantities import Tolerance


@dataclass(frozen=True, order=True)
class Span:
    """The lowest and highest value a metric took over a workload's runs."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"a span's low end {self.low} is above its high end {self.high}")

    @classmethod
    def of(cls, values: Iterable[int]) -> Span:
        seen = list(values)
        return cls(min(seen), max(seen))

    @classmethod
    def point(cls, value: int) -> Span:
        """A value measured once (or a baseline written before ranges): zero width."""
        return cls(value, value)

    @property
    def width(self) -> int:
        return self.high - self.low

    def relative_width(self) -> float:
        """The swing as a fraction of the high end (0 for a point)."""
        return self.width / self.high if self.high else 0.0

    def contains(self, value: int) -> bool:
        return self.low <= value <= self.high

    def union(self, other: Span) -> Span:
        """The smallest span holding both."""
        return Span(min(self.low, other.low), max(self.high, other.high))


def median(values: Sequence[int]) -> int:
    """The middle value (the lower-middle mean for an even count), an integer like the inputs."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def grew(tolerance: Tolerance, recorded: Span, current: Span) -> bool:
    """Every current run is above the recorded range by more than the tolerance and the swing."""
    apart = current.low - recorded.high
    return tolerance.exceeded_by(recorded.high, current.low) and apart > _swing(recorded, current)


def shrank(tolerance: Tolerance, recorded: Span, current: Span) -> bool:
    """Every current run is below the recorded range by more than the tolerance and the swing."""
    apart = recorded.low - current.high
    return tolerance.improved_by(recorded.low, current.high) and apart > _swing(recorded, current)


def _swing(recorded: Span, current: Span) -> int:
    return max(recorded.width, current.width)


@dataclass(frozen=True)
class SiteRuns:
    """One callsite's metric values in each of a workload's runs (0 where it was absent)."""

    key: str
    values: Mapping[str, tuple[int, ...]]
    present: int
    """In how many runs the site appeared at all."""

    def median(self, metric: str) -> int:
        return median(self.values[metric])

    def span(self, metric: str) -> Span:
        return Span.of(self.values[metric])

    def varied(self, metric: str) -> bool:
        return len(set(self.values[metric])) > 1


def collect(
    runs: Sequence[Mapping[str, Mapping[str, int]]], metrics: Sequence[str]
) -> dict[str, SiteRuns]:
    """``runs[i][key][metric]`` → per key, the metric's value in every run (0 where absent)."""
    keys = sorted({key for run in runs for key in run})
    return {
        key: SiteRuns(
            key=key,
            values={
                m: tuple(run[key].get(m, 0) if key in run else 0 for run in runs) for m in metrics
            },
            present=sum(key in run for run in runs),
        )
        for key in keys
    }


@dataclass(frozen=True)
class Swing:
    """A callsite whose gated metric took different values in different runs."""

    key: str
    metric: str
    span: Span


def swings(spans: Mapping[str, Mapping[str, Span]], metrics: Sequence[str]) -> list[Swing]:
    """Sites whose *gated* metrics varied between runs (``spans[key][metric]``), largest first.

    A site whose other metrics (its peak, say) alone varied is not listed: they are
    not judged, so their noise is not news. A site is listed once, under the first
    gated metric that varied; the list is ordered by metric, then by the width of
    the swing, widest first.
    """
    found: list[tuple[int, Swing]] = []
    for key, by_metric in spans.items():
        for i, metric in enumerate(metrics):
            span = by_metric.get(metric)
            if span is not None and span.width:
                found.append((i, Swing(key, metric, span)))
                break
    found.sort(key=lambda item: (item[0], -item[1].span.width, -item[1].span.high, item[1].key))
    return [swing for _, swing in found]


def merge_spans(a: Mapping[str, Span], b: Mapping[str, Span]) -> dict[str, Span]:
    """Per metric, the smallest span holding both sides' (a metric on one side only is kept)."""
    merged = dict(a)
    for metric, span in b.items():
        merged[metric] = merged[metric].union(span) if metric in merged else span
    return merged


def spans_of(sites: Iterable[SiteRuns], metrics: Sequence[str]) -> dict[str, dict[str, Span]]:
    """Per site and metric, the range its runs spanned."""
    return {site.key: {m: site.span(m) for m in metrics} for site in sites}
