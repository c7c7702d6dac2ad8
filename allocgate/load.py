"""Opening any profile file: the format is recognised from its content, not its name."""

from __future__ import annotations

from pathlib import Path

from allocgate.callsites import Folder, FoldOptions, FrameTable
from allocgate.dhat import load_dhat, looks_like_dhat
from allocgate.errors import ProfileError
from allocgate.heaptrack import looks_like_heaptrack, read_heaptrack
from allocgate.profile import Profile

HEAPTRACK_METRICS = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes", "temporary_blocks")


def sniff(path: Path) -> str:
    """``dhat``, ``heaptrack`` or ``baseline``, from the first bytes of the file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not head.strip():
        raise ProfileError(f"{path}: the file is empty")
    if looks_like_dhat(head):
        return "dhat"
    if looks_like_heaptrack(head):
        return "heaptrack"
    if head.lstrip().startswith((b"#", b"version:", b"workloads:", b"---")):
        return "baseline"
    raise ProfileError(
        f"{path}: not a DHAT JSON profile, a heaptrack trace or an allocgate baseline"
    )


def load_profile(path: Path, options: FoldOptions | None = None) -> Profile:
    """Reads and folds a DHAT (dhat-rs or Valgrind) profile or a heaptrack trace."""
    options = options or FoldOptions()
    kind = sniff(path)
    if kind == "dhat":
        return load_dhat(path, options)
    if kind == "heaptrack":
        return load_heaptrack(path, options)
    raise ProfileError(f"{path}: this is a baseline file, not a profile")


def load_heaptrack(path: Path, options: FoldOptions) -> Profile:
    data = read_heaptrack(path)
    table = FrameTable.build(data.frames, options)
    folder = Folder(table, HEAPTRACK_METRICS, options.depth)
    for point in data.points:
        folder.add(
            point.stack,
            (
                point.total_bytes,
                point.total_blocks,
                point.peak_bytes,
                point.end_bytes,
                point.temporary_blocks,
            ),
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
        points=folder.points,
        units={"total_bytes": "bytes", "total_blocks": "blocks"},
        symbolized=any(f.file for f in data.frames),
    )
