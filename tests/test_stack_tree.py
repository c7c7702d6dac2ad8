"""The heaptrack trace folded node by node (allocgate.stack_tree) gives exactly
what folding every site's whole stack gives (Folder), whatever the keys."""

from __future__ import annotations

import importlib.util
import tracemalloc
from functools import cache
from pathlib import Path

import pytest

from allocgate.callsites import Folder, FoldOptions
from allocgate.profilers.heaptrack import HEAPTRACK_METRICS, load_heaptrack
from allocgate.profilers.heaptrack_trace import HeaptrackData, HeaptrackPoint, read_heaptrack
from allocgate.profilers.symbols import frame_table
from allocgate.stack_tree import TreeFold, fold_tree

ROOT = Path(__file__).resolve().parents[1]
TRACES = [
    *sorted((ROOT / "fixtures" / "samples" / "heaptrack").glob("*.zst")),
    ROOT / "fixtures" / "heaptrack" / "tiny.trace",
]
DEEP = ROOT / "fixtures" / "heaptrack" / "deep-chain.trace"
OPTIONS = [
    FoldOptions(),
    FoldOptions(depth=2),
    FoldOptions(depth=3),
    FoldOptions(keys="innermost"),
    FoldOptions(keys="innermost", depth=2),
    FoldOptions(skip=(r"reqctx::split_fields", r"^std::")),
]


@cache
def trace(path: Path) -> HeaptrackData:
    return read_heaptrack(path)


def small_deep_chain(tmp_path: Path) -> Path:
    """benchmarks/make_deep_trace.py's shape, small enough to fold whole stacks."""
    spec = importlib.util.spec_from_file_location(
        "make_deep_trace", ROOT / "benchmarks" / "make_deep_trace.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / "deep.trace"
    path.write_text(module.trace_text(inlined=40, depth=30))
    return path


def values(point: HeaptrackPoint) -> tuple[int, ...]:
    return (
        point.total_bytes,
        point.total_blocks,
        point.peak_bytes,
        point.end_bytes,
        point.temporary_blocks,
    )


def whole_stacks(data: HeaptrackData, options: FoldOptions) -> Folder:
    table = frame_table(data.frames, options, data.command)
    folder = Folder(table, HEAPTRACK_METRICS, options.depth)
    folder.add_all((point.stack, values(point)) for point in data.points)
    return folder


def by_node(data: HeaptrackData, options: FoldOptions) -> Folder:
    table = frame_table(data.frames, options, data.command)
    fold = TreeFold(data.tree.frames, data.tree.parents, table, options.depth)
    return fold_tree(fold, ((p.node, values(p)) for p in data.points), HEAPTRACK_METRICS)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o.keys}-{o.depth}-{len(o.skip)}")
@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_same_callsites_as_whole_stacks(path: Path, options: FoldOptions) -> None:
    data = trace(path)
    expected = whole_stacks(data, options)
    folded = by_node(data, options)
    assert folded.callsites() == expected.callsites()
    assert (folded.totals(), folded.points) == (expected.totals(), expected.points)
    assert folded.table.flags == expected.table.flags


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"{o.keys}-{o.depth}-{len(o.skip)}")
def test_deep_chain_same_callsites_as_whole_stacks(options: FoldOptions, tmp_path: Path) -> None:
    data = read_heaptrack(small_deep_chain(tmp_path))
    expected = whole_stacks(data, options)
    folded = by_node(data, options)
    assert folded.callsites() == expected.callsites()
    assert (folded.totals(), folded.points) == (expected.totals(), expected.points)


@pytest.mark.parametrize("options", [OPTIONS[0], OPTIONS[3]], ids=lambda o: o.keys)
def test_deep_shared_stacks_fold_node_by_node(options: FoldOptions) -> None:
    """fixtures/heaptrack/deep-chain.trace: 800 sites whose stacks hold 320
    million frames between them; a fold that spelled them out would take
    minutes and gigabytes."""
    data = trace(DEEP)
    deepest = max(data.points, key=lambda p: p.node)
    assert len(deepest.stack) == 399 * 2001 + 1
    tracemalloc.start()
    try:
        profile = load_heaptrack(DEEP, options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    sites = {site.key: site for site in profile.callsites}
    assert list(sites) == ["deep::leaf", "std::sys::backtrace::deep", "std::rt::lang_start"]
    leaf = sites["deep::leaf"]
    assert (leaf.points, leaf.metrics["total_blocks"], leaf.location) == (400, 400, "src/a.rs:10")
    # The key's frame is at the root, below thousands of std frames: the
    # display shows four of those, then it.
    assert [frame.split(" (")[0] for frame in leaf.stack] == [
        *["std::sys::backtrace::deep"] * 4,
        "deep::leaf",
    ]
    assert len(sites["std::sys::backtrace::deep"].stack) == 16
