"""The noise envelope end to end over values: runs combined into ranges, the baseline
(version 2, version 1 read as zero-width ranges, newer versions refused by name),
the comparison judged against the ranges, and reports that say everything that
moved: improvements, sites beyond the top N, marks on the metric that moved, and
one consistent statement about non-deterministic sites."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from conftest import DHAT_RS, RunCli
from markdown_check import pings, read

from allocgate.api import nondeterministic
from allocgate.baseline import WorkloadBaseline
from allocgate.baseline_file import VERSION, read_baseline, update_baseline
from allocgate.callsites import Callsite
from allocgate.compare import GONE, GREW, IMPROVED, NEW, REGRESSED, UNCHANGED, GateSettings, compare
from allocgate.envelope import Span
from allocgate.errors import BaselineError
from allocgate.profile import Profile
from allocgate.render.markdown import report_markdown
from allocgate.render.text import comparison_text, good_news, noise_line
from allocgate.report import Report, WorkloadResult
from allocgate.runs import combine_runs

BYTES_BLOCKS = ("total_bytes", "total_blocks", "peak_bytes")


def profile(sites: dict[str, tuple[int, int, int]], source: str = "p.json") -> Profile:
    """A heaptrack-like profile from ``{key: (bytes, blocks, peak)}``."""
    callsites = tuple(
        Callsite(key, dict(zip(BYTES_BLOCKS, values)), f"src/{i}.rs:{i}")
        for i, (key, values) in enumerate(sorted(sites.items(), key=lambda kv: (-kv[1][0], kv[0])))
    )
    totals = {m: sum(v[i] for v in sites.values()) for i, m in enumerate(BYTES_BLOCKS)}
    return Profile(source, "heaptrack", "heap", "", BYTES_BLOCKS, totals, callsites)


# Three runs of a threaded program: 'app::worker' swings by 12.5% in bytes,
# 'app::cache' appears in two runs of three, 'app::parse' varies only in its peak.
RUN_SITES = [
    {
        "app::worker": (512_000, 100, 10),
        "app::parse": (300_000, 50, 7),
        "app::cache": (90_000, 3, 1),
    },
    {
        "app::worker": (448_000, 100, 10),
        "app::parse": (300_000, 50, 9),
        "app::cache": (90_000, 3, 1),
    },
    {"app::worker": (512_000, 100, 10), "app::parse": (300_000, 50, 8)},
]


def blessed_runs() -> Profile:
    return combine_runs([profile(s) for s in RUN_SITES])


def test_runs_combine_into_medians_and_ranges() -> None:
    p = blessed_runs()
    values = {s.key: s.metrics for s in p.callsites}
    assert p.runs == 3
    assert values["app::worker"]["total_bytes"] == 512_000
    assert p.spans["app::worker"] == {"total_bytes": Span(448_000, 512_000)}
    assert p.spans["app::cache"]["total_bytes"] == Span(0, 90_000)  # absent once: 0 there
    assert p.spans["app::parse"] == {"peak_bytes": Span(7, 9)}
    assert p.total_spans["total_bytes"] == Span(812_000, 902_000)
    assert combine_runs([profile(RUN_SITES[0])]).spans == {}


def test_bless_writes_version_2_with_ranges_of_gated_metrics(tmp_path: Path) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    entry = WorkloadBaseline.from_profile("w", blessed_runs(), 15, ranged=("total_bytes",))
    update_baseline(path, {"w": entry})
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["version"] == VERSION == 2
    w = doc["workloads"]["w"]
    assert w["runs"] == 3
    assert w["totals_range"] == {"total_bytes": [812_000, 902_000]}
    sites = {s["key"]: s for s in w["callsites"]}
    assert sites["app::worker"]["range"] == {"total_bytes": [448_000, 512_000]}
    # Only gated metrics get a range: the peak that varied is not recorded.
    assert "range" not in sites["app::parse"]
    back = read_baseline(path).get("w")
    assert back.spans == entry.spans
    assert back.runs == 3
    assert back.as_profile("b").span(next(iter(back.callsites)), "total_bytes").width >= 0


def test_a_version_1_baseline_reads_as_zero_width_ranges_and_the_next_bless_writes_2(
    tmp_path: Path,
) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    path.write_text(
        "version: 1\nworkloads:\n  old:\n    profiler: heaptrack\n    depth: 1\n"
        "    totals: {total_bytes: 902000}\n    callsites:\n"
        "    - {key: app::worker, total_bytes: 448000}\n",
        encoding="utf-8",
    )
    old = read_baseline(path).get("old")
    assert old.runs == 1
    assert old.spans == {}
    site = old.callsites[0]
    assert old.as_profile("b").span(site, "total_bytes") == Span.point(448_000)
    # Judged by the plain rule: +14% of a zero-width range regresses.
    c = compare("old", old.as_profile("b"), profile(RUN_SITES[0]), GateSettings(top=3))
    assert {s.key: s.status for s in c.sites}["app::worker"] == REGRESSED
    update_baseline(path, {"new": WorkloadBaseline.from_profile("new", blessed_runs(), 15)})
    text = path.read_text(encoding="utf-8")
    assert "\nversion: 2\n" in text
    assert read_baseline(path).get("old").totals == {"total_bytes": 902_000}


def test_a_newer_baseline_is_refused_by_name(tmp_path: Path, cli: RunCli) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    path.write_text("version: 3\nworkloads: {}\n", encoding="utf-8")
    with pytest.raises(BaselineError, match="written by a newer allocgate"):
        read_baseline(path)
    code, _, err = cli("diff", path, DHAT_RS / "reqctx-base.json")
    assert code == 2
    assert "written by a newer allocgate" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ("{total_bytes: [449000, 512000]}", "low <= 448000"),
        ("{total_bytes: [0]}", "[low, high]"),
        ("{peak_bytes: [0, 1]}", "without a value"),
        ("[1, 2]", "mapping of metric"),
    ],
)
def test_bad_ranges_are_refused(tmp_path: Path, ranges: str, message: str) -> None:
    path = tmp_path / "b.yml"
    path.write_text(
        "version: 2\nworkloads:\n  w:\n    profiler: heaptrack\n    totals: {total_bytes: 1}\n"
        f"    callsites:\n    - {{key: a, total_bytes: 448000, range: {ranges}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(BaselineError, match=message.replace("[", r"\[")):
        read_baseline(path)


def baseline_profile() -> Profile:
    entry = WorkloadBaseline.from_profile("w", blessed_runs(), 15, ranged=("total_bytes",))
    return entry.as_profile("baseline")


@pytest.mark.parametrize(
    ("worker", "status"),
    [
        (448_000, UNCHANGED),  # the low end of its range
        (576_000, UNCHANGED),  # +12.5% of the high end: the swing again
        (600_000, REGRESSED),  # +17%: more than tolerance and swing
        (665_600, REGRESSED),  # +30%
        (380_000, IMPROVED),  # below the low end by more than the swing
    ],
)
def test_check_judges_against_the_range(worker: int, status: str) -> None:
    current = profile({**RUN_SITES[2], "app::worker": (worker, 100, 10)})
    c = compare("w", baseline_profile(), current, GateSettings(top=3))
    assert {s.key: s.status for s in c.sites}["app::worker"] == status


def test_marks_sit_on_the_metric_that_moved() -> None:
    base = profile({"a": (1_000_000, 1_000, 0), "b": (500_000, 500, 0)})
    # 'a' allocates as many bytes in twice as many blocks; 'b' shrinks in bytes only.
    cur = profile({"a": (1_000_000, 2_000, 0), "b": (300_000, 500, 0)})
    c = compare("w", base, cur, GateSettings(metrics=("total_bytes", "total_blocks"), top=2))
    a = next(s for s in c.sites if s.key == "a")
    assert a.regressed_metrics == ("total_blocks",)
    assert a.moved_on("total_blocks") == REGRESSED
    assert a.moved_on("total_bytes") is None
    b = next(s for s in c.sites if s.key == "b")
    assert b.moved_on("total_bytes") == IMPROVED
    md = report_markdown(Report((WorkloadResult("w", c),)))
    bytes_table, blocks_table = md.split("**total bytes**")[1].split("**total blocks**")
    row = next(line for line in bytes_table.splitlines() if "<code>a</code>" in line)
    assert "🔴" not in row
    row = next(line for line in blocks_table.splitlines() if "<code>a</code>" in line)
    assert "🔴" in row
    row = next(line for line in bytes_table.splitlines() if "<code>b</code>" in line)
    assert "🟢" in row
    text = comparison_text(WorkloadResult("w", c))
    tables = text.split("total blocks:")
    assert "! " not in tables[0].split("total bytes:")[1].split("\n  a")[0]
    assert any(line.lstrip().startswith("!") and " a " in line for line in tables[1].splitlines())


def test_improvements_and_sites_beyond_the_top_n_are_named() -> None:
    base_sites = {f"app::f{i}": (1_000_000 - i * 10_000, 10, 0) for i in range(12)}
    base_sites["app::vanishes"] = (200_000, 10, 0)
    cur_sites = dict(base_sites)
    del cur_sites["app::vanishes"]
    cur_sites["app::f0"] = (700_000, 10, 0)  # top 5, improved by 30%
    cur_sites["app::f9"] = (800_000, 10, 0)  # rank 10, shrank by 12%: beyond the top 5
    cur_sites["app::f11"] = (500_000, 10, 0)  # rank 12 → shrank, beyond the top 5
    cur_sites["app::summarize::closure"] = (400_000, 10, 0)  # new at rank ~12
    c = compare("w", profile(base_sites), profile(cur_sites), GateSettings(top=5))
    statuses = {s.key: s.status for s in c.beyond}
    assert statuses["app::vanishes"] == GONE
    assert statuses["app::summarize::closure"] == NEW
    assert statuses["app::f11"] == IMPROVED
    assert all(not s.is_regression for s in c.beyond)
    assert {s.key for s in c.improvements} >= {"app::f0", "app::f11", "app::vanishes"}
    news = good_news(c)
    assert news is not None
    assert news.startswith("improved:")
    assert "app::f0 -293.0 KiB (-30.0%)" in news
    md = report_markdown(Report((WorkloadResult("w", c),)))
    assert "**Improved:**" in md
    assert "Beyond the top 5 (named, not gated)" in md
    for key in ("app::vanishes", "app::summarize::closure", "app::f11"):
        assert f"<code>{key}</code>" in md.replace("&#95;", "_")
    text = comparison_text(WorkloadResult("w", c))
    assert "beyond the top 5 (not gated): new: app::summarize::closure" in text
    assert "gone: app::vanishes" in text


def test_a_site_that_grew_beyond_the_top_n_is_named_not_gated() -> None:
    base_sites = {f"app::f{i}": (1_000_000 - i * 50_000, 10, 0) for i in range(12)}
    # 500 KiB → 540 KiB: +8%, past the tolerance, still below app::f9 at rank 10.
    cur_sites = {**base_sites, "app::f10": (540_000, 10, 0)}
    c = compare("w", profile(base_sites), profile(cur_sites), GateSettings(top=5))
    assert [(s.key, s.status) for s in c.beyond] == [("app::f10", GREW)]
    assert c.verdict == "pass"


def test_non_determinism_is_one_statement_on_gated_metrics_only() -> None:
    gate = GateSettings(top=3)
    entry = WorkloadBaseline.from_profile("w", blessed_runs(), 15, ranged=gate.metrics)
    current = profile(RUN_SITES[0])
    swings = nondeterministic(entry, current, gate)
    # 'app::parse' varied only in its peak: not news.
    assert [(w.key, w.span) for w in swings] == [
        ("app::cache", Span(0, 90_000)),
        ("app::worker", Span(448_000, 512_000)),
    ]
    c = compare("w", entry.as_profile("b"), current, gate)
    result = WorkloadResult("w", c, runs=1, baseline_runs=3, swings=tuple(swings))
    line = noise_line(result)
    assert line is not None
    assert line.startswith("non-deterministic: 2 callsites varied between runs")
    assert "(bless: 3 runs, check: 1 run)" in line
    assert line.index("app::cache") < line.index("app::worker")  # widest swing first
    md = report_markdown(Report((result,)))
    assert "**Non-deterministic:** 2 callsites" in md
    assert "identical" not in md
    assert "Deterministic" not in md
    quiet = WorkloadResult("w", c, runs=1, baseline_runs=3)
    assert (
        noise_line(quiet) == "deterministic: every gated callsite had the same value in every run "
        "(bless: 3 runs, check: 1 run)"
    )
    assert "Deterministic: every gated callsite" in report_markdown(Report((quiet,)))
    assert "Non-deterministic" not in report_markdown(Report((quiet,)))
    round_trip = WorkloadResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert round_trip.swings == result.swings


# ---------------------------------------------------------------- hostile text everywhere

HOSTILE_UNITS = {
    "bu": "@someone",
    "bsu": "<img src=x onerror=alert(1)> #12 | `x`",
    "bksu": "[x](javascript:alert(1))\u2028line",
}


@pytest.fixture
def hostile_ad_hoc(tmp_path: Path) -> Path:
    doc = json.loads((DHAT_RS / "reqctx-base.ad-hoc.json").read_text(encoding="utf-8"))
    doc.update(HOSTILE_UNITS)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _assert_inert(md: str) -> None:
    rendered = read(md)
    assert "img" not in rendered.tags
    assert "a" not in rendered.tags
    assert "script" not in rendered.tags
    assert pings(rendered) == []
    assert "\u2028" not in md


@pytest.mark.parametrize("command", ["show", "diff"])
def test_ad_hoc_unit_strings_are_escaped_in_markdown(
    hostile_ad_hoc: Path, cli: RunCli, command: str
) -> None:
    args = [hostile_ad_hoc] if command == "show" else [hostile_ad_hoc, hostile_ad_hoc]
    code, out, err = cli(command, *args, "--format", "markdown")
    assert code == 0, err
    _assert_inert(out)
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    code, text, err = cli(command, *args)
    assert code == 0, err
    assert "<img src=x onerror=alert(1)>" in text
    assert "\u2028" not in text


def test_ad_hoc_unit_strings_stay_out_of_the_chart(hostile_ad_hoc: Path) -> None:
    from allocgate.load import load_profile

    p = load_profile(hostile_ad_hoc)
    # Every site grew, so the chart has bars (and the unit on its axis).
    grown = tuple(
        dataclasses.replace(s, metrics={m: 2 * v for m, v in s.metrics.items()})
        for s in p.callsites
    )
    c = compare(
        "w", p, dataclasses.replace(p, callsites=grown), GateSettings(metrics=("total_blocks",))
    )
    md = report_markdown(Report((WorkloadResult("w", c),)))
    _assert_inert(md)
    chart = md[md.index("```mermaid") :]
    chart = chart[: chart.index("```", 3)]
    assert "<" not in chart
    assert "@" not in chart


def test_a_huge_name_is_cut_in_text_and_markdown_but_whole_in_json(tmp_path: Path) -> None:
    huge = "app::" + "x" * 100_000
    base = profile({huge: (1_000_000, 10, 0), "app::b": (10, 1, 0)})
    cur = profile({huge: (2_000_000, 10, 0), "app::b": (10, 1, 0)})
    c = compare("w", base, cur, GateSettings(top=2))
    report = Report((WorkloadResult("w", c),))
    text = comparison_text(report.results[0])
    assert all(len(line) < 1_000 for line in text.splitlines())
    assert "…" in text
    md = report_markdown(report)
    assert len(md) < 20_000
    assert "…" in md
    doc = json.loads(report.to_json())
    assert doc["workloads"][0]["comparison"]["sites"][0]["key"] == huge
    failed = Report((WorkloadResult("w", error=f"cannot fold {huge}"),))
    assert len(report_markdown(failed)) < 5_000
    assert "…" in report_markdown(failed)
