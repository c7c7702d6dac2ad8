"""The baseline model: what each workload was allowed when it was last blessed.

Its file format lives in baseline_file.py; everyone reads and writes the file
through that module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocgate.callsites import Callsite
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
    ) -> WorkloadBaseline:
        return cls(
            name=name,
            profiler=profile.profiler,
            totals=dict(profile.totals),
            callsites=tuple(profile.callsites[:keep]),
            depth=profile.depth,
            mode=profile.mode,
            units=dict(profile.units) if profile.mode != "heap" else {},
            keys=profile.keys,
            provenance=dict(provenance or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data, in the shape of the YAML file (for xdist workers)."""
        entry: dict[str, Any] = {
            "profiler": self.profiler,
            "keys": self.keys,
            "depth": self.depth,
        }
        if self.mode != "heap":
            entry["mode"] = self.mode
            entry["units"] = dict(sorted(self.units.items()))
        if self.provenance:
            entry["provenance"] = dict(sorted(self.provenance.items()))
        entry["totals"] = dict(sorted(self.totals.items()))
        entry["callsites"] = [
            {
                "key": s.key,
                **({"at": s.location} if s.location else {}),
                **({"outside": True} if s.outside else {}),
                **dict(sorted(s.metrics.items())),
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
            keys=self.keys,
        )


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
