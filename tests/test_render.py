"""Rendering: aligned terminal tables, sizes and signed deltas, markdown that shows profile
text literally and never breaks a table, the sticky-comment marker, JSON reports, and
GitHub's comment size limit."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from conftest import DHAT_RS, VALGRIND

from allocgate.callsites import Callsite
from allocgate.compare import Comparison, GateSettings, compare
from allocgate.load import load_profile
from allocgate.metrics import format_delta, format_value
from allocgate.profile import Profile
from allocgate.quantities import format_percent, format_size
from allocgate.render.markdown import (
    COMMENT_LIMIT,
    MarkdownContext,
    comment_marker,
    profile_markdown,
    report_markdown,
)
from allocgate.render.text import comparison_text, profile_text, report_text
from allocgate.report import Report, WorkloadResult, read_report

METRICS = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes")

EVIL = [
    "<Vec<T> as Clone>::clone",
    "reqctx::a|b ← reqctx::c || d",
    "`code` and ``more``",
    "@user please look",
    "fixes #1 and GH-2",
    "<script>alert(1)</script>",
    "[click](https://example.com) ![img](x.png)",
    "*bold* _em_ __strong__ ~~gone~~",
    "back\\slash \\| escaped pipe",
    "line\nbreak\r\nhere",
    "<!-- allocgate-comment: default -->",
    "&amp; &lt; entity",
    "$x$ math ${y}",
    "<details><summary>x</summary>",
]


def evil_profile(grow: int, stack: bool = False) -> Profile:
    sites = []
    for i, key in enumerate(EVIL):
        value = 1_000_000 + i * 10_000 + grow * (i % 3) * 100_000
        frames = (f"{key} (src/{key}.rs:{i})", "@user <b>frame</b> #1") if stack else ()
        sites.append(
            Callsite(
                key,
                {"total_bytes": value, "total_blocks": 10 + i, "peak_bytes": 0, "end_bytes": 0},
                f"src/{key}.rs:{i}",
                frames,
            )
        )
    sites.sort(key=lambda s: (-s.metrics["total_bytes"], s.key))
    return Profile(
        source="evil|<b>@user</b>.json",
        profiler="dhat-rs",
        mode="heap",
        command="",
        metrics=METRICS,
        totals={m: sum(s.metrics[m] for s in sites) for m in METRICS},
        callsites=tuple(sites),
        points=len(sites),
    )


def evil_report() -> Report:
    settings = GateSettings(top=len(EVIL))
    c = compare("evil|<workload>", evil_profile(0), evil_profile(1, stack=True), settings)
    assert c.regressed
    return Report((WorkloadResult("evil|<workload> @user #1", c),))


def unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def tables(markdown: str) -> list[list[str]]:
    """The markdown tables of a document: runs of lines starting with ``|``."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def assert_tables_intact(markdown: str) -> int:
    rows = 0
    all_tables = tables(markdown)
    assert all_tables, f"no table in {len(markdown)} characters: {markdown[:300]!r}…"
    for table in all_tables:
        header, rule, *body = table
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rule.replace(" ", "")), rule
        width = unescaped_pipes(header)
        assert unescaped_pipes(rule) == width
        for row in body:
            assert unescaped_pipes(row) == width, row
            rows += 1
    return rows


# ---------------------------------------------------------------- quantities

