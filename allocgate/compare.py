"""Comparing a profile with its baseline: a pure function from values to a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocgate.callsites import Callsite, sort_callsites
from allocgate.envelope import Span, grew, shrank
from allocgate.errors import AllocgateError
from allocgate.heavy import StackDelta, stack_deltas
from allocgate.metrics import METRICS, metric_info
from allocgate.profile import Profile
from allocgate.quantities import Tolerance

REGRESSED = "regressed"
IMPROVED = "improved"
NEW = "new"
GONE = "gone"
GREW = "grew"
"""A site beyond the top N that grew: named in reports, not gated."""
UNCHANGED = "unchanged"
STATUSES = (REGRESSED, NEW, IMPROVED, GONE, GREW, UNCHANGED)


def recorded_count(top: int) -> int:
    """How many callsites a baseline keeps: enough that a site climbing from rank
    N+1 is compared against its old value rather than reported as new."""
    return max(3 * top, top + 10)


@dataclass(frozen=True)
class GateSettings:
    """What is gated and how much growth is tolerated."""

    metrics: tuple[str, ...] = ("total_bytes",)
    top: int = 5
    tolerances: dict[str, Tolerance] = field(default_factory=dict)

    def tolerance(self, metric: str) -> Tolerance:
        return self.tolerances.get(metric) or METRICS[metric].default_tolerance

    @property
    def rank_metric(self) -> str:
        return self.metrics[0]


@dataclass(frozen=True)
class SiteDelta:
    """One callsite compared: baseline and current values per metric."""

    key: str
    status: str
    baseline: dict[str, int] | None
    current: dict[str, int] | None
    regressed_metrics: tuple[str, ...] = ()
    location: str | None = None
    stack: tuple[str, ...] = ()
    rank: int | None = None
    """1-based rank in the current profile by the rank metric."""
    improved_metrics: tuple[str, ...] = ()
    baseline_range: dict[str, list[int]] = field(default_factory=dict)
    """Per metric that varied between the bless runs, ``[low, high]``."""
    current_range: dict[str, list[int]] = field(default_factory=dict)
    """Per metric that varied between this check's runs, ``[low, high]``."""
    gated: bool = True
    """False for sites beyond the top N: named when they move, never a regression."""
    outside: bool = False
    """Keyed outside the workspace (no frame of the user's crates)."""
    stacks: tuple[StackDelta, ...] = ()
    """A regressed site's heaviest current stacks, each against its caller's baseline."""

    @property
    def is_regression(self) -> bool:
        return self.gated and bool(self.regressed_metrics)

    def value(self, metric: str, side: str) -> int | None:
        values = self.baseline if side == "baseline" else self.current
        return None if values is None else values.get(metric)

    def moved_on(self, metric: str) -> str | None:
        """How this site's ``metric`` moved: its status when it moved on that metric, else None.

        A site that regressed on blocks but not on bytes is marked in the blocks
        table only.
        """
        if metric in self.regressed_metrics:
            return self.status
        if metric in self.improved_metrics:
            return self.status if self.status in (IMPROVED, GONE) else IMPROVED
        return None


@dataclass(frozen=True)
class Comparison:
    """The verdict for one workload; only the shells turn it into exit codes."""

    workload: str
    settings: GateSettings
    profiler: str
    sites: tuple[SiteDelta, ...]
    totals: SiteDelta
    units: dict[str, str] = field(default_factory=dict)
    beyond: tuple[SiteDelta, ...] = ()
    """Sites beyond the top N that moved past the tolerance (new, gone, grew,
    improved): named in reports so nothing that moved goes unsaid, never gated."""

    @property
    def regressed(self) -> bool:
        return self.totals.is_regression or any(s.is_regression for s in self.sites)

    @property
    def regressions(self) -> tuple[SiteDelta, ...]:
        return tuple(s for s in self.sites if s.is_regression)

    @property
    def improvements(self) -> tuple[SiteDelta, ...]:
        """Every site (top N or beyond) that shrank past the tolerance or vanished."""
        return tuple(s for s in (*self.sites, *self.beyond) if s.status in (IMPROVED, GONE))

    @property
    def verdict(self) -> str:
        return "regressed" if self.regressed else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "profiler": self.profiler,
            "verdict": self.verdict,
            "metrics": list(self.settings.metrics),
            "top": self.settings.top,
            "tolerances": {
                m: {"relative": t.relative, "absolute": t.absolute}
                for m in self.settings.metrics
                for t in [self.settings.tolerance(m)]
            },
            "units": dict(self.units),
            "totals": _site_dict(self.totals),
            "sites": [_site_dict(s) for s in self.sites],
            "beyond": [_site_dict(s) for s in self.beyond],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        settings = GateSettings(
            metrics=tuple(data["metrics"]),
            top=int(data["top"]),
            tolerances={
                m: Tolerance(float(t["relative"]), int(t["absolute"]))
                for m, t in data["tolerances"].items()
            },
        )
        return cls(
            workload=str(data["workload"]),
            settings=settings,
            profiler=str(data["profiler"]),
            sites=tuple(_site_from(s) for s in data["sites"]),
            totals=_site_from(data["totals"]),
            units=dict(data.get("units") or {}),
            beyond=tuple(_site_from(s) for s in data.get("beyond") or ()),
        )


