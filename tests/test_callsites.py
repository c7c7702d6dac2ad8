"""Folding real stacks into callsites: user code first, the same keys from every back end,
build and run, and names normalised so that unrelated changes keep them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from conftest import DHAT_RS, SAMPLES, VALGRIND

from allocgate.callsites import KEY_SEPARATOR, FoldOptions, normalize_function, strip_generics
from allocgate.load import load_profile
from allocgate.profile import Profile


def load(name: str, depth: int = 1, skip: tuple[str, ...] = ()) -> Profile:
    return load_profile(SAMPLES / name, FoldOptions(depth=depth, skip=skip))


def by_key(profile: Profile) -> dict[str, dict[str, int]]:
    return {s.key: s.metrics for s in profile.callsites}


# ---------------------------------------------------------------- user code first


def test_reqctx_top_sites_are_its_own_functions() -> None:
    profile = load("dhat-rs/reqctx-base.json")
    assert [s.key for s in profile.callsites[:8]] == [
        "reqctx::split_fields",
        "reqctx::build_context",
        "reqctx::render_response",
        "reqctx::read_request_line",
        "reqctx::word_counts",
        "reqctx::count_route",
        "reqctx::make_log",
        # The closure `word_counts` maps with keys under its function now.
        "reqctx::main",
    ]
    top = profile.callsites[0]
    # samples/README.md: split_fields main.rs:90, 34,770,970 B in 700,000 blocks.
    assert top.metrics["total_bytes"] == 34_770_970
    assert top.metrics["total_blocks"] == 700_000
    assert top.location == "reqctx/src/main.rs:90"


ALLOCATOR_WORDS = (
    "dhat",
    "alloc::",
    "malloc",
    "calloc",
    "__rust",
    "__rg_",
    "raw_vec",
    "[allocator]",
)


@pytest.mark.parametrize(
    "name",
    [
        "dhat-rs/reqctx-base.json",
        "dhat-rs/reqctx-base.release-nodebug.json",
        "valgrind-dhat/reqctx-base.json",
        "valgrind-dhat/reqctx-regressed.json",
        "dhat-rs/reqctx-regressed.json",
    ],
)
def test_no_key_names_an_allocator_frame(name: str) -> None:
    for site in load(name).callsites:
        assert not any(word in site.key for word in ALLOCATOR_WORDS), site.key


# (sample, crate prefix): every callsite holding at least 1 % of the bytes is the
# program's own code, never a std function the allocation passed through.
BIG_SITES = [
    (f"{backend}/{name}.json", prefix)
    for backend in ("dhat-rs", "valgrind-dhat")
    for name, prefix in (
        ("reqctx-base", "reqctx::"),
        ("reqctx-regressed", "reqctx::"),
        ("reqctx-improved", "reqctx::"),
        ("leaky", "leaky::"),
        ("threads", "threads::"),
        ("manysites", "manysites::"),
    )
]


@pytest.mark.parametrize(("name", "prefix"), BIG_SITES)
def test_every_big_callsite_is_user_code(name: str, prefix: str) -> None:
    profile = load(name)
    floor = profile.totals["total_bytes"] // 100
    big = [s.key for s in profile.callsites if s.metrics["total_bytes"] >= floor]
    assert big
    assert [k for k in big if not k.startswith(prefix)] == []


# ---------------------------------------------------------------- the same across back ends

# dhat-rs and Valgrind DHAT agree exactly on tb/tbk per user call site
# (samples/README.md, "Same program, different numbers").
# reqctx functions the compiler inlined into main: dhat-rs names them, Valgrind
# prints only `load_config` and `parse_args` (no module path).
INLINED = {"reqctx::load_config": "reqctx::main", "reqctx::parse_args": "reqctx::main"}
BACKENDS = [
    ("reqctx-base", "reqctx::", ()),
    # The Valgrind build (no #[global_allocator]) optimised the mem::forget'd
    # allocation away: README, "leaky's mem::forget ... shows in dhat-rs but not".
    ("leaky", "leaky::", ("leaky::forget_scratch",)),
    ("reqctx-improved", "reqctx::", ()),
    ("manysites", "manysites::", ()),
]


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize(("name", "prefix", "dhat_rs_only"), BACKENDS)
def test_dhat_rs_and_valgrind_name_the_same_callsites(
    name: str, prefix: str, dhat_rs_only: tuple[str, ...], depth: int
) -> None:
    a = load(f"dhat-rs/{name}.json", depth)
    b = load(f"valgrind-dhat/{name}.json", depth)

    def mine(p: Profile) -> dict[str, tuple[int, int]]:
        sums: dict[str, tuple[int, int]] = {}
        for s in p.callsites:
            first = s.key.split(KEY_SEPARATOR)[0]
            if not s.key.startswith(prefix) or first in dhat_rs_only:
                continue
            key = s.key
            if first in INLINED:
                # Valgrind prints these inlined functions by their short name and,
                # without the binary at hand, the fold names no one after a
                # neighbour: their bytes stay with the caller.
                key = INLINED[first]
            tb, tbk = sums.get(key, (0, 0))
            sums[key] = (tb + s.metrics["total_bytes"], tbk + s.metrics["total_blocks"])
        return sums

    assert mine(a) == mine(b)


def test_valgrind_and_dhat_rs_locations_agree_on_the_line() -> None:
    a = {s.key: s.location for s in load("dhat-rs/reqctx-base.json").callsites}
    b = {s.key: s.location for s in load("valgrind-dhat/reqctx-base.json").callsites}
    # dhat-rs prints reqctx/src/main.rs, Valgrind only main.rs; the line is the same.
    assert a["reqctx::split_fields"] == "reqctx/src/main.rs:90"
    assert b["reqctx::split_fields"] == "main.rs:90"
    for key in ("reqctx::build_context", "reqctx::render_response", "reqctx::word_counts"):
        assert a[key] is not None
        assert b[key] is not None
        assert a[key].rsplit("/", 1)[-1] == b[key], key


# ---------------------------------------------------------------- the same across runs

RUNS = {
    "dhat-rs reqctx-base": [
        DHAT_RS / "reqctx-base.json",
        *sorted((DHAT_RS / "determinism").glob("reqctx-base.run*.json")),
    ],
    "valgrind reqctx-base": [
        VALGRIND / "reqctx-base.json",
        *sorted((VALGRIND / "determinism").glob("reqctx-base.run*.json")),
    ],
}


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("runs", RUNS.values(), ids=RUNS.keys())
def test_reruns_fold_to_identical_callsites(runs: list[Path], depth: int) -> None:
    assert len(runs) == 4
    folded = [load_profile(p, FoldOptions(depth=depth)) for p in runs]
    for profile in folded[1:]:
        assert profile.callsites == folded[0].callsites
        assert profile.totals == folded[0].totals


def test_dhat_rs_reruns_have_different_addresses() -> None:
    # The point of the test above: the raw frame tables differ.
    texts = [p.read_text(encoding="utf-8") for p in RUNS["dhat-rs reqctx-base"][1:]]
    ftbls = [t[t.index('"ftbl"') :] for t in texts]
    assert len(set(ftbls)) == len(ftbls)


def test_threads_reruns_fold_to_the_same_keys() -> None:
    # Scheduling changes the numbers, not where allocations come from.
    runs = sorted((DHAT_RS / "determinism").glob("threads.run*.json"))
    keys = [{s.key for s in load_profile(p).callsites} for p in runs]
    assert keys[0] == keys[1] == keys[2]
    assert "threads::worker_loop" in keys[0]


# ---------------------------------------------------------------- depth


def test_depth_two_names_the_caller() -> None:
    keys = {s.key for s in load("dhat-rs/reqctx-base.json", depth=2).callsites}
    assert "reqctx::split_fields ← reqctx::handle_requests" in keys
    # Closures fold under their function: word_counts' closure is word_counts.
    assert "reqctx::word_counts ← reqctx::main" in keys
    assert not any("{closure}" in k for k in keys)
    assert "reqctx::make_log ← reqctx::main" in keys
    # main has no user caller: its key stays one frame long.
    assert "reqctx::main" in keys


@pytest.mark.parametrize("name", ["dhat-rs/reqctx-base.json", "valgrind-dhat/reqctx-base.json"])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_deeper_keys_refine_shallower_ones(name: str, depth: int) -> None:
    shallow = load(name, depth=depth - 1)
    deep = load(name, depth=depth)
    assert deep.totals == shallow.totals
    regrouped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for site in deep.callsites:
        frames = site.key.split(KEY_SEPARATOR)
        assert 1 <= len(frames) <= depth
        assert len(set(frames)) == len(frames) or "{closure}" in site.key, site.key
        for metric, value in site.metrics.items():
            regrouped[KEY_SEPARATOR.join(frames[: depth - 1])][metric] += value
    assert {k: dict(v) for k, v in regrouped.items()} == by_key(shallow)


# ---------------------------------------------------------------- skip patterns


@pytest.mark.parametrize("name", ["dhat-rs/reqctx-base.json", "valgrind-dhat/reqctx-base.json"])
def test_skip_pattern_moves_the_key_to_the_caller(name: str) -> None:
    plain = by_key(load(name))
    skipped = by_key(load(name, skip=(r"^reqctx::split_fields$",)))
    assert "reqctx::split_fields" not in skipped
    moved = plain["reqctx::split_fields"]
    caller = plain.get("reqctx::handle_requests", dict.fromkeys(moved, 0))
    assert skipped["reqctx::handle_requests"] == {m: caller[m] + moved[m] for m in moved}
    # Everything else is untouched.
    for key, metrics in plain.items():
        if key not in ("reqctx::split_fields", "reqctx::handle_requests"):
            assert skipped[key] == metrics, key


def test_several_skip_patterns_and_depth_combine() -> None:
    profile = load(
        "dhat-rs/reqctx-base.json",
        depth=2,
        skip=(r"split_fields", r"^reqctx::build_context$"),
    )
    keys = {s.key for s in profile.callsites}
    assert not any("split_fields" in k or "build_context" in k for k in keys)
    assert "reqctx::handle_requests ← reqctx::main" in keys


def test_skipping_every_user_frame_still_accounts_for_every_byte() -> None:
    profile = load("dhat-rs/reqctx-base.json", skip=(r"^reqctx::",))
    assert not any(s.key.startswith("reqctx::") for s in profile.callsites)
    assert sum(s.metrics["total_bytes"] for s in profile.callsites) == 82_623_189


# ---------------------------------------------------------------- names

NAMES = [
    # Legacy symbol hashes go; a 15-digit suffix is not a hash.
    ("reqctx::main::h4ea3e6cbe49eb36c", "reqctx::main"),
    ("reqctx::main::h4ea3e6cbe49eb36", "reqctx::main::h4ea3e6cbe49eb36"),
    (
        "<alloc::string::String as core::clone::Clone>::clone::h0123456789abcdef",
        "<alloc::string::String as core::clone::Clone>::clone",
    ),
    # dhat-rs spells closures {{closure}}, Valgrind {closure#N}.
    ("reqctx::word_counts::{{closure}}", "reqctx::word_counts::{closure}"),
    ("reqctx::word_counts::{closure#0}", "reqctx::word_counts::{closure}"),
    ("reqctx::word_counts::{closure#12}", "reqctx::word_counts::{closure}"),
    ("std::rt::lang_start::{{closure}}", "std::rt::lang_start::{closure}"),
    # Qualified paths keep their brackets, lose the generics inside.
    ("<Vec<T> as Clone>::clone", "<Vec as Clone>::clone"),
    (
        "<alloc::vec::Vec<T,A> as core::clone::Clone>::clone",
        "<alloc::vec::Vec as core::clone::Clone>::clone",
    ),
    ("<hashbrown::map::HashMap<K,V,S,A>>::entry", "<hashbrown::map::HashMap>::entry"),
    ("<reqctx::Foo as core::ops::Drop>::drop", "<reqctx::Foo as core::ops::Drop>::drop"),
    ("<&T as core::fmt::Display>::fmt", "<&T as core::fmt::Display>::fmt"),
    ("<[T]>::to_vec", "<[T]>::to_vec"),
    # Generic arguments go, including function pointer types with their `->`.
    ("alloc::vec::Vec<T>::push::<u8>", "alloc::vec::Vec::push"),
    ("reqctx::apply::<fn(&str) -> String>", "reqctx::apply"),
    (
        "core::iter::adapters::map::Map<I, fn(&str) -> alloc::string::String>::next",
        "core::iter::adapters::map::Map::next",
    ),
    (
        "from_iter<alloc::string::String, core::iter::adapters::map::Map<core::str::iter::Split<char>, fn(&str) -> alloc::string::String>>",
        "from_iter",
    ),
    ("reqctx::Parser<'a>::parse::<reqctx::Map<K, V>>", "reqctx::Parser::parse"),
    ("  reqctx::main  ", "reqctx::main"),
]


@pytest.mark.parametrize(("raw", "normal"), NAMES, ids=[r for r, _ in NAMES])
def test_normalize_function(raw: str, normal: str) -> None:
    assert normalize_function(raw) == normal
    # Normal forms are fixed points.
    assert normalize_function(normal) == normal


STRIPPED = [
    ("Vec<T>", "Vec"),
    ("<Vec<T> as Clone>::clone", "<Vec as Clone>::clone"),
    ("a::b<fn(&str) -> String>::c", "a::b::c"),
    ("a::b<fn(u8) -> Vec<u8>>::c", "a::b::c"),
    ("a::b::<X<Y<Z>>>", "a::b"),
    ("no_generics::here", "no_generics::here"),
]


@pytest.mark.parametrize(("raw", "stripped"), STRIPPED)
def test_strip_generics(raw: str, stripped: str) -> None:
    assert strip_generics(raw) == stripped


def test_keys_are_normalised_in_real_profiles() -> None:
    for name in (
        "dhat-rs/reqctx-base.json",
        "valgrind-dhat/reqctx-base.json",
        "dhat-rs/threads.json",
    ):
        for site in load(name, depth=3).callsites:
            assert "{{closure}}" not in site.key
            assert "{closure#" not in site.key
            assert "::h" not in site.key.replace("::handle", ""), site.key
            assert "<T>" not in site.key