SIZES = [
    (0, "0 B"),
    (1, "1 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (1024 * 1024 - 1, "1024.0 KiB"),
    (1024 * 1024, "1.0 MiB"),
    (82_623_189, "78.8 MiB"),
    (1 << 30, "1.0 GiB"),
    (5 * (1 << 40), "5.0 TiB"),
    (-1536, "-1.5 KiB"),
]


@pytest.mark.parametrize(("n", "text"), SIZES)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text


VALUES = [
    ("total_bytes", 34_770_970, None, "33.2 MiB"),
    ("peak_bytes", 512, None, "512 B"),
    ("total_blocks", 2_010_065, None, "2,010,065"),
    ("total_bytes", 8_566_890, {"total_bytes": "units"}, "8,566,890 units"),
    ("total_blocks", 100_000, {"total_blocks": "events"}, "100,000 events"),
]


@pytest.mark.parametrize(("metric", "value", "units", "text"), VALUES)
def test_format_value(metric: str, value: int, units: dict[str, str] | None, text: str) -> None:
    assert format_value(metric, value, units) == text


DELTAS = [
    ("total_bytes", 38_400_000, "+36.6 MiB"),
    ("total_bytes", -2048, "-2.0 KiB"),
    ("total_bytes", 0, "±0 B"),
    ("total_bytes", 1, "+1 B"),
    ("total_blocks", 500_000, "+500,000"),
    ("total_blocks", -3, "-3"),
    ("total_blocks", 0, "±0"),
]


@pytest.mark.parametrize(("metric", "delta", "text"), DELTAS)
def test_format_delta_is_signed(metric: str, delta: int, text: str) -> None:
    assert format_delta(metric, delta) == text


@pytest.mark.parametrize(
    ("fraction", "text"),
    [(0.637, "+63.7%"), (-0.1, "-10.0%"), (0.0, "+0.0%"), (2.89, "+289.0%"), (None, "new")],
)
def test_format_percent(fraction: float | None, text: str) -> None:
    assert format_percent(fraction) == text


# ---------------------------------------------------------------- terminal


def real_comparison(backend: Path = DHAT_RS) -> Comparison:
    return compare(
        "reqctx",
        load_profile(backend / "reqctx-base.json"),
        load_profile(backend / "reqctx-regressed.json"),
        GateSettings(metrics=("total_bytes", "total_blocks")),
    )


@pytest.mark.parametrize("backend", [DHAT_RS, VALGRIND])
def test_comparison_table_is_aligned(backend: Path) -> None:
    text = comparison_text(WorkloadResult("reqctx", real_comparison(backend)))
    lines = text.splitlines()
    assert lines[0].startswith("reqctx: REGRESSED")
    blocks: list[list[str]] = []
    open_block = False
    for line in lines[1:]:
        if "status" in line and "callsite" in line:
            blocks.append([line])
            open_block = True
        elif open_block:
            blocks[-1].append(line)
            # The totals row closes a table; notes follow it.
            open_block = " total " not in line
    assert len(blocks) == 2  # one table per gated metric
    for table in blocks:
        header = table[0]
        # The last column is right-aligned, so every row ends in the same column...
        assert len({len(row) for row in table}) == 1, "\n".join(table)
        # ...and the callsite column starts in the same column.
        start = header.index("callsite")
        for row in table[1:]:
            assert row[start - 2 : start] == "  ", row
            assert row[start] != " ", row
    assert "+289.0%" in text
    assert "+36.6 MiB" in text
    assert "total" in text


def test_profile_table_is_aligned() -> None:
    profile = load_profile(VALGRIND / "reqctx-base.json")
    text = profile_text(profile, profile.top(10), "total_bytes")
    lines = text.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["#"])
    header, rows = lines[header_at], lines[header_at + 1 :]
    assert len(rows) == 10
    start = header.index("callsite")
    end_bytes = header.index("total bytes") + len("total bytes")
    for row, site in zip(rows, profile.top(10)):
        assert row.index(site.key) == start, row
        assert row[:end_bytes].endswith(format_value("total_bytes", site.metrics["total_bytes"]))
    assert "33.2 MiB" in text
    assert "700,000" in text


def test_terminal_output_keeps_names_on_one_line() -> None:
    text = report_text(evil_report())
    assert "line break here" in text
    for line in text.splitlines():
        assert "\r" not in line


# ---------------------------------------------------------------- markdown


def test_markdown_escapes_everything_from_the_profile() -> None:
    md = report_markdown(evil_report())
    rows = assert_tables_intact(md)
    assert rows == len(EVIL) + 1  # every site and the total
    # Nothing the profile controls becomes markup, a mention or an issue link.
    assert "<script>" not in md
    assert "<Vec<T>" not in md
    assert "@user" not in md
    assert not re.search(r"(?<![&\w])#1\b", md)  # &#124; is an entity, not issue 124
    # Outside <pre> blocks (raw HTML, where only HTML escaping matters) and fenced
    # code (the chart) markdown is live: emphasis, code spans and links must be
    # escaped too.
    live = re.sub(r"(?s)<pre>.*?</pre>|```.*?```", "", md)
    for raw in ("](https://example.com)", "`code`", "*bold*", "_em_", "~~gone~~"):
        assert raw not in live, raw
    assert md.count("<!-- allocgate-comment:") == 1
    assert "<details><summary>x" not in md
    # ...and it still reads as the original text once the entities are decoded.
    decoded = html.unescape(md).replace("\u200b", "")
    for key in EVIL:
        assert " ".join(key.split()) in " ".join(decoded.split()), key


