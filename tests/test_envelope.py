"""The noise envelope: ranges over runs, absent sites as zero, the judgement at its
boundaries (relative AND absolute, from the edge of the range), and which sites swung."""

from __future__ import annotations

import pytest

from allocgate.envelope import Span, collect, grew, median, shrank, spans_of, swings
from allocgate.quantities import Tolerance

TOL = Tolerance(0.05, 1024)


def test_span_of_values_and_point() -> None:
    assert Span.of([5, 3, 9]) == Span(3, 9)
    assert Span.point(7) == Span(7, 7)
    assert Span(3, 9).width == 6
    assert Span.point(7).width == 0
    assert Span(50, 100).relative_width() == 0.5
    assert Span(0, 0).relative_width() == 0.0
    with pytest.raises(ValueError, match="above"):
        Span(2, 1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([3], 3), ([1, 9, 5], 5), ([4, 1], 2), ([1, 2, 3, 10], 2), ([7, 7, 7], 7)],
)
def test_median(values: list[int], expected: int) -> None:
    assert median(values) == expected


# Recorded range 100_000..104_000 (a swing of 4_000). The tolerance allows 5% of
# the high edge (5_200) and at least 1 KiB: growth counts only past 109_200.
NARROW = Span(100_000, 104_000)
GROWTH = [
    (Span.point(104_000), False),  # at the edge
    (Span.point(109_200), False),  # exactly the tolerance past it: not more than
    (Span.point(109_201), True),  # one byte more
    (Span(100_000, 130_000), False),  # one of the current runs is still in range
    (Span(109_201, 113_000), True),  # every current run left the range, by more than its swing
    (Span(109_201, 115_000), False),  # ... but not by more than the check's own swing (5_799)
    (Span.point(60_000), False),
]


@pytest.mark.parametrize(("current", "expected"), GROWTH)
def test_growth_is_judged_from_the_high_edge(current: Span, expected: bool) -> None:
    assert grew(TOL, NARROW, current) is expected


SHRINK = [
    (Span.point(100_000), False),
    (Span.point(95_000), False),  # exactly 5% of the low edge below it
    (Span.point(94_999), True),
    (Span(90_000, 101_000), False),
    (Span(0, 0), True),
]


@pytest.mark.parametrize(("current", "expected"), SHRINK)
def test_shrinkage_is_judged_from_the_low_edge(current: Span, expected: bool) -> None:
    assert shrank(TOL, NARROW, current) is expected


# A site that swung by 25% between the bless runs (three or four per-thread caches
# of 240 KiB): a fifth cache is as likely as the fourth was, a 30% growth is not.
WIDE = Span(720_000, 960_000)


@pytest.mark.parametrize(
    ("current", "growth", "shrinkage"),
    [
        (Span.point(1_200_000), False, False),  # the swing again (+25%): not more than it
        (Span.point(1_200_001), True, False),
        (Span.point(1_248_000), True, False),  # +30% of the high edge
        (Span.point(480_000), False, False),  # one cache fewer than the fewest seen
        (Span.point(479_999), False, True),
    ],
)
def test_a_site_must_also_move_by_more_than_its_swing(
    current: Span, growth: bool, shrinkage: bool
) -> None:
    assert grew(TOL, WIDE, current) is growth
    assert shrank(TOL, WIDE, current) is shrinkage


def test_absolute_tolerance_keeps_small_sites_quiet() -> None:
    # +100% but only 1000 bytes: below the absolute tolerance of 1 KiB.
    assert not grew(TOL, Span(500, 1000), Span.point(2000))
    assert grew(TOL, Span(500, 1000), Span.point(2025))


def test_a_zero_width_range_is_the_plain_rule() -> None:
    for base, cur in [(100_000, 105_000), (100_000, 105_001), (100_000, 110_000), (0, 1025)]:
        assert grew(TOL, Span.point(base), Span.point(cur)) == TOL.exceeded_by(base, cur)
        assert shrank(TOL, Span.point(cur), Span.point(base)) == TOL.improved_by(cur, base)


RUNS = [
    {"a": {"total_bytes": 100, "peak_bytes": 10}, "b": {"total_bytes": 50, "peak_bytes": 5}},
    {"a": {"total_bytes": 100, "peak_bytes": 12}, "b": {"total_bytes": 80, "peak_bytes": 5}},
    {"a": {"total_bytes": 100, "peak_bytes": 11}, "c": {"total_bytes": 7000, "peak_bytes": 1}},
]
METRICS = ("total_bytes", "peak_bytes")


def test_collect_counts_an_absent_site_as_zero() -> None:
    sites = collect(RUNS, METRICS)
    assert sorted(sites) == ["a", "b", "c"]
    assert sites["b"].values["total_bytes"] == (50, 80, 0)
    assert sites["b"].span("total_bytes") == Span(0, 80)
    assert sites["b"].median("total_bytes") == 50
    assert sites["b"].present == 2
    assert sites["c"].values["total_bytes"] == (0, 0, 7000)
    assert sites["c"].median("total_bytes") == 0
    assert sites["a"].span("peak_bytes") == Span(10, 12)
    assert not sites["a"].varied("total_bytes")


def test_swings_list_gated_metrics_only_largest_first() -> None:
    spans = spans_of(collect(RUNS, METRICS).values(), METRICS)
    # 'a' varied only in its peak: when only total_bytes is gated, that is not news.
    found = swings(spans, ("total_bytes",))
    assert [(s.key, s.span) for s in found] == [("c", Span(0, 7000)), ("b", Span(0, 80))]
    both = swings(spans, ("total_bytes", "peak_bytes"))
    assert [(s.key, s.metric) for s in both] == [
        ("c", "total_bytes"),
        ("b", "total_bytes"),
        ("a", "peak_bytes"),
    ]


def test_one_run_has_no_swings() -> None:
    spans = spans_of(collect(RUNS[:1], METRICS).values(), METRICS)
    assert swings(spans, METRICS) == []
    assert all(span.width == 0 for by in spans.values() for span in by.values())
