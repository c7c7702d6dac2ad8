"""The verdict: both tolerances must be exceeded, new and gone sites, the union of both top N,
totals, and the Comparison value's dict form."""

from __future__ import annotations

import orjson
import pytest
from conftest import DHAT_RS, SAMPLES, VALGRIND

from allocgate.api import recorded_count
from allocgate.baseline import WorkloadBaseline
from allocgate.callsites import Callsite, FoldOptions
from allocgate.compare import (
    GONE,
    IMPROVED,
    NEW,
    REGRESSED,
    UNCHANGED,
    Comparison,
    GateSettings,
    compare,
)
from allocgate.errors import AllocgateError
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.quantities import Tolerance

METRICS = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes")


def site(key: str, total_bytes: int, total_blocks: int = 1, **more: int) -> Callsite:
    metrics = {"total_bytes": total_bytes, "total_blocks": total_blocks}
    metrics.update(peak_bytes=more.get("peak_bytes", 0), end_bytes=more.get("end_bytes", 0))
    return Callsite(key, metrics, f"src/main.rs:{len(key)}")


def profile(*sites: Callsite, totals: dict[str, int] | None = None, depth: int = 1) -> Profile:
    ordered = tuple(sorted(sites, key=lambda s: (-s.metrics["total_bytes"], s.key)))
    if totals is None:
        totals = {m: sum(s.metrics[m] for s in sites) for m in METRICS}
    return Profile(
        source="synthetic",
        profiler="dhat-rs",
        mode="heap",
        command="",
        metrics=METRICS,
        totals=totals,
        callsites=ordered,
        depth=depth,
    )


def judge(before: int | None, after: int | None, settings: GateSettings | None = None) -> tuple:
    settings = settings or GateSettings(top=5)
    # A large unchanged site keeps the totals out of the way.
    anchor = site("anchor", 10**9)
    base = profile(anchor, *([site("x", before)] if before is not None else []))
    cur = profile(anchor, *([site("x", after)] if after is not None else []))
    result = compare("w", base, cur, settings)
    (delta,) = [s for s in result.sites if s.key == "x"]
    return delta.status, delta.regressed_metrics


# Default for total_bytes: 5 % and 1 KiB; both must be exceeded.
BOUNDARIES = [
    # relative bound decides (absolute is easily exceeded)
    (100_000, 105_000, UNCHANGED),  # exactly +5 %
    (100_000, 105_001, REGRESSED),
    (1_000_000, 1_049_999, UNCHANGED),
    (1_000_000, 1_050_001, REGRESSED),
    # absolute bound decides (relative is easily exceeded)
    (10_000, 11_024, UNCHANGED),  # exactly +1 KiB
    (10_000, 11_025, REGRESSED),
    (1_000, 2_024, UNCHANGED),  # +102 % but only 1 KiB
    (1_000, 2_025, REGRESSED),
    (1, 1_000, UNCHANGED),  # +99,900 %, tiny
    # a site that was present with 0 bytes
    (0, 1_024, UNCHANGED),
    (0, 1_025, REGRESSED),
    # shrinking: the same two bounds
    (100_000, 95_000, UNCHANGED),
    (100_000, 94_999, IMPROVED),
    (10_000, 8_976, UNCHANGED),
    (10_000, 8_975, IMPROVED),
    (2_000, 0, IMPROVED),
    (1_024, 0, UNCHANGED),
    (7_777, 7_777, UNCHANGED),
    # new and gone
    (None, 1_024, NEW),
    (None, 1_025, NEW),
    (None, 0, NEW),
    (5_000_000, None, GONE),
    (1, None, GONE),
]


@pytest.mark.parametrize(("before", "after", "status"), BOUNDARIES)
def test_default_tolerance_boundaries(before: int | None, after: int | None, status: str) -> None:
    got, regressed = judge(before, after)
    assert got == status
    if status == NEW:
        assert regressed == (("total_bytes",) if after is not None and after > 1024 else ())
    else:
        assert regressed == (("total_bytes",) if status == REGRESSED else ())


CUSTOM = [
    # (tolerance, before, after, regressed?)
    (Tolerance(0.10, 0), 1_000, 1_100, False),
    (Tolerance(0.10, 0), 1_000, 1_101, True),
    (Tolerance(0.0, 0), 1_000, 1_001, True),
    (Tolerance(0.0, 0), 1_000, 1_000, False),
    (Tolerance(5.0, 0), 1_000, 6_000, False),  # 500 %
    (Tolerance(5.0, 0), 1_000, 6_001, True),
    (Tolerance(0.0, 1 << 20), 1, 1 << 20, False),
    (Tolerance(0.0, 1 << 20), 1, (1 << 20) + 2, True),
]


