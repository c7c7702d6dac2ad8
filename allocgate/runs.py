"""Run statistics: a workload's runs combined into one profile with its noise envelope."""

from __future__ import annotations

from collections.abc import Sequence

from allocgate.callsites import Callsite, sort_callsites
from allocgate.envelope import Span, Swing, collect, median, swings
from allocgate.profile import Profile


def combine_runs(profiles: Sequence[Profile]) -> Profile:
    """The per-callsite median over runs, with the range each metric spanned.

    The median ignores one outlier run in three; a site missing from a run counts
    as zero there, so a site that only sometimes appears has a range from 0 and
    is flagged, not hidden. Only ranges of non-zero width are kept: a site that
    did not vary is its value.
    """
    first = profiles[0]
    if len(profiles) == 1:
        return first
    by_run = [{s.key: s for s in p.callsites} for p in profiles]
    runs = collect([{k: s.metrics for k, s in run.items()} for run in by_run], first.metrics)
    sites: list[Callsite] = []
    spans: dict[str, dict[str, Span]] = {}
    for key, site in runs.items():
        representative = next(run[key] for run in by_run if key in run)
        sites.append(
            Callsite(
                key=key,
                metrics={m: site.median(m) for m in first.metrics},
                location=representative.location,
                stack=representative.stack,
                points=representative.points,
                outside=representative.outside,
                unresolved=representative.unresolved,
                stacks=representative.stacks,
            )
        )
        varied = {m: site.span(m) for m in first.metrics if site.varied(m)}
        if varied:
            spans[key] = varied
    totals = {m: [p.totals.get(m, 0) for p in profiles] for m in first.metrics}
    return Profile(
        source=first.source,
        profiler=first.profiler,
        mode=first.mode,
        command=first.command,
        metrics=first.metrics,
        totals={m: median(v) for m, v in totals.items()},
        callsites=tuple(sort_callsites(sites, first.metrics[0])),
        depth=first.depth,
        points=first.points,
        units=first.units,
        symbolized=first.symbolized,
        runs=len(profiles),
        spans=spans,
        total_spans={m: Span.of(v) for m, v in totals.items() if len(set(v)) > 1},
        keys=first.keys,
    )


def profile_swings(profile: Profile, metrics: Sequence[str], keys: Sequence[str]) -> list[Swing]:
    """The listed sites whose gated ``metrics`` varied over the profile's runs, widest first."""
    return swings({k: profile.spans[k] for k in keys if k in profile.spans}, metrics)
