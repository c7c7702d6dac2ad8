"""No silent re-baselining: how a pull request's baseline differs from its base branch's.

`render/baseline_section.py` says it in the report.

A PR can change the baseline by a local `allocgate bless` and a push as well as
by a `/allocgate bless` comment. Either way the report opens with what changed:
per workload the gated totals before → after, and the reason recorded in this
PR, or that there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from allocgate.baseline import Baseline
from allocgate.bless_record import BlessRecord

ChangeKind = Literal["changed", "added", "removed"]


@dataclass(frozen=True)
class TotalChange:
    """One gated total of one blessed workload."""

    workload: str
    metric: str
    before: int | None
    after: int | None
    units: Mapping[str, str]


@dataclass(frozen=True)
class WorkloadChange:
    """One workload whose baseline entry differs between the base branch and the PR."""

    name: str
    kind: ChangeKind
    totals: tuple[TotalChange, ...]
    record: BlessRecord
    """The bless recorded in this PR; empty when the entry carries none or the base's."""

    @property
    def explained(self) -> bool:
        # A removed entry has nowhere to record a reason; removing the workload
        # from the config is a change reviewers see anyway.
        return self.kind == "removed" or self.record.reason is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "totals": [
                {"metric": t.metric, "before": t.before, "after": t.after, "units": dict(t.units)}
                for t in self.totals
            ],
            "record": self.record.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkloadChange:
        name = str(d["name"])
        kind = d["kind"]
        if kind not in ("changed", "added", "removed"):
            raise ValueError(f"unknown baseline change {kind!r}")
        return cls(
            name=name,
            kind=kind,
            totals=tuple(
                TotalChange(name, str(t["metric"]), t["before"], t["after"], dict(t["units"]))
                for t in d["totals"]
            ),
            record=BlessRecord.from_mapping(d["record"]),
        )


def baseline_changes(
    base: Baseline, head: Baseline, gated: Mapping[str, Sequence[str]]
) -> tuple[WorkloadChange, ...]:
    """Every workload whose entry differs, by name; `gated` gives each one's gated metrics."""
    changes = []
    for name in sorted(set(base.workloads) | set(head.workloads)):
        old, new = base.workloads.get(name), head.workloads.get(name)
        old_doc = old.to_dict() if old else None
        new_doc = new.to_dict() if new else None
        if old_doc == new_doc:
            continue
        kind: ChangeKind = "added" if old is None else "removed" if new is None else "changed"
        metrics = gated.get(name) or ("total_bytes",)
        entry = new or old
        units = dict(entry.units) if entry else {}
        totals = tuple(
            TotalChange(
                name,
                metric,
                old.totals.get(metric) if old else None,
                new.totals.get(metric) if new else None,
                units,
            )
            for metric in metrics
        )
        record = _record(new_doc)
        # The base's own reason, carried along unchanged, explains nothing in this PR.
        if record == _record(old_doc):
            record = BlessRecord()
        changes.append(WorkloadChange(name, kind, totals, record))
    return tuple(changes)


def _record(doc: Mapping[str, Any] | None) -> BlessRecord:
    provenance = doc.get("provenance") if doc else None
    return BlessRecord.from_mapping(provenance) if isinstance(provenance, dict) else BlessRecord()


def unexplained(changes: Sequence[WorkloadChange]) -> tuple[str, ...]:
    return tuple(c.name for c in changes if not c.explained)
