"""Tests for allocgate.profilers.heaptrack_trace: the real samples, a hand-made trace, damaged files."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import tracemalloc
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from conftest import require_tools

from allocgate.errors import ProfileError, WorkloadError
from allocgate.profilers.demangle import demangle
from allocgate.profilers.heaptrack_trace import HeaptrackData, looks_like_heaptrack, read_heaptrack

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "fixtures" / "samples" / "heaptrack"
TINY = ROOT / "fixtures" / "heaptrack" / "tiny.trace"
WORKLOADS = ROOT.parent / "shared" / "workloads"
if not WORKLOADS.is_dir():
    WORKLOADS = Path("/work/shared/workloads")

SAMPLE_NAMES = [
    "reqctx-base",
    "reqctx-regressed",
    "reqctx-improved",
    "leaky",
    "threads",
    "manysites",
]


@cache
def sample(name: str) -> HeaptrackData:
    return read_heaptrack(SAMPLES / f"{name}.zst")


@cache
def plain_text(name: str) -> bytes:
    return subprocess.run(
        ["zstd", "-dc", str(SAMPLES / f"{name}.zst")], check=True, capture_output=True
    ).stdout


def format_bytes(value: int) -> str:
    """heaptrack_print's formatBytes: decimal units, two decimals, one-letter unit."""
    number = float(value)
    units = "BKMGT"
    unit = 0
    while unit < len(units) - 1 and abs(number) > 1000.0:
        number /= 1000.0
        unit += 1
    return f"{value}B" if unit == 0 else f"{number:.2f}{units[unit]}"


def print_summary(text: str) -> dict[str, str]:
    """The summary lines of heaptrack_print's default output."""
    fields = {}
    for key, pattern in {
        "command": r"^Debuggee command was: (.*)$",
        "calls": r"^calls to allocation functions: (\d+) ",
        "temporary": r"^temporary memory allocations: (\d+) ",
        "peak": r"^peak heap memory consumption: (\S+)$",
        "rss": r"^peak RSS \(including heaptrack overhead\): (\S+)$",
        "leaked": r"^total memory leaked: (\S+)$",
    }.items():
        match = re.search(pattern, text, re.MULTILINE)
        assert match is not None, key
        fields[key] = match.group(1)
    return fields


def summary_of(data: HeaptrackData) -> dict[str, str]:
    points = data.points
    return {
        "command": data.command,
        "calls": str(sum(p.total_blocks for p in points)),
        "temporary": str(sum(p.temporary_blocks for p in points)),
        "peak": format_bytes(sum(p.peak_bytes for p in points)),
        "rss": format_bytes(data.peak_rss_bytes or 0),
        "leaked": format_bytes(sum(p.end_bytes for p in points)),
    }


def names(data: HeaptrackData, stack: tuple[int, ...]) -> list[str]:
    return [data.frames[i].function for i in stack]


# --- the real samples ------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_summary_matches_heaptrack_print(name: str) -> None:
    expected = print_summary((SAMPLES / f"{name}.txt").read_text(encoding="utf-8"))
    assert summary_of(sample(name)) == expected


def test_summary_numbers_of_reqctx_base() -> None:
    data = sample("reqctx-base")
    assert sum(p.total_blocks for p in data.points) == 2_010_075
    assert sum(p.temporary_blocks for p in data.points) == 209_488
    assert sum(p.peak_bytes for p in data.points) == 1_529_522
    assert sum(p.end_bytes for p in data.points) == 544
    assert data.command == "./target/profiling/reqctx --variant=base"


@pytest.mark.parametrize(
    ("name", "flamegraph", "field"),
    [
        ("reqctx-base", "flamegraph-allocations", "total_blocks"),
        ("reqctx-base", "flamegraph-peak", "peak_bytes"),
        ("leaky", "flamegraph-leaked", "end_bytes"),
    ],
)
def test_per_site_numbers_match_heaptrack_print_flamegraphs(
    name: str, flamegraph: str, field: str
) -> None:
    # heaptrack_print -F writes one line per site, in the order the trace
    # defines them, ending in the exact integer cost.
    lines = (SAMPLES / f"{name}.{flamegraph}.txt").read_text(encoding="utf-8").splitlines()
    data = sample(name)
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == [
        getattr(p, field) for p in data.points
    ]
    # It prints instruction pointers outermost first, each one's frames
    # innermost first, with names as heaptrack stored them, up to `main`.
    for line, point in zip(lines, data.points):
        printed = [frame.split(" (")[0] for frame in line.rsplit(" ", 1)[0].split(";") if frame]
        runs: list[list[str]] = []
        previous = None
        for index in point.stack:
            frame = data.frames[index]
            if frame.address != previous:
                runs.append([])
                previous = frame.address
            runs[-1].append(frame.function)
        expected = [name for run in runs[::-1] for name in run]
        if "main" in expected:
            expected = expected[expected.index("main") :]
        assert [demangle(name) for name in printed] == expected


