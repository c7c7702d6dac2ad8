"""Loading the real DHAT profiles (dhat-rs and Valgrind DHAT): totals, kinds, units, slicing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import DHAT_RS, DHAT_SAMPLES, SAMPLES, VALGRIND, dhat_json, sample_id

import allocgate.profilers.dhat_json
from allocgate.callsites import FoldOptions
from allocgate.errors import ProfileError
from allocgate.frames import Frame
from allocgate.load import load_profile, sniff
from allocgate.profilers.dhat_json import parse_frame

HEAP = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes")
FIELDS = {"total_bytes": "tb", "total_blocks": "tbk", "peak_bytes": "gb", "end_bytes": "eb"}


def expected_totals(path: Path) -> dict[str, int]:
    """Sums of tb/tbk (and gb/eb for heap profiles), computed with plain ``json``."""
    doc = dhat_json(path)
    metrics = HEAP if "ad-hoc" not in doc["mode"] else ("total_bytes", "total_blocks")
    return {m: sum(pp[FIELDS[m]] for pp in doc["pps"]) for m in metrics}


def test_every_sample_is_in_the_table() -> None:
    names = {sample_id(p) for p in DHAT_SAMPLES}
    # Determinism reruns of both back ends, ad hoc mode, the release build
    # without debug info and the dev build are all there.
    assert {
        "dhat-rs/determinism/reqctx-base.run2.json",
        "valgrind-dhat/determinism/threads.run3.json",
        "dhat-rs/reqctx-base.ad-hoc.json",
        "dhat-rs/reqctx-base.release-nodebug.json",
        "dhat-rs/reqctx-base-10000.dev.json",
        "valgrind-dhat/manysites.json",
    } <= names
    assert len(names) == 27


@pytest.mark.parametrize("path", DHAT_SAMPLES, ids=sample_id)
def test_sample_loads_with_the_totals_of_its_program_points(path: Path) -> None:
    doc = dhat_json(path)
    profile = load_profile(path)
    assert profile.totals == expected_totals(path)
    assert profile.points == len(doc["pps"])
    assert profile.command == doc["cmd"]
    assert profile.source == str(path)
    assert profile.callsites, "no callsites"


@pytest.mark.parametrize("path", DHAT_SAMPLES, ids=sample_id)
def test_callsites_sum_to_the_totals(path: Path) -> None:
    profile = load_profile(path)
    for metric in profile.metrics:
        assert sum(s.metrics[metric] for s in profile.callsites) == profile.totals[metric], metric
    assert sum(s.points for s in profile.callsites) == profile.points
    assert len({s.key for s in profile.callsites}) == len(profile.callsites)


@pytest.mark.parametrize("path", DHAT_SAMPLES, ids=sample_id)
def test_callsites_are_sorted_largest_first(path: Path) -> None:
    profile = load_profile(path)
    ranks = [(-s.metrics["total_bytes"], s.key) for s in profile.callsites]
    assert ranks == sorted(ranks)


KINDS = [
    ("dhat-rs/reqctx-base.json", "dhat-rs", "heap"),
    ("dhat-rs/reqctx-base.ad-hoc.json", "dhat-rs", "ad-hoc"),
    ("dhat-rs/reqctx-base.release-nodebug.json", "dhat-rs", "heap"),
    ("dhat-rs/reqctx-base-10000.dev.json", "dhat-rs", "heap"),
    ("dhat-rs/determinism/threads.run1.json", "dhat-rs", "heap"),
    ("valgrind-dhat/reqctx-base.json", "valgrind-dhat", "heap"),
    ("valgrind-dhat/leaky.json", "valgrind-dhat", "heap"),
    ("valgrind-dhat/determinism/reqctx-base.run3.json", "valgrind-dhat", "heap"),
]


@pytest.mark.parametrize(("name", "profiler", "mode"), KINDS)
def test_profiler_and_mode_come_from_the_content(
    name: str, profiler: str, mode: str, tmp_path: Path
) -> None:
    # No extension: only the bytes can tell.
    copy = tmp_path / "profile"
    shutil.copyfile(SAMPLES / name, copy)
    assert sniff(copy) == "dhat"
    profile = load_profile(copy)
    assert (profile.profiler, profile.mode) == (profiler, mode)
    assert profile.metrics == (HEAP if mode == "heap" else HEAP[:2])
    assert profile.totals == expected_totals(SAMPLES / name)


def test_ad_hoc_profile_carries_its_units() -> None:
    profile = load_profile(DHAT_RS / "reqctx-base.ad-hoc.json")
    assert profile.units == {"total_bytes": "units", "total_blocks": "events"}
    assert profile.metrics == ("total_bytes", "total_blocks")
    assert "peak_bytes" not in profile.totals
    assert [(s.key, s.metrics["total_bytes"]) for s in profile.callsites] == [
        ("reqctx::render_response", 8_566_890),
        ("reqctx::split_fields", 500_000),
    ]


def test_valgrind_ad_hoc_units_are_taken_from_the_file(tmp_path: Path) -> None:
    # Valgrind's ad-hoc mode names its units in 'bsu'/'bksu' like dhat-rs does.
    doc = dhat_json(DHAT_RS / "reqctx-base.ad-hoc.json")
    doc.update(mode="ad-hoc", bsu="requests", bksu="calls")
    path = tmp_path / "dhat.out.1"
    path.write_text(json.dumps(doc), encoding="utf-8")
    profile = load_profile(path)
    assert (profile.profiler, profile.mode) == ("valgrind-dhat", "ad-hoc")
    assert profile.units == {"total_bytes": "requests", "total_blocks": "calls"}


@pytest.mark.parametrize(
    "name",
    ["dhat-rs/reqctx-base.json", "valgrind-dhat/reqctx-base.json", "dhat-rs/leaky.json"],
)
def test_heap_profiles_measure_bytes_and_blocks(name: str) -> None:
    profile = load_profile(SAMPLES / name)
    assert profile.units == {"total_bytes": "bytes", "total_blocks": "blocks"}


@pytest.mark.parametrize(
    ("name", "symbolized"),
    [
        ("dhat-rs/reqctx-base.json", True),
        ("dhat-rs/reqctx-base.release-nodebug.json", False),
        ("valgrind-dhat/reqctx-base.json", True),
    ],
)
def test_symbolized_tells_builds_without_debug_info(name: str, symbolized: bool) -> None:
    profile = load_profile(SAMPLES / name)
    assert profile.symbolized is symbolized
    # Without debug info the function names are still there to fold on.
    assert profile.callsites[0].key == "reqctx::split_fields"


def test_dev_build_skips_the_rust_alloc_shim() -> None:
    profile = load_profile(DHAT_RS / "reqctx-base-10000.dev.json")
    assert profile.callsites[0].key == "reqctx::split_fields"
    for site in profile.callsites:
        assert not site.key.startswith(("__rustc::", "__rust_", "<dhat::", "alloc::")), site.key


# ---------------------------------------------------------------- decoding in slices

SLICED = [
    "dhat-rs/reqctx-base.json",
    "valgrind-dhat/reqctx-base.json",
    "dhat-rs/threads.json",
    "valgrind-dhat/leaky.json",
    "dhat-rs/manysites.json",
    "valgrind-dhat/manysites.json",
]


@pytest.mark.parametrize("chunk", [1, 200, 4096])
@pytest.mark.parametrize("name", SLICED)
def test_decoding_in_small_slices_gives_the_same_profile(
    name: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = load_profile(SAMPLES / name)
    monkeypatch.setattr(allocgate.profilers.dhat_json, "_CHUNK", chunk)
    sliced = load_profile(SAMPLES / name)
    assert sliced == whole


@pytest.mark.parametrize("layout", ["compact", "indented", "ftbl-first", "crlf"])
@pytest.mark.parametrize("name", ["dhat-rs/reqctx-base.json", "valgrind-dhat/reqctx-base.json"])
def test_json_layout_does_not_matter(
    name: str, layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = dhat_json(SAMPLES / name)
    if layout == "compact":
        text = json.dumps(doc, separators=(",", ":"))
    elif layout == "indented":
        text = json.dumps(doc, indent=3)
    elif layout == "ftbl-first":
        text = json.dumps({"ftbl": doc.pop("ftbl"), **doc}, indent=1)
    else:
        text = (SAMPLES / name).read_text(encoding="utf-8").replace("\n", "\r\n")
    path = tmp_path / "profile.json"
    path.write_text(text, encoding="utf-8", newline="")
    reference = load_profile(SAMPLES / name)
    monkeypatch.setattr(allocgate.profilers.dhat_json, "_CHUNK", 97)
    profile = load_profile(path)
    assert profile.totals == reference.totals
    assert profile.callsites == reference.callsites


def test_a_profile_without_program_points_is_empty(tmp_path: Path) -> None:
    doc = dhat_json(VALGRIND / "leaky.json")
    doc["pps"] = []
    path = tmp_path / "empty-run.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    profile = load_profile(path)
    assert profile.callsites == ()
    assert profile.totals == dict.fromkeys(HEAP, 0)


def test_cmd_that_looks_like_pps_does_not_confuse_the_slicer(tmp_path: Path) -> None:
    doc = dhat_json(DHAT_RS / "reqctx-base.json")
    doc["cmd"] = './reqctx --json={"pps": [{"tb": 1, "fs": [1]}]}'
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    profile = load_profile(path)
    assert profile.totals == expected_totals(DHAT_RS / "reqctx-base.json")
    assert profile.command == doc["cmd"]


def test_depth_is_recorded_on_the_profile() -> None:
    profile = load_profile(DHAT_RS / "leaky.json", FoldOptions(depth=3))
    assert profile.depth == 3


# ---------------------------------------------------------------- frames

FRAMES = [
    (
        "0x55d1e2a3b4c5: reqctx::split_fields (reqctx/src/main.rs:90:65)",
        Frame("reqctx::split_fields", "reqctx/src/main.rs", 90, 0x55D1E2A3B4C5),
    ),
    (
        "0x122D5B: reqctx::split_fields (main.rs:90)",
        Frame("reqctx::split_fields", "main.rs", 90, 0x122D5B),
    ),
    (
        "0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_dhat-amd64-linux.so)",
        Frame(
            "malloc",
            None,
            None,
            0x48417B4,
            "/usr/libexec/valgrind/vgpreload_dhat-amd64-linux.so",
        ),
    ),
    (
        "0x12784B: UnknownInlinedFun (library/alloc/src/alloc.rs:95)",
        Frame("UnknownInlinedFun", "library/alloc/src/alloc.rs", 95, 0x12784B),
    ),
    (
        "0x55a086d8a2f9: reqctx::build_context (???:0:0)",
        Frame("reqctx::build_context", None, None, 0x55A086D8A2F9),
    ),
    (
        "0x1: with_capacity<std::io::stdio::StdoutRaw> (bufwriter.rs:122)",
        Frame("with_capacity<std::io::stdio::StdoutRaw>", "bufwriter.rs", 122, 1),
    ),
    ("[root]", Frame("[root]")),
]


@pytest.mark.parametrize(("text", "frame"), FRAMES, ids=[t for t, _ in FRAMES])
def test_parse_frame(text: str, frame: Frame) -> None:
    assert parse_frame(text) == frame


@pytest.mark.parametrize("path", DHAT_SAMPLES, ids=sample_id)
def test_frame_addresses_never_reach_keys_or_stacks(path: Path) -> None:
    profile = load_profile(path)
    for site in profile.callsites:
        assert "0x" not in site.key, site.key
        for frame in site.stack:
            assert not frame.startswith("0x"), frame


@pytest.mark.parametrize("chunk", [1, 300, 1 << 21])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("tb", -5, "field 'tb' must be a non-negative integer, got -5"),
        ("fs", [1, 10**6], "frame index 1000000 is outside 'ftbl'"),
        ("gb", "many", "field 'gb' must be a non-negative integer, got 'many'"),
    ],
)
def test_errors_name_the_program_point_whatever_the_slicing(
    field: str,
    value: object,
    problem: str,
    depth: int,
    chunk: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = dhat_json(DHAT_RS / "reqctx-base.json")
    doc["pps"][30][field] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    monkeypatch.setattr(allocgate.profilers.dhat_json, "_CHUNK", chunk)
    with pytest.raises(ProfileError) as info:
        load_profile(path, FoldOptions(depth=depth))
    assert str(info.value).startswith(f"{path}: program point 30: {problem}")