def test_stacks_of_regressed_sites_are_escaped() -> None:
    md = report_markdown(evil_report())
    assert "<details>" in md
    details = md[md.index("<details>") :]
    assert "&lt;b&gt;frame&lt;/b&gt;" in details
    assert "<b>frame</b>" not in details


def test_profile_markdown_escapes_and_keeps_the_table() -> None:
    profile = evil_profile(0)
    md = profile_markdown(profile, profile.callsites, "total_bytes")
    assert assert_tables_intact(md) == len(EVIL)
    assert "<script>" not in md
    assert "@user" not in md


def test_marker_comment_is_the_first_line() -> None:
    report = Report((WorkloadResult("reqctx", real_comparison()),))
    md = report_markdown(report)
    assert md.splitlines()[0] == "<!-- allocgate-comment: default -->"
    md = report_markdown(report, MarkdownContext(comment_id="nightly/x86 --> <b>"))
    marker = md.splitlines()[0]
    assert marker == comment_marker("nightly/x86 --> <b>")
    assert re.fullmatch(r"<!-- allocgate-comment: [A-Za-z0-9_.-]+ -->", marker)


def test_markdown_of_a_real_regression() -> None:
    report = Report((WorkloadResult("reqctx", real_comparison()),))
    md = report_markdown(report)
    assert assert_tables_intact(md) > 0
    assert "regressed" in md.splitlines()[1]
    assert "reqctx::render&#95;response" in md
    assert "allocgate bless" in md


def test_markdown_of_a_pass_and_an_error() -> None:
    c = compare(
        "reqctx",
        load_profile(DHAT_RS / "reqctx-base.json"),
        load_profile(DHAT_RS / "determinism" / "reqctx-base.run2.json"),
        GateSettings(),
    )
    report = Report(
        (WorkloadResult("ok", c), WorkloadResult("broken", error="cargo build failed: <E0308> @x"))
    )
    md = report_markdown(report)
    assert_tables_intact(md)
    assert "could not be evaluated" in md
    assert "&lt;E0308&gt; @\u200bx" in md


@pytest.mark.parametrize("all_regressed", [False, True], ids=["unchanged", "all-new"])
def test_huge_report_fits_a_github_comment(all_regressed: bool) -> None:
    n = 5000
    base_sites = [
        Callsite(
            f"crate::module_{i:04}::function_with_a_long_name_{i}",
            {"total_bytes": 10_000_000 - i, "total_blocks": 10, "peak_bytes": 0, "end_bytes": 0},
            f"src/module_{i:04}.rs:{i}",
            tuple(f"frame {j} of site {i} (src/x.rs:{j})" for j in range(16)),
        )
        for i in range(n)
    ]
    cur_sites = base_sites
    if all_regressed:
        base_sites = base_sites[:1]

    def prof(sites: list[Callsite]) -> Profile:
        return Profile(
            "p.json",
            "dhat-rs",
            "heap",
            "",
            METRICS,
            {m: sum(s.metrics[m] for s in sites) for m in METRICS},
            tuple(sites),
        )

    c = compare("big", prof(base_sites), prof(cur_sites), GateSettings(top=n))
    assert len(c.sites) == n
    md = report_markdown(Report((WorkloadResult("big", c),)))
    assert len(md) < COMMENT_LIMIT
    shown = assert_tables_intact(md) - 1  # minus the totals row
    assert 0 < shown < n
    match = re.search(r"([\d,]+) more not shown", md)
    assert match is not None, md[-500:]
    assert int(match.group(1).replace(",", "")) == n - shown
    assert md.startswith("<!-- allocgate-comment: default -->")


# ---------------------------------------------------------------- JSON


def test_json_report_round_trips(tmp_path: Path) -> None:
    report = Report(
        (
            WorkloadResult("reqctx", real_comparison(), seconds={"run": 1.5}),
            WorkloadResult("evil", evil_report().results[0].comparison),
            WorkloadResult("broken", error="could not build"),
        )
    )
    path = tmp_path / "report.json"
    path.write_bytes(report.to_json())
    back = read_report(path)
    assert back.to_json() == report.to_json()
    assert [r.name for r in back.results] == ["reqctx", "evil", "broken"]
    assert [r.verdict for r in back.results] == ["regressed", "regressed", "error"]
    assert back.exit_code == 2
    first = back.results[0].comparison
    assert first is not None
    assert first.sites == report.results[0].comparison.sites  # type: ignore[union-attr]
