"""Workloads that misbehave, run by the real CLI under real profilers.

The ``hostile`` fixture crate leaves a ``setsid`` grandchild holding its output,
hangs, floods stdout with 200 MiB or panics. Each test asserts the exit code, one
error line without a traceback, a return within the timeout plus a small margin,
and that no process is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import wait_dead

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "fixtures" / "crates" / "hostile" / "Cargo.toml"
MARGIN = 5.0
"""Seconds allowed past a timeout: valgrind's start, the kill, Python's exit."""


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not found on PATH"
        if os.environ.get("ALLOCGATE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{reason}, and ALLOCGATE_REQUIRE_TOOLS=1 requires it")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The crate built once per session; allocgate's own builds are then no-ops."""
    _require("cargo", "setsid")
    target = tmp_path_factory.mktemp("hostile-target")
    build = subprocess.run(
        ["cargo", "build", "--profile", "profiling", "--manifest-path", str(MANIFEST)],
        env={**os.environ, "CARGO_TARGET_DIR": str(target), "CARGO_TERM_COLOR": "never"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return target


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kib: int

    def error_lines(self) -> list[str]:
        return [
            line
            for line in (self.stdout + self.stderr).splitlines()
            if ": ERROR: " in line or line.startswith("allocgate: error: ")
        ]


_MEASURED_MAIN = (
    "import sys\n"
    "from allocgate.cli import main\n"
    "code = main(sys.argv[1:])\n"
    # VmHWM, not ru_maxrss: the latter also counts the pytest worker this was forked from.
    "peak = next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "print(f'peak-rss-kib={peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_allocgate(
    project: Path, target: Path, *args: str, env: Mapping[str, str] | None = None
) -> Done:
    """The CLI in a child process, which reports its own peak RSS (ru_maxrss) on exit."""
    full_env = {
        **os.environ,
        "CARGO_TARGET_DIR": str(target),
        "CARGO_TERM_COLOR": "never",
        "PYTHONPATH": str(ROOT),
        "PYTHONIOENCODING": "utf-8",
        **(env or {}),
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED_MAIN, *args],
        cwd=project,
        env=full_env,
        capture_output=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    stderr = proc.stderr.decode("utf-8", "replace")
    lines = stderr.splitlines()
    peak = -1
    if lines and lines[-1].startswith("peak-rss-kib="):
        peak = int(lines.pop().split("=")[1])
    return Done(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        "".join(line + "\n" for line in lines),
        seconds,
        peak,
    )


def write_project(
    path: Path, profiler: str, mode: str, *, pidfile: Path | None = None, **settings: Any
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    args = [mode, *([str(pidfile)] if pidfile else [])]
    doc = {
        "defaults": {"profiler": profiler},
        "workloads": {"hostile": {"manifest": str(MANIFEST), "args": args, **settings}},
    }
    (path / "allocgate.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def assert_gone(pidfile: Path) -> None:
    pid = int(pidfile.read_text())
    assert wait_dead(pid), f"pid {pid} is still running"


PROFILERS = ["valgrind-dhat", "heaptrack"]


def _tools(profiler: str) -> None:
    _require("valgrind" if profiler == "valgrind-dhat" else "heaptrack")


@pytest.mark.parametrize("profiler", PROFILERS)
def test_timeout_kills_a_setsid_grandchild_holding_stdout(
    tmp_path: Path, hostile_target: Path, profiler: str
) -> None:
    _tools(profiler)
    pidfile = tmp_path / "grandchild.pid"
    project = write_project(tmp_path / "p", profiler, "hang", pidfile=pidfile, timeout="4s")
    done = run_allocgate(project, hostile_target, "run", "-q")
    assert done.code == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) <= 2, done.stderr
    [line] = done.error_lines()
    assert "timed out after 4.0 s" in line
    # The build is a no-op; what is left is the timeout and the clean-up.
    assert done.seconds < 4 + MARGIN + 3, done.seconds
    assert_gone(pidfile)


@pytest.mark.parametrize("profiler", PROFILERS)
def test_grandchild_left_running_is_reported_as_such(
    tmp_path: Path, hostile_target: Path, profiler: str
) -> None:
    _tools(profiler)
    pidfile = tmp_path / "grandchild.pid"
    project = write_project(tmp_path / "p", profiler, "orphan", pidfile=pidfile, timeout="60s")
    done = run_allocgate(project, hostile_target, "run", "-q")
    assert done.code == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.error_lines()
    pid = int(pidfile.read_text())
    assert f"left a process running: pid {pid} (sleep)" in line
    assert "timed out" not in line
    assert done.seconds < 30, done.seconds
    assert_gone(pidfile)


@pytest.mark.parametrize("profiler", PROFILERS)
@pytest.mark.parametrize("backtrace", ["0", "1", "full"])
def test_panic_message_is_the_error_line(
    tmp_path: Path, hostile_target: Path, profiler: str, backtrace: str
) -> None:
    _tools(profiler)
    project = write_project(tmp_path / "p", profiler, "panic")
    done = run_allocgate(project, hostile_target, "run", "-q", env={"RUST_BACKTRACE": backtrace})
    assert done.code == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.error_lines()
    assert "panicked: boom-42 at src/main.rs:55:13" in line, line


def test_panic_in_a_thread_names_the_first_panic(tmp_path: Path, hostile_target: Path) -> None:
    _require("valgrind")
    project = write_project(tmp_path / "p", "valgrind-dhat", "thread-panic")
    done = run_allocgate(project, hostile_target, "run", "-q", env={"RUST_BACKTRACE": "1"})
    assert done.code == 2
    [line] = done.error_lines()
    assert "panicked: boom-42 at src/main.rs:58:" in line, line


def test_200_mib_of_stdout_keeps_allocgate_small(tmp_path: Path, hostile_target: Path) -> None:
    """A memory bound, measured as the CLI process's peak RSS (ru_maxrss)."""
    _require("heaptrack")
    project = write_project(tmp_path / "p", "heaptrack", "flood", timeout="120s")
    done = run_allocgate(project, hostile_target, "run", "-q", "--format", "json")
    assert done.code == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert 0 < done.peak_rss_kib < 150 * 1024, f"peak RSS {done.peak_rss_kib} KiB"
