"""Running a process tree: its own process group, a timeout that ends the whole
group, the tools it needs, and one progress line per step."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from allocgate.errors import WorkloadError
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
    stderr: str
    seconds: float


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
) -> Finished:
    """Runs a child in its own process group; a timeout kills the whole group."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise WorkloadError(f"{what}: cannot start {argv[0]}: {exc.strerror}") from exc
    except PermissionError as exc:
        raise WorkloadError(f"{what}: cannot execute {argv[0]}: {exc.strerror}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise WorkloadError(
            f"{what}: timed out after {format_seconds(timeout or 0)}; the process group was killed"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return Finished(proc.returncode, stdout, stderr, time.monotonic() - started)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


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
