"""dhat-rs: the workload is built with dhat's global allocator behind a cargo
feature and writes ``dhat-heap.json`` into its working directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.errors import WorkloadError
from allocgate.process import Finished
from allocgate.profilers.base import check_exit, run_workload
from allocgate.profilers.dhat_json import HEAP_METRICS, load_dhat

if TYPE_CHECKING:
    from allocgate.callsites import FoldOptions
    from allocgate.config import WorkloadConfig
    from allocgate.profile import Profile

DHAT_FEATURE = "dhat-heap"


class DhatRs:
    name = "dhat-rs"
    tool: str | None = None
    metrics: tuple[str, ...] = HEAP_METRICS
    raw_suffix = "json"
    default_features: tuple[str, ...] = (DHAT_FEATURE,)
    # Features under `defaults` are dhat-rs's own: the other profilers must not
    # build in dhat's global allocator.
    reads_default_features = True
    frames = "0x55d1: reqctx::split_fields (reqctx/src/main.rs:90:65), innermost first"

    def read(self, path: Path, options: FoldOptions) -> Profile:
        return load_dhat(path, options)

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        target = w.cwd / "dhat-heap.json"
        # dhat-rs always writes ./dhat-heap.json; a user's file of that name is
        # moved aside and restored, and concurrent runs in one directory queue.
        with directory_lock(w.cwd):
            saved = None
            if target.exists():
                saved = target.with_name(f".dhat-heap.json.allocgate-{os.getpid()}")
                os.replace(target, saved)
            try:
                done = run_workload(
                    w,
                    [str(exe), *w.args],
                )
                check_exit(w, done, "dhat-rs")
                if not target.exists():
                    raise WorkloadError(
                        f"workload {w.name!r} wrote no {target}: the dhat::Profiler never "
                        "dropped (the program called process::exit or was killed), the "
                        f"'{','.join(w.features) or DHAT_FEATURE}' feature does not enable dhat, "
                        "or main() creates no dhat::Profiler::new_heap()"
                    )
                os.replace(target, out)
            finally:
                if saved is not None:
                    os.replace(saved, target)
        return done, out


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Serialises runs that write into one directory, across processes."""
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"allocgate-{digest}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


PROFILER = DhatRs()
