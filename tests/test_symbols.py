"""Naming frames from debug info, on the real threaded fixture binary under real profilers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require_tools
from logscan_crate import Builds, logscan  # noqa: F401  (the session fixture)

from allocgate.boundary import DEPENDENCY, STD, WORKSPACE, Classifier
from allocgate.frames import Frame
from allocgate.profilers.dhat_json import parse_frame
from allocgate.profilers.heaptrack_trace import read_heaptrack
from allocgate.profilers.symbols import Symbolizer, executable_ranges, resolve_frames
from allocgate.workspace import Workspace, crate_name, guess_workspace, read_workspace

pytestmark = pytest.mark.cargo


@pytest.fixture(scope="module")
def valgrind_frames(logscan: Builds, tmp_path_factory: pytest.TempPathFactory) -> list[Frame]:  # noqa: F811
    require_tools("valgrind", "llvm-symbolizer")
    import orjson

    out = tmp_path_factory.mktemp("vg") / "dhat.json"
    subprocess.run(
        [
            "valgrind",
            "--tool=dhat",
            f"--dhat-out-file={out}",
            "--num-callers=64",
            str(logscan("base").binary),
            "2000",
        ],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return [parse_frame(text) for text in orjson.loads(out.read_bytes())["ftbl"]]


@pytest.fixture(scope="module")
def heaptrack_frames(logscan: Builds, tmp_path_factory: pytest.TempPathFactory) -> list[Frame]:  # noqa: F811
    require_tools("heaptrack", "llvm-symbolizer")
    base = tmp_path_factory.mktemp("ht") / "trace"
    subprocess.run(
        ["heaptrack", "-o", str(base), str(logscan("base").binary), "2000"],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (trace,) = base.parent.glob("trace.*")
    return list(read_heaptrack(trace).frames)


Frames = Callable[[], list[Frame]]


def test_executable_ranges_cover_the_text_segment(logscan: Builds) -> None:  # noqa: F811
    ranges = executable_ranges(logscan("base").binary)
    assert len(ranges) >= 1
    assert all(lo < hi for lo, hi in ranges)


def test_valgrind_bias_is_derived_and_every_binary_address_resolves(
    logscan: Builds,  # noqa: F811
    valgrind_frames: list[Frame],
) -> None:
    resolution = resolve_frames(valgrind_frames, logscan("base").binary)
    # Valgrind maps a PIE at 0x108000 on amd64; the bias comes from the frames.
    assert resolution.bias == 0x108000
    assert resolution.addresses > 50
    assert resolution.resolved == resolution.addresses
    # Every original frame is accounted for: one chain per address, the rest empty.
    assert len(resolution.expanded) == len(valgrind_frames)


def test_heaptrack_bias_is_page_aligned_and_names_match_its_own(
    logscan: Builds,  # noqa: F811
    heaptrack_frames: list[Frame],
) -> None:
    resolution = resolve_frames(heaptrack_frames, logscan("base").binary)
    assert resolution.bias is not None
    assert resolution.bias % 0x1000 == 0
    assert resolution.resolved == resolution.addresses > 50
    # heaptrack printed the same lines for the frames it resolved itself.
    same = total = 0
    for frame, chain in zip(heaptrack_frames, resolution.expanded):
        if len(chain) > 0 and frame.line:
            total += 1
            same += frame.line == chain[0].line
    assert total > 50
    assert same / total > 0.95


def test_valgrind_short_inlined_names_get_their_full_paths(
    logscan: Builds,  # noqa: F811
    valgrind_frames: list[Frame],
) -> None:
    resolution = resolve_frames(valgrind_frames, logscan("base").binary)
    short = {f.function for f in valgrind_frames if f.function in ("clone", "insert")}
    assert short, "Valgrind printed no short inlined names (the point of this test)"
    names = {
        f.function
        for frame, chain in zip(valgrind_frames, resolution.expanded)
        if chain != (frame,)
        for f in chain
    }
    assert "<serde_json::value::Value as core::clone::Clone>::clone" in names
    assert "scan_core::record::enrich" in names
    assert not ({"clone", "insert", "enrich"} & names)


def test_symbolizer_answers_are_cached(logscan: Builds) -> None:  # noqa: F811
    symbolizer = Symbolizer(logscan("base").binary)
    ((value, _size),) = symbolizer.symbols()["scan_core::record::enrich"]
    first = symbolizer.resolve([value + 1])
    assert first[value + 1][-1].function == "scan_core::record::enrich"
    assert first[value + 1][-1].file is not None
    assert first[value + 1][-1].file.endswith("crates/scan-core/src/record.rs")
    assert symbolizer.resolve([value + 1]) == first


def test_workspace_from_cargo_metadata(logscan: Builds) -> None:  # noqa: F811
    built = logscan("base")
    ws = read_workspace(built.manifest)
    assert ws.crates == {"scan_core", "logscan"}
    assert ws.root == built.root.resolve()
    assert ws.members == ("crates/logscan", "crates/scan-core")
    # A member's manifest reads the same workspace.
    assert read_workspace(built.root / "crates" / "logscan" / "Cargo.toml") == ws


def test_workspace_guessed_from_the_command(tmp_path: Path) -> None:
    assert guess_workspace("/nowhere/bin/my-tool --flag") == Workspace(frozenset({"my_tool"}))
    assert guess_workspace("") is None
    assert crate_name("scan-core") == "scan_core"
    assert Workspace.named("scan-core,logscan").crates == {"scan_core", "logscan"}


def test_classifier_uses_paths_then_names(logscan: Builds) -> None:  # noqa: F811
    built = logscan("base")
    classifier = Classifier(read_workspace(built.manifest))
    root = str(built.root.resolve())
    cases = [
        (Frame("enrich", f"{root}/crates/scan-core/src/record.rs", 30), WORKSPACE),
        (Frame("clone", "/usr/share/cargo/registry/serde_json-1.0.87/src/map.rs", 1), DEPENDENCY),
        (Frame("alloc", "/rustc/0123abcd/library/alloc/src/alloc.rs", 95), STD),
        (Frame("scan_core::pipeline::run::{{closure}}"), WORKSPACE),
        (Frame("regex::re_unicode::Regex::captures", "src/re_unicode.rs", 312), DEPENDENCY),
        (Frame("<alloc::vec::Vec<T> as core::clone::Clone>::clone"), STD),
    ]
    for frame, kind in cases:
        assert classifier.facts(frame).kind == kind, frame
    assert classifier.facts(cases[3][0]).name == "scan_core::pipeline::run"
    locations = [classifier.location(f) for f, _ in cases[:3]]
    assert locations == [
        "crates/scan-core/src/record.rs:30",
        "serde_json-1.0.87/src/map.rs:1",
        "alloc/src/alloc.rs:95",
    ]
    # dhat-rs keeps three path components; the member directory completes them,
    # and the root package's own directory name is dropped.
    assert classifier.path("scan-core/src/record.rs") == "crates/scan-core/src/record.rs"
    root_package = Classifier(Workspace(frozenset({"threads"}), Path("/w/threads"), (".",)))
    assert root_package.path("threads/src/main.rs") == "src/main.rs"
    assert (
        classifier.path(
            "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/regex-1.7.1/src/lib.rs"
        )
        == "regex-1.7.1/src/lib.rs"
    )
