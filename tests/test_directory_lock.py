"""dhat-rs writes ./dhat-heap.json, so runs in one directory queue on a lock
(allocgate.profilers.dhat_rs.directory_lock); real processes contend for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT

# Says it is about to take the lock on DIR, takes it, logs, then holds it until
# each file in WAIT exists (at most 30 s), logs and lets go.
HOLDER = """
import sys, time
from pathlib import Path
from allocgate.profilers.dhat_rs import directory_lock

directory, log, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
waits = [Path(p) for p in sys.argv[4:]]
Path(f"{log}.{name}.trying").touch()
with directory_lock(directory):
    with log.open("a") as f:
        f.write(f"{name} in\\n")
    Path(f"{log}.{name}.in").touch()
    deadline = time.monotonic() + 30
    while not all(p.exists() for p in waits) and time.monotonic() < deadline:
        time.sleep(0.01)
    # Whoever is waiting for the lock has had time to block on it.
    time.sleep(0.3 if waits else 0)
    with log.open("a") as f:
        f.write(f"{name} out\\n")
Path(f"{log}.{name}.done").touch()
"""


def _start(directory: Path, log: Path, name: str, *wait: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", HOLDER, str(directory), str(log), name, *map(str, wait)]
    return subprocess.Popen(args, env=env, text=True)


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None, "the lock holder died"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_runs_in_one_directory_queue_and_other_directories_do_not(tmp_path: Path) -> None:
    shared, other = tmp_path / "shared", tmp_path / "other"
    shared.mkdir()
    other.mkdir()
    log = tmp_path / "log"
    # `first` holds the lock until `second` is trying for it and `elsewhere`,
    # locking another directory, has finished (which it cannot, if it queues too).
    first = _start(
        shared, log, "first", Path(f"{log}.second.trying"), Path(f"{log}.elsewhere.done")
    )
    _wait_for(Path(f"{log}.first.in"), first)
    second = _start(shared, log, "second")
    elsewhere = _start(other, log, "elsewhere")
    for proc in (first, second, elsewhere):
        assert proc.wait(timeout=90) == 0
    lines = log.read_text().splitlines()
    assert sorted(lines) == sorted(
        ["first in", "first out", "second in", "second out", "elsewhere in", "elsewhere out"]
    )
    assert lines.index("second in") > lines.index("first out")
    assert lines.index("elsewhere out") < lines.index("first out")