def test_top_site_of_reqctx_base_is_split_fields() -> None:
    data = sample("reqctx-base")
    top = max(data.points, key=lambda p: p.total_blocks)
    user = [data.frames[i] for i in top.stack if data.frames[i].function.startswith("reqctx::")]
    assert user[0].function == "reqctx::split_fields"
    assert (user[0].file, user[0].line) == ("src/main.rs", 90)
    assert top.total_blocks == 400_000
    assert data.frames[top.stack[0]].function == "alloc::alloc::alloc"


def test_regressed_has_the_new_call_site() -> None:
    regressed = sample("reqctx-regressed")
    base = sample("reqctx-base")
    canary = [
        p for p in regressed.points if "reqctx::is_canary_wasteful" in names(regressed, p.stack)
    ]
    assert canary
    assert sum(p.total_blocks for p in canary) == 500_000
    assert not any("reqctx::is_canary_wasteful" in names(base, p.stack) for p in base.points)


def test_leaky_keeps_memory_at_exit() -> None:
    data = sample("leaky")
    assert sum(p.end_bytes for p in data.points) == 170_914
    remember = [p for p in data.points if "leaky::remember" in names(data, p.stack)]
    # every 8th of 20000 records is copied into SEEN and never freed
    copies = [p for p in remember if p.total_blocks == 2500]
    assert len(copies) == 1
    assert copies[0].end_bytes == copies[0].total_bytes > 0
    assert all(p.end_bytes <= p.total_bytes for p in data.points)


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_frames_are_well_formed(name: str) -> None:
    data = sample(name)
    assert data.points
    for frame in data.frames:
        assert frame.address is not None
        assert not frame.function.startswith("_R"), frame
        assert not re.search(r"::h[0-9a-f]{16}$|\$LT\$", frame.function), frame
        # The module is named only where there is no source file.
        assert frame.object is None or frame.file is None
        if frame.file is None:
            assert frame.line is None
    for point in data.points:
        assert point.stack
        assert all(0 <= i < len(data.frames) for i in point.stack)
        assert 0 <= point.temporary_blocks <= point.total_blocks
        assert 0 <= point.end_bytes <= point.total_bytes
        assert 0 <= point.peak_bytes <= point.total_bytes
        # Inlined frames share their instruction pointer, so equal addresses
        # come in one run, never split.
        addresses = [data.frames[i].address for i in point.stack]
        runs = [a for k, a in enumerate(addresses) if k == 0 or a != addresses[k - 1]]
        assert len(runs) == len(set(runs))


def test_inlined_frames_are_expanded_innermost_first() -> None:
    data = sample("reqctx-base")
    top = max(data.points, key=lambda p: p.total_blocks)
    first = [data.frames[i] for i in top.stack[:4]]
    assert [f.function for f in first] == [
        "alloc::alloc::alloc",
        "<alloc::alloc::Global>::alloc_impl_runtime",
        "<alloc::alloc::Global>::alloc_impl",
        "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
    ]
    assert len({f.address for f in first}) == 1
    assert [f.line for f in first] == [95, 190, 312, 429]


def test_unresolved_frames_keep_their_address() -> None:
    data = sample("reqctx-base")
    unresolved = [f for f in data.frames if f.function.startswith("0x")]
    assert unresolved
    libstdcxx = [f for f in unresolved if f.object == "/lib/x86_64-linux-gnu/libstdc++.so.6"]
    assert libstdcxx
    assert all(int(f.function, 16) == f.address for f in unresolved)


def test_threads_stacks_end_in_clone3() -> None:
    data = sample("threads")
    outermost = {data.frames[p.stack[-1]].function for p in data.points}
    assert {"_start", "clone3"} <= outermost