def _site_dict(s: SiteDelta) -> dict[str, Any]:
    return {
        "key": s.key,
        "status": s.status,
        "baseline": s.baseline,
        "current": s.current,
        "regressed_metrics": list(s.regressed_metrics),
        "improved_metrics": list(s.improved_metrics),
        "baseline_range": s.baseline_range,
        "current_range": s.current_range,
        "location": s.location,
        "stack": list(s.stack),
        "rank": s.rank,
        "gated": s.gated,
        "outside": s.outside,
        "stacks": [h.to_dict() for h in s.stacks],
    }


def _site_from(d: Mapping[str, Any]) -> SiteDelta:
    return SiteDelta(
        key=str(d["key"]),
        status=str(d["status"]),
        baseline=d.get("baseline"),
        current=d.get("current"),
        regressed_metrics=tuple(d.get("regressed_metrics") or ()),
        location=d.get("location"),
        stack=tuple(d.get("stack") or ()),
        rank=d.get("rank"),
        improved_metrics=tuple(d.get("improved_metrics") or ()),
        baseline_range=dict(d.get("baseline_range") or {}),
        current_range=dict(d.get("current_range") or {}),
        gated=bool(d.get("gated", True)),
        outside=bool(d.get("outside", False)),
        stacks=tuple(StackDelta.from_dict(h) for h in d.get("stacks") or ()),
    )


@dataclass(frozen=True)
class _Side:
    """One side of a comparison: a profile and its sites by key."""

    profile: Profile
    sites: dict[str, Callsite]

    @classmethod
    def of(cls, profile: Profile) -> _Side:
        return cls(profile, {s.key: s for s in profile.callsites})

    def span(self, key: str, metric: str) -> Span:
        site = self.sites.get(key)
        return self.profile.span(site, metric) if site else Span.point(0)

    def ranges(self, key: str, metrics: Sequence[str]) -> dict[str, list[int]]:
        spans = self.profile.spans.get(key, {})
        return {m: [spans[m].low, spans[m].high] for m in metrics if m in spans}


Judged = tuple[str, tuple[str, ...], tuple[str, ...]]
"""A site's status, the metrics it regressed on and those it improved on."""


def _judge(key: str, base: _Side, cur: _Side, settings: GateSettings) -> Judged:
    """Status, regressed metrics and improved metrics of one site, by its noise envelope."""
    metrics = settings.metrics
    b, c = key in base.sites, key in cur.sites
    if not b:
        # New: every run of the check above the absolute tolerance.
        regressed = tuple(
            m for m in metrics if cur.span(key, m).low > settings.tolerance(m).absolute
        )
        return NEW, regressed, ()
    if not c:
        improved = tuple(
            m for m in metrics if base.span(key, m).low > settings.tolerance(m).absolute
        )
        return GONE, (), improved
    regressed = tuple(
        m for m in metrics if grew(settings.tolerance(m), base.span(key, m), cur.span(key, m))
    )
    improved = tuple(
        m for m in metrics if shrank(settings.tolerance(m), base.span(key, m), cur.span(key, m))
    )
    if regressed:
        return REGRESSED, regressed, improved
    return (IMPROVED if improved else UNCHANGED), (), improved


def _judge_totals(base: Profile, cur: Profile, settings: GateSettings) -> Judged:
    regressed = tuple(
        m
        for m in settings.metrics
        if grew(settings.tolerance(m), base.total_span(m), cur.total_span(m))
    )
    improved = tuple(
        m
        for m in settings.metrics
        if shrank(settings.tolerance(m), base.total_span(m), cur.total_span(m))
    )
    status = REGRESSED if regressed else IMPROVED if improved else UNCHANGED
    return status, regressed, improved


