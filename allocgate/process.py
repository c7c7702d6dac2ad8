"""Running a process tree as allocgate needs it: timeouts and leftovers as errors,
the tools it needs, and one progress line per step. The mechanics (sessions,
/proc, bounded output, panics) are in ``proctree``."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from allocgate.errors import WorkloadError
from allocgate.proctree import Leftover, Panic, StartError, run_tree
from allocgate.quantities import format_seconds

TAIL_LINES = 20
_INSTALL_HINTS = {
    "cargo": "install Rust with rustup (https://rustup.rs)",
    "valgrind": "install it with `apt-get install -y valgrind`",
    "heaptrack": "install it with `apt-get install -y heaptrack`",
}


def require_tool(name: str) -> str:
    """The path of an external tool, or an error saying how to install it."""
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINTS.get(name, "install it")
        raise WorkloadError(f"{name} not found on PATH: {hint}")
    return found


class Progress:
    """One line per step on stderr, finished with its timing; silent when quiet."""

    def __init__(self, stream: IO[str] | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        if not self.quiet:
            self.stream.write(f"allocgate: {text}… ")
            self.stream.flush()
        started = time.monotonic()
        try:
            yield
        except BaseException:
            if not self.quiet:
                self.stream.write("failed\n")
            raise
        if not self.quiet:
            self.stream.write(f"{format_seconds(time.monotonic() - started)}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(f"allocgate: {text}\n")


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    """The last 64 KiB: a workload's output is never kept whole."""
    stderr: str
    seconds: float
    panic: Panic | None = None
    """The first Rust panic on stderr, found in the whole stream."""
    leftovers: tuple[Leftover, ...] = ()
    """Processes that outlived a failed workload (killed)."""


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str,
    workload: bool = True,
    stdout_sink: BinaryIO | None = None,
    stderr_sink: BinaryIO | None = None,
) -> Finished:
    """Runs a process tree to its end or its deadline; nothing of it is left running.

    A timeout kills the whole tree (also descendants that started their own
    session) and is an error. A workload that exits but leaves a process running
    is an error too (the process is killed); a build's leftovers, such as a
    compiler cache server, are left alone.
    """
    try:
        done = run_tree(
            argv,
            cwd=cwd,
            env=env,
            timeout=timeout,
            stdout_sink=stdout_sink,
            stderr_sink=stderr_sink,
            scan_panics=workload,
            kill_leftovers=workload,
        )
    except StartError as exc:
        raise WorkloadError(f"{what}: cannot start {argv[0]}: {exc}") from exc
    if done.timed_out:
        raise WorkloadError(
            f"{what}: timed out after {format_seconds(timeout or 0)}; "
            "it and every process it started were killed"
        )
    if done.leftovers and done.returncode == 0:
        several = len(done.leftovers) > 1
        raise WorkloadError(
            f"{what} exited but left {'processes' if several else 'a process'} running: "
            + ", ".join(str(x) for x in done.leftovers)
            + f"; {'they were' if several else 'it was'} killed"
        )
    return Finished(
        done.returncode, done.stdout, done.stderr, done.seconds, done.panic, done.leftovers
    )


def command_output(argv: Sequence[str], cwd: Path | None = None, timeout: float = 60) -> str | None:
    """The stdout of a quick query (``rustc -vV``, ``git rev-parse``), or None when it
    cannot run or fails: such facts are optional, never a reason to stop."""
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
