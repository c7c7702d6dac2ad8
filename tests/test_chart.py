"""The PR comment's chart: one honest bar per changed site, nothing when nothing changed."""

from __future__ import annotations

import re

from conftest import DHAT_RS
from test_annotations import profile as located

from allocgate.compare import Comparison, GateSettings, compare
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.render.chart import mermaid_chart, site_label
from allocgate.render.markdown import report_markdown
from allocgate.report import Report, WorkloadResult


def profile(sites: dict[str, int]) -> Profile:
    return located({key: (value, None) for key, value in sites.items()})


BEFORE = {"orders::build_order": 730_000, "orders::parse_line": 1_619_241, "orders::old": 120_000}
AFTER = {
    "orders::build_order": 1_275_000,
    "orders::parse_line": 1_619_241,
    "app::main::{{closure}}": 64_000,
}


def series(chart: str) -> list[list[float]]:
    return [[float(v) for v in m.split(", ")] for m in re.findall(r"^  bar \[(.*)\]$", chart, re.M)]


def test_nothing_changed_draws_nothing() -> None:
    c = compare("orders", profile(BEFORE), profile(BEFORE), GateSettings())
    assert mermaid_chart(c) == ""


def test_each_changed_site_has_one_bar_and_unchanged_ones_none() -> None:
    c = compare("orders", profile(BEFORE), profile(AFTER), GateSettings())
    chart = mermaid_chart(c)
    assert "xychart-beta horizontal" in chart
    labels = re.search(r"x-axis \[(.*)\]", chart)
    assert labels is not None
    assert labels.group(1) == (
        '"1. orders::build_order  +532.2 KiB, +74.7%", '
        '"2. orders::old  -117.2 KiB, gone", '
        '"3. app::main (closure)  +62.5 KiB, new"'
    )
    grew, shrank = series(chart)
    assert grew == [532.23, 0, 62.5]
    assert shrank == [0, 117.19, 0]
    # Never two bars on one row: one would hide the other.
    assert all(g == 0 or s == 0 for g, s in zip(grew, shrank))
    assert "red grew, green shrank" in chart


def test_labels_cannot_break_out_of_the_chart() -> None:
    evil = 'x"] ; click A call alert() %%{init}%%\n```'
    c = compare("w", profile({evil: 1}), profile({evil: 90_000}), GateSettings())
    chart = mermaid_chart(c)
    body = chart.split("\n")[1:-1]
    assert "```" not in "\n".join(body)
    assert chart.count('"') == 2 * 1 + 4  # one label, the title and the y-axis title
    assert "%%" not in "\n".join(body[1:])


def test_site_labels_are_readable() -> None:
    assert site_label("<orders::Ledger as core::clone::Clone>::clone") == "Ledger::clone"
    assert site_label("fdlite::walk::scan → ignore::WalkBuilder::build") == "walk::scan"
    assert site_label("app::main::{{closure}}") == "app::main (closure)"
    assert site_label("orders::Ledger<u8>::push::<u8>") == "Ledger::push"


def _real() -> Comparison:
    return compare(
        "reqctx",
        load_profile(DHAT_RS / "reqctx-base.json"),
        load_profile(DHAT_RS / "reqctx-regressed.json"),
        GateSettings(),
    )


def test_the_real_regression_is_the_longest_red_bar() -> None:
    # reqctx-regressed: render_response grew 13 MB → 52 MB.
    c = _real()
    chart = mermaid_chart(c)
    grew, shrank = series(chart)
    axis = re.search(r"^  x-axis (.*)$", chart, re.M)
    assert axis is not None
    labels = re.findall(r'"([^"]*)"', axis.group(1))
    first = labels[0]
    assert "render_response" in first
    assert grew[0] == max(grew)
    assert shrank[0] == 0


def test_a_label_with_nothing_printable_left_keeps_its_number() -> None:
    c = compare("w", profile({"x::»«": 10}), profile({"x::»«": 2000}), GateSettings())
    assert '  x-axis ["1. x::  +1.9 KiB, +19900.0%"]' in mermaid_chart(c).splitlines()


def test_at_most_limit_sites() -> None:
    many = {f"m::site{i}": 1000 * (i + 1) for i in range(12)}
    grown = {k: v * 2 for k, v in many.items()}
    c = compare("w", profile(many), profile(grown), GateSettings(top=12))
    assert len(series(mermaid_chart(c, limit=5))[0]) == 5


def test_the_report_carries_the_chart_unescaped() -> None:
    c = _real()
    md = report_markdown(Report((WorkloadResult("reqctx", c),)))
    assert mermaid_chart(c) in md
