"""Valgrind DHAT: any binary, no code changes; writes the same JSON as dhat-rs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.errors import WorkloadError
from allocgate.process import Finished, require_tool, tail
from allocgate.profilers.base import check_exit, run_workload
from allocgate.profilers.dhat_json import HEAP_METRICS, load_dhat

if TYPE_CHECKING:
    from allocgate.callsites import FoldOptions
    from allocgate.config import WorkloadConfig
    from allocgate.profile import Profile


class ValgrindDhat:
    name = "valgrind-dhat"
    tool: str | None = "valgrind"
    metrics: tuple[str, ...] = HEAP_METRICS
    raw_suffix = "json"
    default_features: tuple[str, ...] = ()
    reads_default_features = False
    frames = (
        "0x10A2B3: reqctx::split_fields (main.rs:90), or (in /lib/libc.so.6) without debug info"
    )
    num_callers = 64
    """Valgrind's default of 12 frames often stops inside std's inlined generics."""

    def read(self, path: Path, options: FoldOptions) -> Profile:
        return load_dhat(path, options)

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        valgrind = require_tool("valgrind")
        done = run_workload(
            w,
            [
                valgrind,
                "--tool=dhat",
                f"--dhat-out-file={out}",
                f"--num-callers={self.num_callers}",
                # Full source paths, not basenames: a location must name its file
                # (for links and annotations), main.rs is in every crate, and the
                # path tells the workspace's code from its dependencies.
                "--fullpath-after=",
                str(exe),
                *w.args,
            ],
        )
        check_exit(w, done, "valgrind --tool=dhat")
        if not out.exists():
            raise WorkloadError(
                f"workload {w.name!r}: valgrind wrote no profile: {tail(done.stderr, 2)}"
            )
        return done, out


PROFILER = ValgrindDhat()
