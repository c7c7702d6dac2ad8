"""Reports and profiles as GitHub markdown: the PR comment and the job summary.

The template escapes every value by default (see `_finalize`); what is already
markdown is marked safe where it is made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from markupsafe import Markup

from allocgate.callsites import Callsite, display_key
from allocgate.compare import GONE, IMPROVED, NEW, REGRESSED
from allocgate.escape import html_text, md_code, md_text
from allocgate.github.limits import MAX_COMMENT_CHARS
from allocgate.metrics import METRICS, format_value
from allocgate.profile import Profile
from allocgate.render.baseline_section import markdown_section
from allocgate.render.cells import site_cells, site_status, span_text, stack_delta_text
from allocgate.render.chart import mermaid_chart
from allocgate.render.text import LISTED, bless_hint, harness_line, runs_text, verdict_line
from allocgate.report import Report

if TYPE_CHECKING:
    import jinja2

    from allocgate.annotations import ActionsContext

COMMENT_LIMIT = MAX_COMMENT_CHARS

_MARKS = {
    REGRESSED: "🔴",
    NEW: "🆕",
    IMPROVED: "🟢",
    GONE: "⚪",
    "unchanged": "▫️",
}
_VERDICT_MARKS = {"pass": "✅", "regressed": "❌", "error": "⚠️"}


def comment_marker(comment_id: str = "default") -> str:
    """The hidden marker that finds allocgate's sticky comment again."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", comment_id) or "default"
    return f"<!-- allocgate-comment: {safe} -->"


@dataclass(frozen=True)
class MarkdownContext:
    """What the pull request body knows beyond the report."""

    comment_id: str = "default"
    run_url: str | None = None
    bless_command: str = "allocgate bless"
    baseline_file: str = "allocgate-baseline.yml"
    """The baseline as the reader should commit it (relative to the config)."""
    links: ActionsContext | None = None
    """Where the repository is: locations link to their line at the PR's head."""


def command_markup(command: str) -> Markup:
    """A command to copy: a code span when it is plain, else escaped text (a code
    span shows `@name` and `#1` literally, but they are still in the raw body)."""
    if re.fullmatch(r"[\w .:/=+-]+", command):
        # Nothing in it that a code span would show differently: copyable as it is.
        return Markup(f"`{command}`")
    return Markup(md_text(command))


def location_markup(location: str | None, links: ActionsContext | None) -> Markup:
    """A callsite's location, linked to its line at the head commit when possible."""
    if not location:
        return Markup("")
    where = links.locate(location) if links is not None else None
    url = links.blob_url(where) if links is not None and where is not None else None
    if url is None:
        return Markup(md_code(location))
    return Markup(f"[{md_code(location)}]({_link_target(url)})")


_TEXT_LIMIT = 2000
"""Characters of one value (an error message, say) shown in the comment; names are cut
at 200 where they are made code."""


def _finalize(value: object) -> object:
    # Escaping by default: every value a template prints is literal markdown
    # text unless it was made as markup (Markup) where it was built.
    if isinstance(value, Markup):
        return value
    return md_text(value, _TEXT_LIMIT)


def _link_target(url: str) -> Markup:
    return Markup(quote(url, safe=":/?&=#%+,;@!$'*~.-_"))


def _env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("allocgate.render", "templates"),
        autoescape=False,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["html"] = lambda text: Markup(html_text(text))
    env.filters["line"] = lambda text: Markup(md_text(text, line_start=True))
    env.filters["pre"] = lambda text: Markup(html_text(text, in_pre=True))
    env.filters["code"] = lambda text: Markup(md_code(text))
    env.filters["link_target"] = _link_target
    env.globals["cells"] = site_cells
    env.globals["mark"] = lambda status: _MARKS.get(status, "")
    env.globals["verdict_mark"] = lambda verdict: _VERDICT_MARKS.get(verdict, "")
    env.globals["chart"] = lambda c: Markup(mermaid_chart(c))
    env.globals["plain_verdict"] = verdict_line
    env.globals["status"] = site_status
    env.globals["span"] = span_text
    env.globals["stack_delta"] = stack_delta_text
    env.globals["runs_text"] = runs_text
    env.globals["listed"] = LISTED
    env.globals["title"] = lambda metric: METRICS[metric].title
    env.globals["harness_line"] = harness_line
    return env


_ENV: jinja2.Environment | None = None


def _template() -> jinja2.Template:
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV.get_template("report.md.j2")


def report_markdown(report: Report, ctx: MarkdownContext | None = None) -> str:
    """The PR comment / job summary; cut to fit GitHub's limit with a visible note."""
    from allocgate.render.groups import sections

    ctx = ctx or MarkdownContext()
    limit_rows: int | None = None
    stacks = True
    while True:
        body = _template().render(
            report=report,
            sections=sections(report.results),
            ctx=ctx,
            marker=Markup(comment_marker(ctx.comment_id)),
            baseline_section=Markup(
                markdown_section(report.baseline_changes, report.require_reason)
            ),
            limit_rows=limit_rows,
            show_stacks=stacks,
            location=lambda loc: location_markup(loc, ctx.links),
            bless=command_markup(
                bless_hint(
                    ctx.bless_command, [r.name for r in report.results if r.verdict == "regressed"]
                )
            ),
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


def profile_markdown(profile: Profile, sites: Sequence[Callsite], metric: str) -> str:
    lines = [
        f"**{md_text(profile.source)}** — {md_text(profile.profiler)}, "
        f"{profile.points:,} program points",
        "",
        f"| # | callsite | {METRICS[metric].title} | blocks | at |",
        "|---:|---|---:|---:|---|",
    ]
    for i, s in enumerate(sites, 1):
        lines.append(
            f"| {i} | {md_code(display_key(s.key, s.outside))} | {md_text(format_value(metric, s.metrics.get(metric, 0), profile.units))}"
            f" | {md_text(format_value('total_blocks', s.metrics.get('total_blocks', 0), profile.units))}"
            f" | {md_code(s.location or '?')} |"
        )
    return "\n".join(lines) + "\n"