@pytest.mark.parametrize(("tolerance", "before", "after", "regressed"), CUSTOM)
def test_custom_tolerances(tolerance: Tolerance, before: int, after: int, regressed: bool) -> None:
    settings = GateSettings(top=5, tolerances={"total_bytes": tolerance})
    status, metrics = judge(before, after, settings)
    assert (status == REGRESSED) is regressed
    assert bool(metrics) is regressed


def test_new_site_tolerance_uses_the_absolute_bound_only() -> None:
    settings = GateSettings(top=5, tolerances={"total_bytes": Tolerance(0.5, 10_000)})
    assert judge(None, 10_000, settings) == (NEW, ())
    assert judge(None, 10_001, settings) == (NEW, ("total_bytes",))


def test_each_gated_metric_is_judged_on_its_own() -> None:
    settings = GateSettings(metrics=("total_bytes", "total_blocks"), top=5)
    base = profile(site("anchor", 10**9, 10**6), site("x", 100_000, 1_000))
    # Same bytes in many more, smaller blocks: allocator pressure regressed.
    cur = profile(site("anchor", 10**9, 10**6), site("x", 100_000, 1_101))
    result = compare("w", base, cur, settings)
    (x,) = [s for s in result.sites if s.key == "x"]
    assert x.status == REGRESSED
    assert x.regressed_metrics == ("total_blocks",)
    assert result.regressed


def test_ungated_metrics_never_regress() -> None:
    base = profile(site("anchor", 10**9), site("x", 100_000, end_bytes=0))
    cur = profile(site("anchor", 10**9), site("x", 100_000, end_bytes=10**8))
    result = compare("w", base, cur, GateSettings(top=5))
    assert not result.regressed


# ---------------------------------------------------------------- which sites


def test_union_of_both_top_n() -> None:
    base = profile(site("a", 900), site("b", 800), site("c", 700), site("d", 10), site("e", 5))
    cur = profile(site("a", 900), site("d", 850), site("e", 820), site("b", 12), site("c", 11))
    result = compare("w", base, cur, GateSettings(top=2))
    assert [s.key for s in result.sites] == ["a", "d", "b"]
    assert {s.key: s.rank for s in result.sites} == {"a": 1, "d": 2, "b": 4}


def test_a_site_climbing_from_rank_n_plus_1_is_compared_not_new() -> None:
    top = 5
    sites = [site(f"s{i}", 1_000_000 - i * 10_000) for i in range(20)]
    base_profile = profile(*sites)
    baseline = WorkloadBaseline.from_profile("w", base_profile, recorded_count(top))
    assert len(baseline.callsites) > top
    climber = sites[top]  # rank N+1 in the baseline
    grown = [s if s is not climber else site(climber.key, 5_000_000) for s in sites]
    result = compare("w", baseline.as_profile("baseline"), profile(*grown), GateSettings(top=top))
    (delta,) = [s for s in result.sites if s.key == climber.key]
    assert delta.status == REGRESSED
    assert delta.baseline is not None
    assert delta.baseline["total_bytes"] == climber.metrics["total_bytes"]
    assert delta.rank == 1


def test_gone_site_is_an_improvement_not_a_regression() -> None:
    base = profile(site("a", 10**6), site("b", 10**6))
    cur = profile(site("a", 10**6))
    result = compare("w", base, cur, GateSettings(top=5))
    (b,) = [s for s in result.sites if s.key == "b"]
    assert b.status == GONE
    assert b.current is None
    assert not b.is_regression
    assert result.totals.status == IMPROVED
    assert not result.regressed


def test_totals_regress_even_when_no_top_site_does() -> None:
    # 50 small sites each grow by 1000 B (under 1 KiB): none regresses, the total does.
    small = [site(f"small{i:02}", 10_000) for i in range(50)]
    grown = [site(f"small{i:02}", 11_000) for i in range(50)]
    base = profile(site("big", 100_000), *small)
    cur = profile(site("big", 100_000), *grown)
    result = compare("w", base, cur, GateSettings(top=5))
    assert not result.regressions
    assert result.totals.status == REGRESSED
    assert result.totals.regressed_metrics == ("total_bytes",)
    assert result.regressed
    assert result.verdict == "regressed"


def test_depth_mismatch_is_refused() -> None:
    base = profile(site("a", 1), depth=1)
    cur = profile(site("a", 1), depth=2)
    with pytest.raises(AllocgateError, match="depth"):
        compare("w", base, cur, GateSettings())


