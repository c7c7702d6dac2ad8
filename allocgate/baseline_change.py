"""No silent re-baselining: how a pull request's baseline differs from its base branch's.

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
from allocgate.bless_comment import TotalChange, quote
from allocgate.bless_record import BlessRecord
from allocgate.escape import md_text
from allocgate.metrics import format_delta, format_value

ChangeKind = Literal["changed", "added", "removed"]


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


# Rendering.

TITLE = "Baseline changed in this PR"


def _before_after(t: TotalChange) -> str:
    units = dict(t.units)
    before = "—" if t.before is None else format_value(t.metric, t.before, units)
    after = "—" if t.after is None else format_value(t.metric, t.after, units)
    text = f"{t.metric.replace('_', ' ')} {before} → {after}"
    if t.before is not None and t.after is not None:
        text += f" ({format_delta(t.metric, t.after - t.before, units)})"
    return text


def _who(record: BlessRecord) -> str:
    parts = [f"by {record.blessed_by}" if record.blessed_by else "by someone unnamed"]
    if record.pull_request:
        parts.append(f"in {record.pull_request}")
    if record.date:
        parts.append(f"on {record.date[:10]}")
    return " ".join(parts)


def markdown_section(changes: Sequence[WorkloadChange], require_reason: bool = False) -> str:
    """The section the PR comment and the step summary open with; empty when nothing changed."""
    if not changes:
        return ""
    missing = unexplained(changes)
    lines = [f"### {'❌' if require_reason and missing else '⚠️'} {TITLE}", ""]
    for change in changes:
        totals = "; ".join(md_text(_before_after(t)) for t in change.totals)
        head = f"- **{md_text(change.name)}** ({change.kind}): {totals}."
        if change.kind == "removed":
            lines.append(head)
        elif change.record.reason is None:
            lines.append(f"{head} **No reason recorded.**")
        else:
            lines.append(f"{head} Blessed {md_text(_who(change.record))}:")
            lines.append("")
            lines.extend("  " + line for line in quote(change.record.reason).split("\n"))
    if require_reason and missing:
        names = ", ".join(f"**{md_text(n)}**" for n in missing)
        lines += [
            "",
            f"`require_reason` is set, so this check fails: no reason is recorded for {names}. "
            'Re-bless with `allocgate bless --reason "…"` or a `/allocgate bless` comment with '
            "the reason on the lines below it.",
        ]
    return "\n".join(lines) + "\n\n"


def text_section(changes: Sequence[WorkloadChange], require_reason: bool = False) -> str:
    """The same for a terminal: one line per workload, the reason on the next."""
    if not changes:
        return ""
    lines = [f"{TITLE}:"]
    for change in changes:
        totals = "; ".join(_before_after(t) for t in change.totals)
        lines.append(f"  {change.name} ({change.kind}): {totals}")
        if change.kind == "removed":
            continue
        if change.record.reason is None:
            lines.append("    no reason recorded")
        else:
            first, *rest = change.record.reason.split("\n")
            more = " …" if rest else ""
            lines.append(f"    blessed {_who(change.record)}: {first}{more}")
    missing = unexplained(changes)
    if require_reason and missing:
        lines.append(f"  require_reason: no reason recorded for {', '.join(missing)}")
    return "\n".join(lines) + "\n"
