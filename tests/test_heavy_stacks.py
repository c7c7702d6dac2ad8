"""A regressed site's heaviest stacks, each with its own delta (issue 10, item 6).

The fold keeps per shown site its heaviest program points labelled by caller;
the baseline records their values; compare gives each current stack the delta
against the same caller's baseline value.
"""

from __future__ import annotations

from pathlib import Path

from conftest import SAMPLES
from test_compare import profile, site

from allocgate.baseline import WorkloadBaseline
from allocgate.baseline_file import parse_baseline, render_workload
from allocgate.callsites import (
    HEAVIEST,
    KEY_SEPARATOR,
    NO_CALLER,
    Callsite,
    FoldOptions,
    HeavyStack,
)
from allocgate.compare import GateSettings, compare
from allocgate.load import load_profile
from allocgate.render.cells import stack_delta_text


def with_stacks(base: Callsite, *stacks: tuple[str, int]) -> Callsite:
    return Callsite(
        base.key,
        base.metrics,
        base.location,
        stacks=tuple(HeavyStack(via, value, (f"{via}_frame",)) for via, value in stacks),
    )


def round_trip(sites: tuple[Callsite, ...]) -> tuple[Callsite, ...]:
    """Through the baseline file, as a bless writes it and a check reads it."""
    blessed = WorkloadBaseline.from_profile("w", profile(*sites), keep=10)
    text = "version: 2\nworkloads:\n" + render_workload(blessed)
    return parse_baseline(text, Path("allocgate-baseline.yml")).get("w").callsites


def test_each_stack_carries_its_own_delta_against_the_same_caller() -> None:
    before = round_trip(
        (with_stacks(site("app::load", 10_000), ("app::cli", 6_000), ("app::serve", 4_000)),)
    )
    assert {s.via: s.value for s in before[0].stacks} == {"app::cli": 6_000, "app::serve": 4_000}
    assert before[0].stacks[0].frames == (), "a baseline records values, not frames"
    after = with_stacks(
        site("app::load", 40_000),
        ("app::serve", 30_000),
        ("app::cli", 6_000),
        ("app::batch", 4_000),
    )
    result = compare("w", profile(*before), profile(after), GateSettings())
    (regressed,) = result.regressions
    grew, new, same = regressed.stacks
    # The caller that grew comes first, with the positive delta; an unchanged one has none.
    assert (grew.via, grew.baseline, grew.current, grew.delta) == (
        "app::serve",
        4_000,
        30_000,
        26_000,
    )
    assert (new.via, new.baseline, new.delta) == ("app::batch", None, 4_000)
    assert (same.via, same.delta) == ("app::cli", 0)
    assert grew.frames == ("app::serve_frame",)
    assert stack_delta_text(grew, {}) == "+25.4 KiB (3.9 KiB → 29.3 KiB)"
    assert stack_delta_text(new, {}) == "new, 3.9 KiB"
    # Survives the JSON report (xdist workers and --report-json).
    assert type(result).from_dict(result.to_dict()).sites[0].stacks == regressed.stacks


def test_a_baseline_without_stacks_still_reads_and_every_stack_is_new() -> None:
    text = (
        "version: 2\nworkloads:\n  w:\n    profiler: dhat-rs\n    totals: {total_bytes: 10}\n"
        "    callsites:\n    - {key: app::load, total_bytes: 10000, total_blocks: 1}\n"
    )
    before = parse_baseline(text, Path("b.yml")).get("w")
    assert before.callsites[0].stacks == ()
    after = with_stacks(site("app::load", 40_000), ("app::serve", 40_000))
    (regressed,) = compare("w", before.as_profile("b"), profile(after), GateSettings()).regressions
    assert [(s.via, s.baseline, s.delta) for s in regressed.stacks] == [
        ("app::serve", None, 40_000)
    ]


def test_unregressed_sites_carry_no_stack_deltas() -> None:
    one = with_stacks(site("app::load", 10_000), ("app::cli", 10_000))
    result = compare("w", profile(*round_trip((one,))), profile(one), GateSettings())
    assert not result.regressions
    assert all(s.stacks == () for s in result.sites)


def test_the_fold_keeps_the_heaviest_stacks_by_caller() -> None:
    folded = load_profile(SAMPLES / "dhat-rs/reqctx-base.json", FoldOptions(depth=1))
    deeper = {
        s.key
        for s in load_profile(SAMPLES / "dhat-rs/reqctx-base.json", FoldOptions(depth=2)).callsites
    }
    shown = [s for s in folded.callsites if s.stack]
    assert shown
    for s in shown:
        assert 1 <= len(s.stacks) <= HEAVIEST
        values = [h.value for h in s.stacks]
        assert values == sorted(values, reverse=True)
        assert sum(values) <= s.metrics["total_bytes"]
        assert len({h.via for h in s.stacks}) == len(s.stacks)
        # The site's own stack (its heaviest program point) is one of them.
        assert s.stack in [h.frames for h in s.stacks]
        name = s.key.split(" → ")[0]
        for h in s.stacks:
            # A caller label is what a depth-2 key names after the key's function.
            if h.via != NO_CALLER:
                assert any(k.startswith(f"{name}{KEY_SEPARATOR}{h.via}") for k in deeper), h.via