def test_a_metric_the_profile_lacks_is_refused() -> None:
    ad_hoc = load_profile(DHAT_RS / "reqctx-base.ad-hoc.json")
    with pytest.raises(AllocgateError, match="peak_bytes"):
        compare("w", ad_hoc, ad_hoc, GateSettings(metrics=("peak_bytes",)))


# ---------------------------------------------------------------- real profiles

REAL = [
    # (before, after, regressed sites, totals regressed)
    (
        "dhat-rs/reqctx-base.json",
        "dhat-rs/reqctx-regressed.json",
        {"reqctx::render_response", "reqctx::is_canary_wasteful"},
        True,
    ),
    (
        "valgrind-dhat/reqctx-base.json",
        "valgrind-dhat/reqctx-regressed.json",
        {"reqctx::render_response", "reqctx::is_canary_wasteful"},
        True,
    ),
    ("dhat-rs/reqctx-base.json", "dhat-rs/determinism/reqctx-base.run2.json", set(), False),
    (
        "valgrind-dhat/reqctx-base.json",
        "valgrind-dhat/determinism/reqctx-base.run1.json",
        set(),
        False,
    ),
    ("dhat-rs/reqctx-base.json", "dhat-rs/reqctx-improved.json", set(), False),
    ("valgrind-dhat/reqctx-regressed.json", "valgrind-dhat/reqctx-base.json", set(), False),
]


@pytest.mark.parametrize(("before", "after", "regressed", "total"), REAL)
def test_real_profiles(before: str, after: str, regressed: set[str], total: bool) -> None:
    result = compare(
        "reqctx", load_profile(SAMPLES / before), load_profile(SAMPLES / after), GateSettings()
    )
    assert {s.key for s in result.regressions} == regressed
    assert result.totals.is_regression is total
    assert result.regressed is bool(regressed or total)


def test_regressed_sample_statuses() -> None:
    result = compare(
        "reqctx",
        load_profile(DHAT_RS / "reqctx-base.json"),
        load_profile(DHAT_RS / "reqctx-regressed.json"),
        GateSettings(),
    )
    by_key = {s.key: s for s in result.sites}
    # samples/README.md: render_response's scratch buffer 12.8 MB → 51.2 MB at the same
    # call site; is_canary_wasteful is new.
    render = by_key["reqctx::render_response"]
    assert render.status == REGRESSED
    assert render.baseline is not None
    assert render.current is not None
    assert render.current["total_bytes"] - render.baseline["total_bytes"] == 38_400_000
    assert by_key["reqctx::is_canary_wasteful"].status == NEW
    assert by_key["reqctx::split_fields"].status == UNCHANGED
    assert result.sites[0].rank == 1


def test_improved_sample_reports_improvements() -> None:
    result = compare(
        "reqctx",
        load_profile(VALGRIND / "reqctx-base.json"),
        load_profile(VALGRIND / "reqctx-improved.json"),
        GateSettings(),
    )
    statuses = {s.key: s.status for s in result.sites}
    assert statuses.pop("reqctx::build_context") == GONE
    assert set(statuses.values()) == {UNCHANGED}
    assert result.totals.status == IMPROVED


# ---------------------------------------------------------------- the value's dict form


@pytest.mark.parametrize(
    "settings",
    [
        GateSettings(),
        GateSettings(
            metrics=("total_bytes", "total_blocks"),
            top=3,
            tolerances={"total_bytes": Tolerance(0.1, 4096), "total_blocks": Tolerance(0.0, 7)},
        ),
    ],
)
def test_comparison_dict_round_trip(settings: GateSettings) -> None:
    result = compare(
        "reqctx",
        load_profile(DHAT_RS / "reqctx-base.json", FoldOptions(depth=2)),
        load_profile(DHAT_RS / "reqctx-regressed.json", FoldOptions(depth=2)),
        settings,
    )
    data = orjson.loads(orjson.dumps(result.to_dict()))
    back = Comparison.from_dict(data)
    assert back.sites == result.sites
    assert back.totals == result.totals
    assert (back.workload, back.profiler, back.units) == (
        result.workload,
        result.profiler,
        result.units,
    )
    assert back.settings.metrics == result.settings.metrics
    assert back.settings.top == result.settings.top
    for metric in settings.metrics:
        assert back.settings.tolerance(metric) == result.settings.tolerance(metric)
    assert back.verdict == result.verdict == data["verdict"]
    assert back.to_dict() == result.to_dict()
    if settings.tolerances:
        assert back == result
