"""heaptrack: any binary, no code changes; its zstd trace is read directly, so
every byte of every allocation site is counted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.callsites import Folder
from allocgate.errors import WorkloadError
from allocgate.process import Finished, require_tool, tail
from allocgate.profile import Profile
from allocgate.profilers.base import check_exit, run_workload
from allocgate.profilers.heaptrack_trace import read_heaptrack
from allocgate.profilers.symbols import frame_table

if TYPE_CHECKING:
    from allocgate.callsites import FoldOptions
    from allocgate.config import WorkloadConfig

HEAPTRACK_METRICS = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes", "temporary_blocks")


class Heaptrack:
    name = "heaptrack"
    tool: str | None = "heaptrack"
    metrics: tuple[str, ...] = HEAPTRACK_METRICS
    raw_suffix = "heaptrack"
    default_features: tuple[str, ...] = ()
    reads_default_features = False
    frames = "interned instruction pointers, each with its inlined frames (function, file, line)"

    def read(self, path: Path, options: FoldOptions) -> Profile:
        return load_heaptrack(path, options)

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        heaptrack = require_tool("heaptrack")
        base = out.with_suffix("")
        done = run_workload(
            w,
            [heaptrack, "-o", str(base), str(exe), *w.args],
        )
        written = [p for p in base.parent.glob(base.name + ".*") if p.suffix in (".zst", ".gz")]
        # heaptrack's own exit code is the workload's; a crash still writes a trace.
        check_exit(w, done, "heaptrack")
        if not written:
            raise WorkloadError(
                f"workload {w.name!r}: heaptrack wrote no trace: {tail(done.stderr, 2)}"
            )
        return done, written[0]


def load_heaptrack(path: Path, options: FoldOptions) -> Profile:
    """Reads a heaptrack trace and folds its allocation sites into callsites."""
    data = read_heaptrack(path)
    table = frame_table(data.frames, options, data.command)
    folder = Folder(table, HEAPTRACK_METRICS, options.depth)
    folder.add_all(
        (
            point.stack,
            (
                point.total_bytes,
                point.total_blocks,
                point.peak_bytes,
                point.end_bytes,
                point.temporary_blocks,
            ),
        )
        for point in data.points
    )
    return Profile(
        source=str(path),
        profiler="heaptrack",
        mode="heap",
        command=data.command,
        metrics=HEAPTRACK_METRICS,
        totals=folder.totals(),
        callsites=folder.callsites(),
        depth=options.depth,
        keys="workspace" if table.workspace_keys else "innermost",
        points=folder.points,
        units={"total_bytes": "bytes", "total_blocks": "blocks"},
        symbolized=any(f.file for f in data.frames),
    )


PROFILER = Heaptrack()
