"""Run statistics (allocgate.runs) over real profiles whose runs differ."""

from __future__ import annotations

import statistics

import pytest
from conftest import DHAT_RS

from allocgate.envelope import Span
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.runs import combine_runs, profile_swings

THREADS = [DHAT_RS / "determinism" / f"threads.run{i}.json" for i in (1, 2, 3)]


def _value(profile: Profile, key: str, metric: str = "total_bytes") -> int:
    return next((s.metrics[metric] for s in profile.callsites if s.key == key), 0)


@pytest.fixture(scope="module")
def threads() -> list[Profile]:
    return [load_profile(p) for p in THREADS]


def test_threaded_runs_give_the_median_and_the_range(threads: list[Profile]) -> None:
    combined = combine_runs(threads)
    key = "threads::worker_loop"
    per_run = [_value(p, key) for p in threads]
    assert len(set(per_run)) == 3  # the sample really varies between runs
    assert combined.runs == 3
    assert combined.spans[key]["total_bytes"] == Span(min(per_run), max(per_run))
    assert _value(combined, key) == statistics.median_low(per_run)
    keys = [s.key for s in combined.callsites]
    unstable = [w.key for w in profile_swings(combined, combined.metrics, keys)]
    for metric in combined.metrics:
        assert combined.totals[metric] == statistics.median_low(p.totals[metric] for p in threads)
    # The site that varied most comes first; sites equal in every run are not flagged.
    assert unstable[0] == key
    steady = [
        s.key
        for s in threads[0].callsites
        if all(
            _value(p, s.key, m) == _value(threads[0], s.key, m)
            for p in threads
            for m in threads[0].metrics
        )
    ]
    assert steady
    assert not set(steady) & set(unstable)
    ranked = [s.metrics["total_bytes"] for s in combined.callsites]
    assert ranked == sorted(ranked, reverse=True)


def test_a_site_missing_from_some_runs_counts_zero_there_and_is_flagged() -> None:
    base = load_profile(DHAT_RS / "reqctx-base.json")
    regressed = load_profile(DHAT_RS / "reqctx-regressed.json")
    combined = combine_runs([base, regressed, base])
    new = "reqctx::is_canary_wasteful"
    assert _value(base, new) == 0
    assert combined.spans[new]["total_bytes"] == Span(0, _value(regressed, new))
    assert _value(combined, new) == 0
    keys = [s.key for s in combined.callsites]
    assert new in [w.key for w in profile_swings(combined, ("total_bytes",), keys)]
    # One outlier run in three does not move the median.
    for site in base.callsites:
        assert _value(combined, site.key) == site.metrics["total_bytes"], site.key
    assert combined.totals == base.totals


def test_two_runs_take_the_mean_of_the_middle_pair(threads: list[Profile]) -> None:
    combined = combine_runs(threads[:2])
    key = "threads::worker_loop"
    a, b = (_value(p, key) for p in threads[:2])
    assert a != b
    assert combined.spans[key]["total_bytes"] == Span(min(a, b), max(a, b))
    assert _value(combined, key) == (a + b) // 2


def test_one_run_is_returned_as_it_is(threads: list[Profile]) -> None:
    assert combine_runs(threads[:1]) == threads[0]
