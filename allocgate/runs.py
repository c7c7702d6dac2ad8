"""Run statistics: the per-callsite median of a workload's runs and how they varied."""

from __future__ import annotations

from collections.abc import Sequence

from allocgate.callsites import Callsite, sort_callsites
from allocgate.profile import Profile


def combine_runs(
    profiles: Sequence[Profile],
) -> tuple[Profile, dict[str, list[int]], tuple[str, ...]]:
    """The per-callsite median over runs, each site's spread, and the unstable sites.

    The median ignores one outlier run in three; a site missing from a run counts
    as zero there, so a site that only sometimes appears is flagged, not hidden.
    """
    first = profiles[0]
    if len(profiles) == 1:
        return first, {}, ()
    keys = sorted({s.key for p in profiles for s in p.callsites})
    by_run = [{s.key: s for s in p.callsites} for p in profiles]
    rank = first.metrics[0]
    sites: list[Callsite] = []
    spread: dict[str, list[int]] = {}
    unstable: list[str] = []
    for key in keys:
        present = [run[key] for run in by_run if key in run]
        values = {
            m: [run[key].metrics.get(m, 0) if key in run else 0 for run in by_run]
            for m in first.metrics
        }
        if len(present) != len(by_run) or any(len(set(v)) > 1 for v in values.values()):
            unstable.append(key)
        spread[key] = values[rank]
        representative = present[0]
        sites.append(
            Callsite(
                key=key,
                metrics={m: _median(v) for m, v in values.items()},
                location=representative.location,
                stack=representative.stack,
                points=representative.points,
                outside=representative.outside,
                unresolved=representative.unresolved,
            )
        )
    totals = {m: _median([p.totals.get(m, 0) for p in profiles]) for m in first.metrics}
    combined = Profile(
        source=first.source,
        profiler=first.profiler,
        mode=first.mode,
        command=first.command,
        metrics=first.metrics,
        totals=totals,
        callsites=tuple(sort_callsites(sites, rank)),
        depth=first.depth,
        points=first.points,
        units=first.units,
        symbolized=first.symbolized,
        keys=first.keys,
    )
    ordered = sorted(unstable, key=lambda k: -max(spread[k]))
    return combined, spread, tuple(ordered)


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2