def test_plain_gzip_and_zstd_give_the_same_data(tmp_path: Path) -> None:
    text = plain_text("leaky")
    plain = tmp_path / "leaky.trace"
    plain.write_bytes(text)
    packed = tmp_path / "leaky.zst"  # gzip data under a misleading name
    packed.write_bytes(gzip.compress(text))
    reference = sample("leaky")
    for path in (plain, packed):
        data = read_heaptrack(path)
        assert data.path == path
        assert (data.command, data.frames, data.points, data.peak_rss_bytes) == (
            reference.command,
            reference.frames,
            reference.points,
            reference.peak_rss_bytes,
        )


def test_file_format_2_without_sized_strings(tmp_path: Path) -> None:
    lines = plain_text("leaky").decode().split("\n")
    assert lines[0] == "v 10400 3"
    lines[0] = "v 10300 2"
    lines = ["s " + line.split(" ", 2)[2] if line.startswith("s ") else line for line in lines]
    path = tmp_path / "v2.trace"
    path.write_text("\n".join(lines))
    data = read_heaptrack(path)
    reference = sample("leaky")
    assert (data.frames, data.points) == (reference.frames, reference.points)


def test_looks_like_heaptrack() -> None:
    assert looks_like_heaptrack((SAMPLES / "leaky.zst").read_bytes()[:4])
    assert looks_like_heaptrack(b"v 10400 3\n")
    assert looks_like_heaptrack(gzip.compress(b"v 10400 3\n")[:4])
    assert not looks_like_heaptrack(b'{"dhatFileVersion":2')


# --- a hand-made trace with numbers worked out by hand (and by heaptrack_print) -----


def test_tiny_trace_exact_numbers() -> None:
    data = read_heaptrack(TINY)
    assert data.command == "./tiny --flag"
    assert data.peak_rss_bytes == 5 * 0x1000
    got = [
        (
            names(data, p.stack),
            p.total_bytes,
            p.total_blocks,
            p.temporary_blocks,
            p.peak_bytes,
            p.end_bytes,
        )
        for p in data.points
    ]
    assert got == [
        # 2 x 16 B; the second free of kind 0 follows another free and counts as
        # temporary, as in heaptrack_print ("temporary" compares with the last
        # allocation's kind, and that is reset to 0 by every free)
        (["tiny::leaf", "main", "main"], 32, 2, 1, 0, 0),
        (["tiny::other", "main"], 64, 2, 1, 32, 32),
        # allocated through `operator new`, which is dropped from the top
        (["tiny::other", "main"], 8, 1, 0, 8, 0),
        (["0x1040", "main"], 64, 1, 0, 64, 0),
    ]
    leaf, inlined_main, main = (data.frames[i] for i in data.points[0].stack)
    assert (leaf.file, leaf.line, leaf.address) == ("src/a.rs", 0x14, 0x1010)
    assert (inlined_main.file, inlined_main.line, inlined_main.address) == ("src/a.rs", 0xB, 0x1010)
    assert (main.file, main.line, main.address, main.object) == ("src/a.rs", 0xA, 0x1000, None)
    other = data.frames[data.points[1].stack[0]]
    assert (other.file, other.line, other.object) == (None, None, "./tiny")
    assert data.points[1].stack == data.points[2].stack


@pytest.mark.heaptrack
def test_tiny_trace_agrees_with_heaptrack_print() -> None:
    require_tools("heaptrack_print")
    printed = subprocess.run(
        ["heaptrack_print", "-f", str(TINY)], check=True, capture_output=True, text=True
    ).stdout
    assert summary_of(read_heaptrack(TINY)) == print_summary(printed)


