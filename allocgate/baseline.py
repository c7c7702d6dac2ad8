"""The baseline model: what each workload was allowed when it was last blessed.

Its file format lives in baseline_file.py; everyone reads and writes the file
through that module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocgate.callsites import Callsite
from allocgate.envelope import Span
from allocgate.errors import BaselineError
from allocgate.metrics import METRIC_NAMES
from allocgate.profile import Profile


@dataclass(frozen=True)
class WorkloadBaseline:
    """What one workload allocated when it was last blessed."""

    name: str
    profiler: str
    totals: dict[str, int]
    callsites: tuple[Callsite, ...]
    """The top callsites, more than are gated, largest first by ``total_bytes``."""
    depth: int = 1
    mode: str = "heap"
    units: dict[str, str] = field(default_factory=dict)
    runs: int = 1
    """How many runs the bless measured (the values are their medians)."""
    spans: dict[str, dict[str, Span]] = field(default_factory=dict)
    """Per callsite key and gated metric, the range the runs spanned (only those
    that varied; a site or metric without one is a zero-width range)."""
    total_spans: dict[str, Span] = field(default_factory=dict)
    keys: str = "innermost"
    """How the callsites are keyed; a baseline written before there was a choice
    holds innermost keys."""
    provenance: dict[str, str] = field(default_factory=dict)
    """What made this entry: the toolchain's facts and, for a bless, who and why
    (`allocgate.bless_record`). One flat mapping of strings, written sorted."""

    @classmethod
    def from_profile(
        cls,
        name: str,
        profile: Profile,
        keep: int,
        provenance: Mapping[str, str] | None = None,
        ranged: Sequence[str] = (),
    ) -> WorkloadBaseline:
        """The top ``keep`` sites of ``profile``, with the ranges of the ``ranged`` metrics."""
        sites = tuple(profile.callsites[:keep])
        spans = {
            s.key: {m: span for m, span in profile.spans[s.key].items() if m in ranged}
            for s in sites
            if s.key in profile.spans
        }
        return cls(
            name=name,
            profiler=profile.profiler,
            totals=dict(profile.totals),
            callsites=sites,
            depth=profile.depth,
            mode=profile.mode,
            units=dict(profile.units) if profile.mode != "heap" else {},
            runs=profile.runs,
            spans={k: v for k, v in spans.items() if v},
            total_spans={m: v for m, v in profile.total_spans.items() if m in ranged},
            keys=profile.keys,
            provenance=dict(provenance or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data, in the shape of the YAML file (for xdist workers)."""
        entry: dict[str, Any] = {
            "profiler": self.profiler,
            "keys": self.keys,
            "depth": self.depth,
            "runs": self.runs,
        }
        if self.mode != "heap":
            entry["mode"] = self.mode
            entry["units"] = dict(sorted(self.units.items()))
        if self.provenance:
            entry["provenance"] = dict(sorted(self.provenance.items()))
        entry["totals"] = dict(sorted(self.totals.items()))
        if self.total_spans:
            entry["totals_range"] = _ranges(self.total_spans)
        entry["callsites"] = [
            {
                "key": s.key,
                **({"at": s.location} if s.location else {}),
                **({"outside": True} if s.outside else {}),
                **dict(sorted(s.metrics.items())),
                **({"range": _ranges(self.spans[s.key])} if self.spans.get(s.key) else {}),
                **({"stacks": {h.via: h.value for h in s.stacks}} if s.stacks else {}),
            }
            for s in sorted(self.callsites, key=lambda s: s.key)
        ]
        return entry

    def as_profile(self, source: str) -> Profile:
        metrics = tuple(m for m in METRIC_NAMES if m in self.totals)
        return Profile(
            source=source,
            profiler=self.profiler,
            mode=self.mode,
            command="",
            metrics=metrics,
            totals=dict(self.totals),
            callsites=self.callsites,
            depth=self.depth,
            units=dict(self.units),
            runs=self.runs,
            spans=self.spans,
            total_spans=self.total_spans,
            keys=self.keys,
        )


def _ranges(spans: dict[str, Span]) -> dict[str, list[int]]:
    """``{metric: [low, high]}`` in metric order, as the baseline file holds them."""
    return {m: [spans[m].low, spans[m].high] for m in METRIC_NAMES if m in spans}


@dataclass(frozen=True)
class Baseline:
    path: Path
    workloads: dict[str, WorkloadBaseline]

    def get(self, name: str) -> WorkloadBaseline:
        try:
            return self.workloads[name]
        except KeyError:
            known = ", ".join(sorted(self.workloads)) or "none"
            raise BaselineError(
                f"{self.path}: no baseline for workload {name!r} (has: {known}); "
                f"run `allocgate bless {name}` to record one"
            ) from None
