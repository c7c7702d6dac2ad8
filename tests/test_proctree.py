"""The process-tree runner with real processes: deadlines, escaped grandchildren,
leftovers, bounded output and panics found anywhere in stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import wait_dead

from allocgate.proctree import PanicScanner, StartError, Tail, run_tree

SH = "/bin/sh"


def test_setsid_grandchild_holding_stdout_does_not_outlast_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # The grandchild starts its own session, keeps stdout open and outlives everything.
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & sleep 300"
    started = time.monotonic()
    result = run_tree([SH, "-c", script], cwd=tmp_path, timeout=1.5)
    took = time.monotonic() - started
    assert result.timed_out
    assert took < 1.5 + 2.0, took
    grandchild = int(pidfile.read_text())
    assert wait_dead(grandchild)


def test_double_forked_daemon_is_killed_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # Its parent exits at once, so the daemon is reparented away from the tree.
    script = f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &) ; sleep 300"
    result = run_tree([SH, "-c", script], cwd=tmp_path, timeout=1.0)
    assert result.timed_out
    assert wait_dead(int(pidfile.read_text()))


def test_grandchild_left_running_after_exit_is_reported_and_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & sleep 0.2; echo done"
    started = time.monotonic()
    result = run_tree([SH, "-c", script], cwd=tmp_path, timeout=30)
    assert time.monotonic() - started < 5
    assert not result.timed_out
    assert result.returncode == 0
    grandchild = int(pidfile.read_text())
    assert [x.pid for x in result.leftovers] == [grandchild]
    assert result.leftovers[0].name == "sleep"
    assert "done" in result.stdout
    assert wait_dead(grandchild)


def test_orphan_with_redirected_output_is_found_by_its_marker(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = (
        f"(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' </dev/null >/dev/null 2>&1 &)"
        "; sleep 0.1"
    )
    result = run_tree([SH, "-c", script], cwd=tmp_path, timeout=30)
    grandchild = int(pidfile.read_text())
    assert [x.pid for x in result.leftovers] == [grandchild]
    assert wait_dead(grandchild)


def test_clean_exit_has_no_leftovers(tmp_path: Path) -> None:
    result = run_tree([SH, "-c", "echo out; echo err >&2; exit 3"], cwd=tmp_path, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.leftovers == ()
    assert not result.timed_out


def test_credentials_never_reach_a_child(tmp_path: Path) -> None:
    env = dict(os.environ, GITHUB_TOKEN="ghs_secret", GH_TOKEN="gho_secret", KEEP="kept")
    script = 'echo "${GITHUB_TOKEN:-none} ${GH_TOKEN:-none} ${KEEP:-none}"'
    result = run_tree([SH, "-c", script], cwd=tmp_path, env=env, timeout=30)
    assert result.stdout == "none none kept\n"


def test_child_that_closes_its_pipes_still_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_tree([SH, "-c", "exec >/dev/null 2>&1; sleep 300"], cwd=tmp_path, timeout=1.0)
    assert result.timed_out
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "argv",
    [["/no/such/program"], [SH, "-c", "echo \0"]],
    ids=["missing", "nul-byte"],
)
def test_what_cannot_start_is_a_start_error(tmp_path: Path, argv: list[str]) -> None:
    with pytest.raises(StartError):
        run_tree(argv, cwd=tmp_path, timeout=5)


def test_env_key_with_equals_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(StartError):
        run_tree([SH, "-c", "true"], cwd=tmp_path, env={"A=B": "1"}, timeout=5)


def test_200_mb_of_output_costs_a_bounded_tail(tmp_path: Path) -> None:
    """Measured in a separate process, which reports its own peak RSS: VmHWM, the
    high-water mark of its memory since exec. (Its ru_maxrss would also count the
    pages of the big pytest worker it was forked from.)"""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from allocgate.proctree import run_tree\n"
        "r = run_tree(['/bin/sh', '-c', 'head -c 209715200 /dev/zero | tr \"\\\\0\" x; "
        "echo; echo last-line'], cwd=Path('.'), timeout=120)\n"
        "assert r.returncode == 0, r\n"
        "assert r.stdout_bytes > 200 * 1024 * 1024, r.stdout_bytes\n"
        "assert r.stdout.endswith('last-line\\n')\n"
        "assert len(r.stdout) <= 64 * 1024\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    peak_kib = int(proc.stdout.split()[-1])
    assert 0 < peak_kib < 150 * 1024, peak_kib


def test_stdout_sink_gets_everything(tmp_path: Path) -> None:
    sink = tmp_path / "out"
    with sink.open("wb") as handle:
        result = run_tree([SH, "-c", "seq 1 200000"], cwd=tmp_path, timeout=30, stdout_sink=handle)
    lines = sink.read_text().splitlines()
    assert len(lines) == 200000
    assert (lines[0], lines[-1]) == ("1", "200000")
    assert result.stdout.endswith("200000\n")
    assert len(result.stdout) <= 64 * 1024


def test_tail_keeps_the_end() -> None:
    tail = Tail(limit=10)
    for i in range(1000):
        tail.feed(f"line {i}\n".encode())
    assert tail.text() == "line 999\n"
    assert tail.total == sum(len(f"line {i}\n") for i in range(1000))


MODERN = (
    "thread 'main' panicked at src/main.rs:12:5:\nboom-42\n"
    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
)
BACKTRACE = "thread 'main' panicked at src/main.rs:12:5:\nboom-42\nstack backtrace:\n" + "".join(
    f"  {i}: std::panicking::frame{i}\n             at /rustc/x/lib.rs:{i}\n" for i in range(200)
)
WITH_ID = "thread 'main' (1629) panicked at src/main.rs:12:5:\nboom-42\nnote: x\n"
OLD = "thread 'main' panicked at 'boom-42', src/main.rs:12:5\nnote: run with ...\n"
VALGRIND = (
    "==123== DHAT, a dynamic heap analysis tool\n"
    "thread 'main' panicked at src/main.rs:12:5:\nboom-42\n"
    "note: run with `RUST_BACKTRACE=1`\n==123== \n==123== Total: 10 bytes\n"
    * 1
    + "==123== filler\n" * 500
)
HEAPTRACK = (
    "heaptrack output will be written to x\nstarting application\n"
    "thread '<unnamed>' panicked at src/main.rs:12:5:\nboom-42\n"
    "heaptrack stats:\n\tallocations:\t10\n" + "\tleaked:\t1\n" * 500
)


@pytest.mark.parametrize(
    "stream",
    [MODERN, BACKTRACE, WITH_ID, OLD, VALGRIND, HEAPTRACK],
    ids=["modern", "backtrace", "thread-id", "old", "valgrind", "heaptrack"],
)
@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_panic_found_in_any_chunking(stream: str, piece: int) -> None:
    data = ("noise before\n" * 300 + stream).encode()
    scanner = PanicScanner()
    for i in range(0, len(data), piece):
        scanner.feed(data[i : i + piece])
    panic = scanner.close()
    assert panic is not None
    assert panic.message == "boom-42"
    assert panic.location == "src/main.rs:12:5"
    assert str(panic) == "boom-42 at src/main.rs:12:5"


def test_only_the_first_panic_counts() -> None:
    scanner = PanicScanner()
    scanner.feed(
        b"thread 'a' panicked at src/a.rs:1:1:\nfirst\n\n"
        b"thread 'b' panicked at src/b.rs:2:2:\nsecond\n"
    )
    panic = scanner.close()
    assert panic is not None
    assert (panic.message, panic.thread) == ("first", "a")


def test_panic_from_a_real_process_despite_a_flood_after_it(tmp_path: Path) -> None:
    script = (
        "printf \"thread 'main' panicked at src/main.rs:12:5:\\nboom-42\\n\" >&2; "
        "head -c 3000000 /dev/zero | tr '\\0' '=' | fold -w 80 >&2; exit 101"
    )
    result = run_tree([SH, "-c", script], cwd=tmp_path, timeout=30)
    assert result.returncode == 101
    assert result.panic is not None
    assert str(result.panic) == "boom-42 at src/main.rs:12:5"
    assert "boom-42" not in result.stderr


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        # A Drop impl prints during unwinding: not part of the message.
        ("thread 'main' panicked at src/main.rs:9:9:\nboom-42\norders: finished\n", "boom-42"),
        ("thread 'main' panicked at src/main.rs:9:9:\nboom-42\n\nlater output\n", "boom-42"),
        # Rust's own note ends a message of several lines.
        (
            "thread 'main' panicked at src/main.rs:9:9:\nline one\nline two\nnote: x\n",
            "line one\nline two",
        ),
        ("thread 'main' panicked at src/main.rs:9:9:\nboom-42", "boom-42"),
    ],
    ids=["drop-output", "blank-then-output", "multi-line", "no-newline-at-eof"],
)
def test_where_a_panic_message_ends(stream: str, message: str) -> None:
    scanner = PanicScanner()
    scanner.feed(stream.encode())
    panic = scanner.close()
    assert panic is not None
    assert panic.message == message
