"""The interface every heap profiler (back end) implements, and what they share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from allocgate.errors import WorkloadError
from allocgate.process import Finished, run_process, signal_name, tail

if TYPE_CHECKING:
    from allocgate.callsites import FoldOptions
    from allocgate.config import WorkloadConfig
    from allocgate.profile import Profile

# Lines the profilers print themselves; they say nothing about why a workload failed.
_TOOL_LINE_PREFIXES = ("==", "heaptrack ", "dhat:")


class Profiler(Protocol):
    """One heap profiler: how to build for it, run under it, and read what it wrote."""

    name: str
    """As written in allocgate.yml and the baseline: ``dhat-rs``, ``heaptrack``…"""
    tool: str | None
    """The external program it needs besides cargo."""
    metrics: tuple[str, ...]
    """What a heap profile of this profiler measures; other metrics are absent."""
    raw_suffix: str
    """The suffix of the raw profile it writes (``json``, ``heaptrack``)."""
    frames: str
    """What its frames look like, for people reading a raw profile."""

    default_features: tuple[str, ...]
    """Cargo features to build with when allocgate.yml names none."""
    reads_default_features: bool
    """Whether ``defaults.features`` applies to it (a workload's own ``features`` always do)."""

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        """Runs the workload once, returning how it ended and the raw profile's path."""
        ...

    def read(self, path: Path, options: FoldOptions) -> Profile:
        """Reads and folds one raw profile."""
        ...


def run_workload(w: WorkloadConfig, argv: list[str]) -> Finished:
    """Runs the workload's command (under a profiler) in its directory, environment
    and time limit."""
    env = dict(os.environ)
    env.update(w.env)
    return run_process(argv, cwd=w.cwd, env=env, timeout=w.timeout, what=f"workload {w.name!r}")


def check_exit(w: WorkloadConfig, done: Finished, tool: str) -> None:
    """A workload that failed under a profiler is an error naming how it ended; a
    test that failed is an error with its own message (and one that did not run, too)."""
    if w.test is not None:
        from allocgate.cargo_tests import check_test_ran

        check_test_ran(w.test, done, tool)
        return
    if done.returncode == 0:
        return
    if done.returncode < 0:
        how = f"was killed by {signal_name(done.returncode)}"
    else:
        how = f"exited with code {done.returncode}"
    left = (
        "; it also left running (now killed): " + ", ".join(str(x) for x in done.leftovers)
        if done.leftovers
        else ""
    )
    if done.panic is not None:
        # Found in the whole stderr stream: backtraces, Valgrind's summary or
        # heaptrack's statistics after it never push it out.
        raise WorkloadError(f"workload {w.name!r} {how} under {tool}: panicked: {done.panic}{left}")
    last = tail(_strip_tool_lines(done.stderr), 3).replace("\n", " | ")
    raise WorkloadError(
        f"workload {w.name!r} {how} under {tool}" + (f"; stderr: {last}" if last else "") + left
    )


def _strip_tool_lines(stderr: str) -> str:
    return "\n".join(
        line for line in stderr.splitlines() if not line.startswith(_TOOL_LINE_PREFIXES)
    )
