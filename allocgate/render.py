"""Turning profiles and comparisons into text for terminals, pull requests and machines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from allocgate.callsites import Callsite
from allocgate.compare import GONE, IMPROVED, NEW, REGRESSED, Comparison, SiteDelta
from allocgate.metrics import METRICS, format_delta, format_value
from allocgate.profile import Profile
from allocgate.quantities import format_percent
from allocgate.report import Report, WorkloadResult

if TYPE_CHECKING:
    import jinja2

COMMENT_LIMIT = 65_536
"""GitHub's limit on the body of an issue comment, in characters."""

_MARKS = {
    REGRESSED: "🔴",
    NEW: "🆕",
    IMPROVED: "🟢",
    GONE: "⚪",
    "unchanged": "▫️",
}
_VERDICT_MARKS = {"pass": "✅", "regressed": "❌", "error": "⚠️"}

# Everything taken from a profile is user- or compiler-controlled text: in markdown
# it must render literally, break no table, ping nobody and link no issue.
_MD_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "*": "&#42;",
    "_": "&#95;",
    "[": "&#91;",
    "]": "&#93;",
    "\\": "&#92;",
    "~": "&#126;",
    "@": "&#64;",
    "#": "&#35;",
    "!": "&#33;",
    "$": "&#36;",
    "\n": " ",
    "\r": " ",
}
_MD_RE = re.compile("[" + re.escape("".join(_MD_ESCAPES)) + "]")
_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "@": "&#64;", "#": "&#35;", '"': "&quot;"}
_HTML_RE = re.compile('[&<>@#"]')


def escape_md(text: object) -> str:
    """Literal text inside markdown (tables included)."""
    return _MD_RE.sub(lambda m: _MD_ESCAPES[m.group()], str(text))


def escape_html(text: object) -> str:
    """Literal text inside an HTML block such as ``<pre>``."""
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], str(text))


def comment_marker(comment_id: str = "default") -> str:
    """The hidden marker that finds allocgate's sticky comment again."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", comment_id) or "default"
    return f"<!-- allocgate-comment: {safe} -->"


def _relative(base: int | None, cur: int | None) -> float | None:
    if base is None or cur is None:
        return None
    if base == 0:
        return 0.0 if cur == 0 else None
    return (cur - base) / base


def site_cells(site: SiteDelta, metric: str, units: dict[str, str]) -> dict[str, str]:
    """Baseline, current, delta and relative delta of one site, formatted."""
    base = site.value(metric, "baseline")
    cur = site.value(metric, "current")
    dash = "—"
    delta = (cur or 0) - (base or 0)
    rel = _relative(base, cur)
    if site.status == NEW:
        pct = "new"
    elif site.status == GONE:
        pct = "gone"
    else:
        pct = format_percent(rel) if rel is not None else "new"
    return {
        "baseline": dash if base is None else format_value(metric, base, units),
        "current": dash if cur is None else format_value(metric, cur, units),
        "delta": format_delta(metric, delta, units),
        "pct": pct,
    }


# ---------------------------------------------------------------- terminal text


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
                _one_line(site.key),
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
                    _one_line(site.key) if site is not c.totals else "total",
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
    if result.profiles:
        lines.append("  raw profiles: " + ", ".join(result.profiles))
    return "\n".join(lines) + "\n"


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


def report_text(report: Report) -> str:
    return "\n".join(comparison_text(r) for r in report.results)


# ---------------------------------------------------------------- markdown


@dataclass(frozen=True)
class MarkdownContext:
    """What the pull request body knows beyond the report."""

    comment_id: str = "default"
    run_url: str | None = None
    bless_command: str = "allocgate bless"


def _env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("allocgate", "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = escape_md
    env.filters["html"] = escape_html
    env.globals["cells"] = site_cells
    env.globals["mark"] = lambda status: _MARKS.get(status, "")
    env.globals["verdict_mark"] = lambda verdict: _VERDICT_MARKS.get(verdict, "")
    env.globals["title"] = lambda metric: METRICS[metric].title
    env.globals["chart"] = mermaid_chart
    env.globals["plain_verdict"] = verdict_line
    env.globals["spread_line"] = spread_line
    return env


_ENV: jinja2.Environment | None = None


def _template() -> jinja2.Template:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV.get_template("report.md.j2")


def report_markdown(report: Report, ctx: MarkdownContext | None = None) -> str:
    """The PR comment / job summary; cut to fit GitHub's limit with a visible note."""
    ctx = ctx or MarkdownContext()
    limit_rows: int | None = None
    stacks = True
    while True:
        body = _template().render(
            report=report,
            ctx=ctx,
            marker=comment_marker(ctx.comment_id),
            limit_rows=limit_rows,
            show_stacks=stacks,
            regressed_count=sum(r.verdict == "regressed" for r in report.results),
            error_count=sum(r.verdict == "error" for r in report.results),
        )
        if len(body) < COMMENT_LIMIT:
            return body
        if stacks:
            stacks = False
        elif limit_rows is None:
            limit_rows = 50
        elif limit_rows > 1:
            limit_rows //= 2
        else:
            return body[: COMMENT_LIMIT - 200] + "\n\n… (cut to fit GitHub's comment limit)\n"


