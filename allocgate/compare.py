"""Comparing a profile with its baseline: a pure function from values to a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocgate.callsites import Callsite, sort_callsites
from allocgate.errors import AllocgateError
from allocgate.metrics import METRICS, metric_info
from allocgate.profile import Profile
from allocgate.quantities import Tolerance

REGRESSED = "regressed"
IMPROVED = "improved"
NEW = "new"
GONE = "gone"
UNCHANGED = "unchanged"
STATUSES = (REGRESSED, NEW, IMPROVED, GONE, UNCHANGED)


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
    outside: bool = False
    """Keyed outside the workspace (no frame of the user's crates)."""

    @property
    def is_regression(self) -> bool:
        return bool(self.regressed_metrics)

    def value(self, metric: str, side: str) -> int | None:
        values = self.baseline if side == "baseline" else self.current
        return None if values is None else values.get(metric)


@dataclass(frozen=True)
class Comparison:
    """The verdict for one workload; only the shells turn it into exit codes."""

    workload: str
    settings: GateSettings
    profiler: str
    sites: tuple[SiteDelta, ...]
    totals: SiteDelta
    units: dict[str, str] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return self.totals.is_regression or any(s.is_regression for s in self.sites)

    @property
    def regressions(self) -> tuple[SiteDelta, ...]:
        return tuple(s for s in self.sites if s.is_regression)

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
        )


def _site_dict(s: SiteDelta) -> dict[str, Any]:
    return {
        "key": s.key,
        "status": s.status,
        "baseline": s.baseline,
        "current": s.current,
        "regressed_metrics": list(s.regressed_metrics),
        "location": s.location,
        "stack": list(s.stack),
        "rank": s.rank,
        "outside": s.outside,
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
        outside=bool(d.get("outside", False)),
    )


def _judge(
    baseline: Mapping[str, int] | None,
    current: Mapping[str, int] | None,
    settings: GateSettings,
) -> tuple[str, tuple[str, ...]]:
    metrics = settings.metrics
    if baseline is None:
        regressed = tuple(
            m for m in metrics if (current or {}).get(m, 0) > settings.tolerance(m).absolute
        )
        return NEW, regressed
    if current is None:
        return GONE, ()
    regressed = tuple(
        m
        for m in metrics
        if settings.tolerance(m).exceeded_by(baseline.get(m, 0), current.get(m, 0))
    )
    if regressed:
        return REGRESSED, regressed
    improved = any(
        settings.tolerance(m).improved_by(baseline.get(m, 0), current.get(m, 0)) for m in metrics
    )
    return (IMPROVED if improved else UNCHANGED), ()


def compare(
    workload: str,
    baseline: Profile,
    current: Profile,
    settings: GateSettings,
) -> Comparison:
    """Compares the union of both sides' top N callsites, and the totals."""
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
    base_sites = {s.key: s for s in baseline.callsites}
    cur_sites = {s.key: s for s in current.callsites}
    cur_ranked = _ranked(current.callsites, rank)
    base_ranked = _ranked(baseline.callsites, rank)
    cur_rank = {s.key: i + 1 for i, s in enumerate(cur_ranked)}
    chosen: list[str] = [s.key for s in cur_ranked[: settings.top]]
    chosen += [s.key for s in base_ranked[: settings.top] if s.key not in chosen]
    deltas: list[SiteDelta] = []
    for key in chosen:
        b, c = base_sites.get(key), cur_sites.get(key)
        status, regressed = _judge(b.metrics if b else None, c.metrics if c else None, settings)
        shown = c or b
        assert shown is not None
        deltas.append(
            SiteDelta(
                key=key,
                status=status,
                baseline=dict(b.metrics) if b else None,
                current=dict(c.metrics) if c else None,
                regressed_metrics=regressed,
                location=shown.location,
                stack=(c.stack if c else ()),
                rank=cur_rank.get(key),
                outside=shown.outside,
            )
        )
    t_status, t_regressed = _judge(baseline.totals, current.totals, settings)
    totals = SiteDelta(
        key="total",
        status=t_status,
        baseline=dict(baseline.totals),
        current=dict(current.totals),
        regressed_metrics=t_regressed,
    )
    return Comparison(
        workload=workload,
        settings=settings,
        profiler=current.profiler,
        sites=tuple(deltas),
        totals=totals,
        units=dict(current.units),
    )


def _ranked(sites: Sequence[Callsite], metric: str) -> list[Callsite]:
    return sort_callsites(sites, metric)
