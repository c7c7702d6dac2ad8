"""The "Baseline changed in this PR" section the report opens with, as markdown and text."""

from __future__ import annotations

from collections.abc import Sequence

from allocgate.baseline_change import TotalChange, WorkloadChange, unexplained
from allocgate.bless_record import BlessRecord
from allocgate.escape import md_text, one_line
from allocgate.metrics import format_delta, format_value


def quote(text: str) -> str:
    """A markdown block quote of literal, escaped text, line by line."""
    # md_text would join the lines into one; the quote keeps them, each escaped.
    return "\n".join(
        f"> {md_text(line, line_start=True)}" if line else ">" for line in text.split("\n")
    )


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
    return "\n".join(lines) + "\n"


def text_section(changes: Sequence[WorkloadChange], require_reason: bool = False) -> str:
    """The same for a terminal: one line per workload, the reason on the next."""
    if not changes:
        return ""
    lines = [f"{TITLE}:"]
    for change in changes:
        totals = "; ".join(_before_after(t) for t in change.totals)
        lines.append(f"  {one_line(change.name)} ({change.kind}): {totals}")
        if change.kind == "removed":
            continue
        if change.record.reason is None:
            lines.append("    no reason recorded")
        else:
            first, *rest = change.record.reason.split("\n")
            more = " …" if rest else ""
            lines.append(f"    blessed {one_line(_who(change.record))}: {one_line(first)}{more}")
    missing = unexplained(changes)
    if require_reason and missing:
        names = ", ".join(one_line(n) for n in missing)
        lines.append(f"  require_reason: no reason recorded for {names}")
    return "\n".join(lines) + "\n"
