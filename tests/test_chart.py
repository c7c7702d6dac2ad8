"""The mermaid bar chart of a comparison (allocgate.render.chart)."""

from __future__ import annotations

import re

from conftest import DHAT_RS

from allocgate.callsites import Callsite
from allocgate.compare import Comparison, GateSettings, compare
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.render.chart import mermaid_chart
from allocgate.render.markdown import report_markdown
from allocgate.report import Report, WorkloadResult

MIB = 1 << 20


def _real() -> Comparison:
    return compare(
        "reqctx",
        load_profile(DHAT_RS / "reqctx-base.json"),
        load_profile(DHAT_RS / "reqctx-regressed.json"),
        GateSettings(),
    )


def _numbers(line: str) -> list[float]:
    inside = line[line.index("[") + 1 : line.rindex("]")]
    return [float(x) for x in inside.split(",")]


def _profile(sites: dict[str, int], metrics: tuple[str, ...] = ("total_bytes",)) -> Profile:
    callsites = tuple(Callsite(key, {m: value for m in metrics}) for key, value in sites.items())
    return Profile(
        source="hand-made",
        profiler="dhat-rs",
        mode="heap",
        command="",
        metrics=metrics,
        totals={m: sum(sites.values()) for m in metrics},
        callsites=callsites,
    )


def test_real_comparison_charts_baseline_and_current_of_the_top_sites() -> None:
    c = _real()
    lines = mermaid_chart(c).splitlines()
    assert lines[:2] == ["```mermaid", "xychart-beta"]
    assert lines[-1] == "```"
    assert lines[2] == '  title "total bytes: baseline (first bar) vs current"'
    shown = c.sites[:8]
    labels = re.findall(r'"([^"]*)"', lines[3])
    assert labels == [s.key.rsplit("::", 1)[-1][:24] for s in shown]
    assert lines[4] == '  y-axis "MiB"'
    for line, side in ((lines[5], "baseline"), (lines[6], "current")):
        expected = [(s.value("total_bytes", side) or 0) / MIB for s in shown]
        assert _numbers(line) == [round(v, 1) for v in expected]
    # The regression the chart exists to show: render_response grew 13 MB → 52 MB.
    i = labels.index("render_response")
    assert _numbers(lines[6])[i] > 3 * _numbers(lines[5])[i]


def test_labels_cannot_break_out_of_the_chart() -> None:
    evil = 'x::a"] \n%%{init: {"theme": "dark"}}%%\n  bar [1'
    c = compare("w", _profile({evil: 4096}), _profile({evil: 8192}), GateSettings())
    chart = mermaid_chart(c)
    x_axis = chart.splitlines()[3]
    assert x_axis == '  x-axis ["a init: theme: dark  bar"]'  # and cut at 24
    assert chart.count("\n") == 7
    assert "%%" not in chart


def test_a_label_with_nothing_printable_left_is_numbered() -> None:
    c = compare("w", _profile({"x::»«": 10}), _profile({"x::»«": 20}), GateSettings())
    assert '  x-axis ["site 1"]' in mermaid_chart(c).splitlines()


def test_small_sites_are_charted_in_bytes_and_counts_in_their_unit() -> None:
    small = compare("w", _profile({"a::b": 100}), _profile({"a::b": 300}), GateSettings())
    assert '  y-axis "B"' in mermaid_chart(small).splitlines()
    blocks = compare(
        "w",
        _profile({"a::b": 100}, ("total_blocks",)),
        _profile({"a::b": 300}, ("total_blocks",)),
        GateSettings(metrics=("total_blocks",)),
    )
    lines = mermaid_chart(blocks).splitlines()
    assert lines[4] == '  y-axis "blocks"'
    assert (_numbers(lines[5]), _numbers(lines[6])) == ([100.0], [300.0])


def test_at_most_limit_sites_and_none_without_sites() -> None:
    many = {f"m::site{i}": 1000 * (i + 1) for i in range(12)}
    c = compare("w", _profile(many), _profile(many), GateSettings(top=12))
    assert len(_numbers(mermaid_chart(c, limit=5).splitlines()[5])) == 5
    empty = compare("w", _profile({}), _profile({}), GateSettings())
    assert mermaid_chart(empty) == ""


def test_the_report_carries_the_chart_unescaped() -> None:
    c = _real()
    md = report_markdown(Report((WorkloadResult("reqctx", c),)))
    assert mermaid_chart(c) in md
