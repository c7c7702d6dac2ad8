"""Profiles, comparisons and bless results as terminal text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.callsites import Callsite, display_key
from allocgate.compare import Comparison
from allocgate.metrics import METRICS, format_delta, format_value
from allocgate.profile import Profile
from allocgate.render.baseline_section import text_section
from allocgate.render.cells import site_cells
from allocgate.report import Report, WorkloadResult

if TYPE_CHECKING:
    from allocgate.baseline import WorkloadBaseline
    from allocgate.render.groups import Section


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def profile_text(profile: Profile, sites: Sequence[Callsite], metric: str) -> str:
    units = profile.units
    head = (
        f"{profile.source}: {profile.profiler} ({profile.mode}), "
        f"{profile.points:,} program points → {len(profile.callsites):,} callsites"
    )
    totals = ", ".join(
        f"{METRICS[m].title} {format_value(m, v, units)}" for m, v in profile.totals.items()
    )
    rows = [["#", METRICS[metric].title, "blocks", "callsite", "at"]]
    for i, site in enumerate(sites, 1):
        rows.append(
            [
                str(i),
                format_value(metric, site.metrics.get(metric, 0), units),
                format_value("total_blocks", site.metrics.get("total_blocks", 0), units),
                _one_line(display_key(site.key, site.outside)),
                _one_line(site.location or "?"),
            ]
        )
    lines = [head, f"totals: {totals}", "", *_table(rows, {0, 1, 2})]
    if not profile.symbolized:
        lines += ["", NO_DEBUG_INFO_HINT]
    return "\n".join(lines) + "\n"


NO_DEBUG_INFO_HINT = (
    "note: no frame has a source location: the binary was built without debug info. "
    "Add `debug = 1` to the cargo profile you profile with "
    '([profile.profiling] inherits = "release", debug = 1).'
)


def comparison_text(result: WorkloadResult) -> str:
    c = result.comparison
    if c is None:
        return f"{result.name}: ERROR: {result.error}\n"
    lines = [verdict_line(c)]
    for metric in c.settings.metrics:
        rows = [["", "status", "callsite", "baseline", "current", "Δ", "Δ%"]]
        for site in (*c.sites, c.totals):
            cells = site_cells(site, metric, c.units)
            rows.append(
                [
                    "!" if site.is_regression else "",
                    site.status if site is not c.totals else "",
                    _one_line(display_key(site.key, site.outside))
                    if site is not c.totals
                    else "total",
                    cells["baseline"],
                    cells["current"],
                    cells["delta"],
                    cells["pct"],
                ]
            )
        if len(c.settings.metrics) > 1:
            lines.append(f"  {METRICS[metric].title}:")
        lines += ["  " + line for line in _table(rows, {3, 4, 5, 6})]
    if result.runs > 1:
        lines.append("  " + spread_line(result))
    if result.nondeterministic:
        lines.append(
            f"  warning: {len(result.nondeterministic)} callsite(s) varied between "
            f"{result.runs} runs (non-deterministic): " + ", ".join(result.nondeterministic[:5])
        )
    if result.harness:
        lines.append("  " + harness_line(result.harness, c.settings.rank_metric, c.units))
    lines += [f"  warning: {_one_line(w)}" for w in result.warnings]
    if result.profiles:
        lines.append("  raw profiles: " + ", ".join(result.profiles))
    return "\n".join(lines) + "\n"


def harness_line(harness: dict[str, int], metric: str, units: dict[str, str]) -> str:
    """The test harness's share of the totals (libtest, runtime start-up): no callsite."""
    value = format_value(metric, harness.get(metric, 0), units)
    return f"harness (libtest and runtime start-up, in the total, never a callsite): {value}"


def spread_line(result: WorkloadResult) -> str:
    """``3 runs (median compared); widest spread: KEY 1.0 MiB–1.2 MiB``."""
    text = f"{result.runs} runs (median compared)"
    c = result.comparison
    if not result.spread or c is None:
        return text
    metric = c.settings.rank_metric
    key, values = max(result.spread.items(), key=lambda kv: (max(kv[1]) - min(kv[1]), kv[0]))
    if max(values) == min(values):
        return text + "; every callsite identical in every run"
    low, high = (
        format_value(metric, min(values), c.units),
        format_value(metric, max(values), c.units),
    )
    return text + f"; widest spread: {key} {low}–{high}"


def verdict_line(c: Comparison) -> str:
    metric = c.settings.rank_metric
    t = site_cells(c.totals, metric, c.units)
    what = f"{METRICS[metric].title} {t['current']} ({t['delta']}, {t['pct']})"
    if c.regressed:
        names = [s.key for s in c.regressions]
        if c.totals.is_regression:
            names.append("total")
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"{c.workload}: REGRESSED — {what}; grew: {shown}"
    return f"{c.workload}: within budget — {what}"


def bless_hint(command: str, names: Sequence[str]) -> str:
    """``allocgate bless a b`` or ``pytest --allocgate-bless --allocgate-workload a …``."""
    if command.startswith("pytest"):
        return command + "".join(f" --allocgate-workload {n}" for n in names)
    return " ".join([command, *names])


def report_text(report: Report) -> str:
    from allocgate.render.groups import sections

    blocks = []
    for section in sections(report.results):
        if section.group is None:
            blocks.append(comparison_text(section.results[0]))
        else:
            blocks.append(tests_text(section))
    return text_section(report.baseline_changes, report.require_reason) + "\n".join(blocks)


def tests_text(section: Section) -> str:
    """A ``tests:`` workload: its summary, one line per new or gone test, and the
    full table only for the tests that moved."""
    lines = [f"{section.group}: {section.summary}"]
    lines += [f"  {note}" for note in section.notes()]
    text = "\n".join(lines) + "\n"
    for result in section.moved:
        text += comparison_text(result)
    return text


def bless_line(old: WorkloadBaseline | None, new: WorkloadBaseline, path: Path) -> str:
    """One line saying what a bless changed, for the terminal."""
    total = new.totals.get("total_bytes")
    size = format_value("total_bytes", total) if total is not None else "?"
    if old is None:
        return f"{path}: recorded {new.name} ({len(new.callsites)} callsites, {size} total)"
    before = old.totals.get("total_bytes")
    delta = ""
    if before is not None and total is not None:
        delta = f", {format_delta('total_bytes', total - before)}"
    added = len({s.key for s in new.callsites} - {s.key for s in old.callsites})
    removed = len({s.key for s in old.callsites} - {s.key for s in new.callsites})
    return (
        f"{path}: updated {new.name} ({size} total{delta}; "
        f"{added} callsite(s) added, {removed} removed)"
    )
