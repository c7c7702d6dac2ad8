"""Profiles, comparisons and bless results as terminal text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.callsites import Callsite, display_key
from allocgate.compare import GONE, GREW, IMPROVED, NEW, REGRESSED, Comparison, SiteDelta
from allocgate.envelope import Swing
from allocgate.escape import DISPLAY_LIMIT, one_line
from allocgate.metrics import METRICS, format_delta, format_value
from allocgate.profile import Profile
from allocgate.render.baseline_section import text_section
from allocgate.render.cells import site_cells, site_status, span_text
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


def profile_text(profile: Profile, sites: Sequence[Callsite], metric: str) -> str:
    units = profile.units
    head = (
        f"{one_line(profile.source)}: {profile.profiler} ({profile.mode}), "
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
                name(display_key(site.key, site.outside)),
                one_line(site.location or "?", DISPLAY_LIMIT),
            ]
        )
    lines = [head, f"totals: {totals}", "", *_table(rows, {0, 1, 2})]
    if not profile.symbolized:
        lines += ["", NO_DEBUG_INFO_HINT]
    # Units and names come from the profile: no line of ours may be split by one.
    return "\n".join(one_line(line) for line in lines) + "\n"


NO_DEBUG_INFO_HINT = (
    "note: no frame has a source location: the binary was built without debug info. "
    "Add `debug = 1` to the cargo profile you profile with "
    '([profile.profiling] inherits = "release", debug = 1).'
)


def comparison_text(result: WorkloadResult) -> str:
    c = result.comparison
    if c is None:
        return f"{one_line(result.name)}: ERROR: {one_line(result.error)}\n"
    lines = [verdict_line(c)]
    for metric in c.settings.metrics:
        rows = [["", "status", "callsite", "baseline", "current", "Δ", "Δ%"]]
        for site in (*c.sites, c.totals):
            cells = site_cells(site, metric, c.units)
            status = site_status(site, metric)
            rows.append(
                [
                    _TEXT_MARKS.get(status, ""),
                    status if site is not c.totals else "",
                    name(display_key(site.key, site.outside)) if site is not c.totals else "total",
                    cells["baseline"],
                    cells["current"],
                    cells["delta"],
                    cells["pct"],
                ]
            )
        if len(c.settings.metrics) > 1:
            lines.append(f"  {METRICS[metric].title}:")
        lines += ["  " + line for line in _table(rows, {3, 4, 5, 6})]
    lines += [f"  {line}" for line in grew_via_lines(c)]
    for extra in (good_news(c), beyond_line(c), noise_line(result)):
        if extra:
            lines.append("  " + extra)
    if result.harness:
        lines.append("  " + harness_line(result.harness, c.settings.rank_metric, c.units))
    lines += [f"  warning: {one_line(w)}" for w in result.warnings]
    if result.profiles:
        lines.append("  raw profiles: " + ", ".join(one_line(p) for p in result.profiles))
    # Units and names come from the profile: no line of ours may be split by one.
    return "\n".join(one_line(line) for line in lines) + "\n"


def harness_line(harness: dict[str, int], metric: str, units: dict[str, str]) -> str:
    """The test harness's share of the totals (libtest, runtime start-up): no callsite."""
    value = format_value(metric, harness.get(metric, 0), units)
    return f"harness (libtest and runtime start-up, in the total, never a callsite): {value}"


# A mark per metric that moved: "!" regressed, "-" improved, "+" new, "x" gone.
_TEXT_MARKS = {REGRESSED: "!", NEW: "+", IMPROVED: "-", GONE: "x", GREW: "^"}


def name(key: str) -> str:
    """A callsite key as shown: one line, cut to the display limit (JSON keeps it whole)."""
    return one_line(key, DISPLAY_LIMIT)


def _moves(sites: Sequence[SiteDelta], metric: str, units: dict[str, str]) -> str:
    parts = []
    for site in sites[:LISTED]:
        cells = site_cells(site, metric, units)
        parts.append(f"{name(site.key)} {cells['delta']} ({cells['pct']})")
    more = len(sites) - LISTED
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


LISTED = 5