def _events_trace(tmp_path: Path, events: int) -> Path:
    header = TINY.read_text().split("c 1\n")[0]
    path = tmp_path / f"long-{events}.trace"
    with path.open("w") as out:
        out.write(header)
        out.write("+ 0\n+ 1\n- 0\n- 1\n" * (events // 4))
    return path


def _peak_of_reading(path: Path) -> tuple[HeaptrackData, int]:
    tracemalloc.start()
    try:
        data = read_heaptrack(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return data, peak


def test_memory_does_not_grow_with_the_number_of_events(tmp_path: Path) -> None:
    events = 400_000
    path = _events_trace(tmp_path, events)
    assert path.stat().st_size > 1_500_000
    data, peak = _peak_of_reading(path)
    _, peak_of_tenth = _peak_of_reading(_events_trace(tmp_path, events // 10))
    assert sum(p.total_blocks for p in data.points) == events // 2
    assert sum(p.temporary_blocks for p in data.points) == 0
    # One block of lines at a time: ten times the events, (almost) the same peak.
    assert peak < peak_of_tenth + 50_000
    assert peak < 1_000_000


def test_deep_shared_stacks_are_kept_as_a_tree() -> None:
    """fixtures/heaptrack/deep-chain.trace (benchmarks/make_deep_trace.py): 34 KB
    whose 800 sites' stacks hold 320 million frames between them."""
    path = ROOT / "fixtures" / "heaptrack" / "deep-chain.trace"
    data, peak = _peak_of_reading(path)
    assert path.stat().st_size < 40_000
    assert len(data.points) == 800
    deepest = max(data.points, key=lambda p: p.node)
    assert len(deepest.stack) == 399 * 2001 + 1
    assert data.frames[deepest.stack[-1]].function == "std::rt::lang_start"
    assert peak < 5_000_000


# --- damaged files -------------------------------------------------------------------


def _edit(edit: Callable[[list[str]], list[str]]) -> Callable[[], bytes]:
    def build() -> bytes:
        lines = plain_text("leaky").decode().split("\n")
        return "\n".join(edit(lines)).encode()

    return build


def _replace_first(prefix: str, make: Callable[[str], str]) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        return [*lines[:index], make(lines[index]), *lines[index + 1 :]]

    return edit


def _insert_after_first(prefix: str, extra: str) -> Callable[[list[str]], list[str]]:
    return _replace_first(prefix, lambda line: f"{line}\n{extra}")


def _zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c"], input=data, check=True, capture_output=True).stdout


def _flipped(offset: int) -> Callable[[], bytes]:
    def build() -> bytes:
        data = bytearray((SAMPLES / "leaky.zst").read_bytes())
        for i in range(offset, offset + 16):
            data[i] ^= 0xFF
        return bytes(data)

    return build


CORRUPT = [
    ("empty", lambda: b"", "the profile is empty"),
    ("empty-zstd", lambda: _zstd(b""), "the trace is empty"),
    ("garbage", lambda: b"hello world\nthis is text\n", "not a heaptrack trace"),
    ("wrong-magic", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a heaptrack trace"),
    ("gzip-of-text", lambda: gzip.compress(b"hello\n"), "not a heaptrack trace"),
    ("dhat-json", lambda: b'{"dhatFileVersion":2,"mode":"rust-heap"}', "not a heaptrack trace"),
    (
        "truncated-zstd",
        lambda: (SAMPLES / "leaky.zst").read_bytes()[:5000],
        r"truncated or corrupt zstd data: .*premature end",
    ),
    ("corrupt-zstd-checksum", _flipped(100), "truncated or corrupt zstd data"),
    ("corrupt-zstd-block", _flipped(6000), "truncated or corrupt zstd data"),
    (
        "truncated-gzip",
        lambda: gzip.compress(plain_text("leaky"))[:8000],
        "truncated or corrupt gzip data",
    ),
    ("cut-mid-record", lambda: plain_text("leaky")[:3000], r"line \d+: malformed record"),
    (
        "unsupported-version",
        _edit(_replace_first("v ", lambda _: "v 10400 9")),
        "line 1: unsupported heaptrack file format version 9",
    ),
    (
        "pre-1.0-format",
        _edit(_replace_first("v ", lambda _: "v 10000")),
        "unsupported heaptrack file format version 0",
    ),
    (
        "dangling-allocation-kind",
        _edit(_insert_after_first("+ ", "+ 9999")),
        r"undefined allocation kind 0x9999",
    ),
    (
        "dangling-trace",
        _edit(_replace_first("a ", lambda line: line.split()[0] + " 10 ffff")),
        "allocation refers to undefined trace 0xffff",
    ),
    (
        "dangling-module-string",
        _edit(
            _replace_first(
                "i ", lambda line: " ".join([*line.split()[:2], "fff", *line.split()[3:]])
            )
        ),
        "undefined module string 0xfff",
    ),
    (
        "dangling-function-string",
        _edit(
            _replace_first(
                "i ", lambda line: " ".join([*line.split()[:3], "fff", *line.split()[4:]])
            )
        ),
        "undefined string 0xfff",
    ),
    (
        "dangling-ip",
        _edit(_replace_first("t ", lambda _: "t abcd 0")),
        "trace refers to undefined instruction pointer 0xabcd",
    ),
    (
        "dangling-parent",
        _edit(_replace_first("t ", lambda _: "t 1 77")),
        "trace refers to undefined parent trace 0x77",
    ),
    ("malformed-event", _edit(_insert_after_first("+ ", "+ zz")), r"malformed record b'\+ zz'"),
    ("unknown-record", _edit(_insert_after_first("+ ", "Q 1 2")), "unknown record type"),
    ("second-command", _edit(_insert_after_first("X ", "X ./other")), "a second debuggee command"),
    ("raw-preload-output", _edit(_insert_after_first("X ", "m x 400000")), "heaptrack_interpret"),
    (
        "free-of-nothing",
        _edit(_insert_after_first("a ", "- 0")),
        "free of allocation kind 0x0 with none live",
    ),
    (
        "string-longer-than-line",
        _edit(_insert_after_first("s ", "s ff short")),
        "string of 255 bytes does not fit",
    ),
    (
        "trailer-mismatch",
        _edit(_replace_first("# ips: ", lambda line: "# ips: 1")),
        "the trailer announces 1 ips",
    ),
]


@pytest.mark.parametrize(
    ("content", "message"), [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT]
)
def test_damaged_files_raise_profile_error(
    tmp_path: Path, content: Callable[[], bytes], message: str
) -> None:
    path = tmp_path / "damaged.zst"
    path.write_bytes(content())
    with pytest.raises(ProfileError) as caught:
        read_heaptrack(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert "\n" not in text
    assert re.search(message, text), text


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.zst"
    with pytest.raises(ProfileError, match=r"nope\.zst: cannot read profile"):
        read_heaptrack(path)


def test_missing_zstd_is_a_workload_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    path = SAMPLES / "leaky.zst"
    with pytest.raises(WorkloadError) as caught:
        read_heaptrack(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "apt-get install zstd" in str(caught.value)


# --- a real heaptrack run ---------------------------------------------------------------


@pytest.mark.cargo
@pytest.mark.heaptrack
def test_real_heaptrack_run(tmp_path: Path) -> None:
    require_tools("cargo", "heaptrack", "heaptrack_print")
    crate = tmp_path / "leaky"
    shutil.copytree(WORKLOADS / "leaky", crate)
    crate.chmod(0o755)
    (crate / "src").chmod(0o755)
    # The optional dhat dependency cannot be resolved offline: drop its wiring.
    manifest = crate / "Cargo.toml"
    manifest.chmod(0o644)
    manifest.write_text(
        "".join(line for line in manifest.read_text().splitlines(True) if "dhat" not in line)
    )
    source = crate / "src" / "main.rs"
    source.chmod(0o644)
    source.write_text(
        re.sub(
            r'#\[cfg\(feature = "dhat-heap"\)\]\n(?:#\[global_allocator\]\n)?[^\n]*\n',
            "",
            source.read_text(),
        )
    )
    assert "dhat" not in source.read_text()
    subprocess.run(
        [
            "cargo",
            "build",
            "--offline",
            "--quiet",
            "--profile",
            "profiling",
            "--manifest-path",
            str(manifest),
            "--target-dir",
            str(tmp_path / "target"),
        ],
        check=True,
        capture_output=True,
    )
    binary = tmp_path / "target" / "profiling" / "leaky"
    subprocess.run(
        ["heaptrack", "-o", str(tmp_path / "x"), str(binary), "2000"],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    trace = tmp_path / "x.zst"
    data = read_heaptrack(trace)
    assert data.command == f"{binary} 2000"
    remember = [p for p in data.points if "leaky::remember" in names(data, p.stack)]
    assert remember
    assert sum(p.end_bytes for p in remember) > 0
    printed = subprocess.run(
        ["heaptrack_print", "-f", str(trace)], check=True, capture_output=True, text=True
    ).stdout
    assert summary_of(data) == print_summary(printed)