_LABEL_RE = re.compile(r"[^A-Za-z0-9_:. -]")


def mermaid_chart(c: Comparison, limit: int = 8) -> str:
    """An xychart bar chart of baseline vs current for the top sites (labels sanitised)."""
    metric = c.settings.rank_metric
    sites = [s for s in c.sites][:limit]
    if not sites:
        return ""
    peak = max(
        max(s.value(metric, "baseline") or 0, s.value(metric, "current") or 0) for s in sites
    )
    scale, unit = (1, "B")
    if METRICS[metric].is_bytes:
        for factor, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if peak >= factor:
                scale, unit = factor, name
                break
    else:
        unit = c.units.get(metric, "blocks")
    labels = []
    for i, s in enumerate(sites, 1):
        short = s.key.split(" ← ")[0].rsplit("::", 1)[-1]
        labels.append('"' + (_LABEL_RE.sub("", short)[:24] or f"site {i}") + '"')

    def series(side: str) -> str:
        return ", ".join(f"{(s.value(metric, side) or 0) / scale:.1f}" for s in sites)

    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'  title "{METRICS[metric].title}: baseline (first bar) vs current"',
            f"  x-axis [{', '.join(labels)}]",
            f'  y-axis "{unit}"',
            f"  bar [{series('baseline')}]",
            f"  bar [{series('current')}]",
            "```",
        ]
    )


# ---------------------------------------------------------------- JSON


def profile_json(profile: Profile, sites: Sequence[Callsite]) -> bytes:
    doc: dict[str, Any] = {
        "allocgate_profile": 1,
        "source": profile.source,
        "profiler": profile.profiler,
        "mode": profile.mode,
        "command": profile.command,
        "depth": profile.depth,
        "points": profile.points,
        "units": profile.units,
        "totals": profile.totals,
        "callsites": [
            {
                "key": s.key,
                "location": s.location,
                "points": s.points,
                "stack": list(s.stack),
                **s.metrics,
            }
            for s in sites
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def profile_markdown(profile: Profile, sites: Sequence[Callsite], metric: str) -> str:
    lines = [
        f"**{escape_md(profile.source)}** — {escape_md(profile.profiler)}, "
        f"{profile.points:,} program points",
        "",
        f"| # | callsite | {METRICS[metric].title} | blocks | at |",
        "|---:|---|---:|---:|---|",
    ]
    for i, s in enumerate(sites, 1):
        lines.append(
            f"| {i} | {escape_md(s.key)} | {format_value(metric, s.metrics.get(metric, 0), profile.units)}"
            f" | {format_value('total_blocks', s.metrics.get('total_blocks', 0), profile.units)}"
            f" | {escape_md(s.location or '?')} |"
        )
    return "\n".join(lines) + "\n"