def compare(
    workload: str,
    baseline: Profile,
    current: Profile,
    settings: GateSettings,
) -> Comparison:
    """Compares the union of both sides' top N callsites, and the totals; names what
    moved beyond the top N."""
    for metric in settings.metrics:
        metric_info(metric)
        for side, profile in (("baseline", baseline), ("current", current)):
            if metric not in profile.metrics:
                raise AllocgateError(
                    f"{profile.source}: the {side} ({profile.profiler}) does not measure "
                    f"{metric!r}; gate on one of: {', '.join(profile.metrics)}"
                )
    if baseline.depth != current.depth:
        raise AllocgateError(
            f"{baseline.source}: recorded with callsite depth {baseline.depth}, but the current "
            f"profile is folded at depth {current.depth}; re-bless or use --depth {baseline.depth}"
        )
    rank = settings.rank_metric
    base, cur = _Side.of(baseline), _Side.of(current)
    cur_ranked = _ranked(current.callsites, rank)
    base_ranked = _ranked(baseline.callsites, rank)
    cur_rank = {s.key: i + 1 for i, s in enumerate(cur_ranked)}
    chosen: list[str] = [s.key for s in cur_ranked[: settings.top]]
    chosen += [s.key for s in base_ranked[: settings.top] if s.key not in chosen]

    def delta(
        key: str,
        status: str,
        regressed: tuple[str, ...],
        improved: tuple[str, ...],
        gated: bool = True,
    ) -> SiteDelta:
        b, c = base.sites.get(key), cur.sites.get(key)
        shown = c or b
        assert shown is not None
        return SiteDelta(
            key=key,
            status=status,
            baseline=dict(b.metrics) if b else None,
            current=dict(c.metrics) if c else None,
            regressed_metrics=regressed,
            location=shown.location,
            stack=(c.stack if c else ()),
            rank=cur_rank.get(key),
            improved_metrics=improved,
            baseline_range=base.ranges(key, settings.metrics),
            current_range=cur.ranges(key, settings.metrics),
            gated=gated,
            outside=shown.outside,
            stacks=stack_deltas(c, b) if regressed else (),
        )

    deltas = [delta(key, *_judge(key, base, cur, settings)) for key in chosen]
    beyond = [
        delta(key, *moved, gated=False)
        for key, moved in _beyond(base, cur, base_ranked, cur_ranked, set(chosen), settings)
    ]
    t_status, t_regressed, t_improved = _judge_totals(baseline, current, settings)
    totals = SiteDelta(
        key="total",
        status=t_status,
        baseline=dict(baseline.totals),
        current=dict(current.totals),
        regressed_metrics=t_regressed,
        improved_metrics=t_improved,
        baseline_range={
            m: [s.low, s.high] for m, s in baseline.total_spans.items() if m in settings.metrics
        },
        current_range={
            m: [s.low, s.high] for m, s in current.total_spans.items() if m in settings.metrics
        },
    )
    return Comparison(
        workload=workload,
        settings=settings,
        profiler=current.profiler,
        sites=tuple(deltas),
        totals=totals,
        units=dict(current.units),
        beyond=tuple(beyond),
    )


def _beyond(
    base: _Side,
    cur: _Side,
    base_ranked: Sequence[Callsite],
    cur_ranked: Sequence[Callsite],
    chosen: set[str],
    settings: GateSettings,
) -> list[tuple[str, Judged]]:
    """Sites outside the compared top N that moved past the tolerance, largest move first.

    The baseline keeps only its top sites; when it is full, a current site smaller
    than the smallest it kept may simply not have been recorded, so only sites
    above that floor are called new.
    """
    rank = settings.rank_metric
    full = len(base_ranked) >= recorded_count(settings.top)
    floor = base_ranked[-1].metrics.get(rank, 0) if full and base_ranked else 0
    moved: list[tuple[int, str, Judged]] = []
    for site in cur_ranked:
        if site.key in chosen:
            continue
        if site.key not in base.sites:
            if site.metrics.get(rank, 0) < floor:
                continue
            _, regressed, _ = _judge(site.key, base, cur, settings)
            if regressed:
                moved.append((site.metrics.get(rank, 0), site.key, (NEW, regressed, ())))
            continue
        _, regressed, improved = _judge(site.key, base, cur, settings)
        if regressed:
            grown = site.metrics.get(rank, 0) - base.sites[site.key].metrics.get(rank, 0)
            moved.append((grown, site.key, (GREW, regressed, improved)))
        elif improved:
            shrunk = base.sites[site.key].metrics.get(rank, 0) - site.metrics.get(rank, 0)
            moved.append((shrunk, site.key, (IMPROVED, (), improved)))
    for site in base_ranked:
        if site.key in chosen or site.key in cur.sites:
            continue
        _, _, improved = _judge(site.key, base, cur, settings)
        if improved:
            moved.append((site.metrics.get(rank, 0), site.key, (GONE, (), improved)))
    moved.sort(key=lambda m: (-m[0], m[1]))
    return [(key, judged) for _, key, judged in moved]


def _ranked(sites: Sequence[Callsite], metric: str) -> list[Callsite]:
    return sort_callsites(sites, metric)