def grew_via_lines(c: Comparison) -> list[str]:
    """``KEY grew via CALLER (+96.0 KiB)``: per regressed site, its stack that grew most."""
    lines = []
    for site in c.regressions[:LISTED]:
        grown = next((s for s in site.stacks if s.delta > 0), None)
        if grown is not None:
            delta = format_delta("total_bytes", grown.delta, c.units)
            lines.append(f"{name(site.key)} grew via {name(grown.via)} ({delta})")
    return lines


def good_news(c: Comparison) -> str | None:
    """``improved: KEY -1.2 MiB (-30.0%), …`` — every site that shrank or vanished."""
    improved = c.improvements
    if not improved and c.totals.status != IMPROVED:
        return None
    metric = c.settings.rank_metric
    parts = []
    if c.totals.status == IMPROVED:
        t = site_cells(c.totals, metric, c.units)
        parts.append(f"total {t['delta']} ({t['pct']})")
    if improved:
        parts.append(_moves(improved, metric, c.units))
    return "improved: " + "; ".join(parts)


def beyond_line(c: Comparison) -> str | None:
    """What moved beyond the top N (named, not gated), by kind."""
    if not c.beyond:
        return None
    metric = c.settings.rank_metric
    groups = []
    for status, label in ((NEW, "new"), (GREW, "grew"), (IMPROVED, "improved"), (GONE, "gone")):
        sites = [s for s in c.beyond if s.status == status]
        if sites:
            groups.append(f"{label}: {_moves(sites, metric, c.units)}")
    return f"beyond the top {c.settings.top} (not gated): " + "; ".join(groups)


def noise_line(result: WorkloadResult) -> str | None:
    """One statement about run-to-run noise: which gated sites varied, widest first,
    or that none did. Nothing when neither side ran more than once."""
    c = result.comparison
    runs = runs_text(result)
    if not result.swings:
        if result.runs == 1 and result.baseline_runs == 1:
            return None
        return f"deterministic: every gated callsite had the same value in every run ({runs})"
    units = c.units if c is not None else {}
    return varied_text(result.swings, runs, units)


def varied_text(swings: Sequence[Swing], runs: str, units: dict[str, str]) -> str:
    """``non-deterministic: 2 callsites varied between runs (RUNS), …: KEY low–high, …``."""
    shown = [f"{name(w.key)} {span_text(w.metric, w.span, units)}" for w in swings[:LISTED]]
    more = len(swings) - LISTED
    count = len(swings)
    return (
        f"non-deterministic: {count} callsite{'s' if count != 1 else ''} varied between runs "
        f"({runs}), each judged against the range it spanned: "
        + ", ".join(shown)
        + (f" and {more} more" if more > 0 else "")
    )


def runs_text(result: WorkloadResult) -> str:
    """``bless: 3 runs, check: 1 run``."""
    return f"bless: {_runs(result.baseline_runs)}, check: {_runs(result.runs)}"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def verdict_line(c: Comparison) -> str:
    metric = c.settings.rank_metric
    t = site_cells(c.totals, metric, c.units)
    what = f"{METRICS[metric].title} {t['current']} ({t['delta']}, {t['pct']})"
    workload = one_line(c.workload, DISPLAY_LIMIT)
    if c.regressed:
        names = [name(s.key) for s in c.regressions]
        if c.totals.is_regression:
            names.append("total")
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"{workload}: REGRESSED — {what}; grew: {shown}"
    return f"{workload}: within budget — {what}"


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
    runs = f"{_runs(new.runs)}; " if new.runs > 1 else ""
    varied = len(new.spans)
    noise = f", {varied} varied between runs" if varied else ""
    label = one_line(new.name, DISPLAY_LIMIT)
    if old is None:
        return (
            f"{path}: recorded {label} ({runs}{len(new.callsites)} callsites{noise}, {size} total)"
        )
    before = old.totals.get("total_bytes")
    delta = ""
    if before is not None and total is not None:
        delta = f", {format_delta('total_bytes', total - before)}"
    added = len({s.key for s in new.callsites} - {s.key for s in old.callsites})
    removed = len({s.key for s in old.callsites} - {s.key for s in new.callsites})
    return (
        f"{path}: updated {label} ({runs}{size} total{delta}; "
        f"{added} callsite(s) added, {removed} removed{noise})"
    )
