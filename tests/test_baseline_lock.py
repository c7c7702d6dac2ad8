"""Blesses that run at once all land; a killed bless leaves nothing behind for long.

Real ``allocgate bless`` processes write different workloads into one baseline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DHAT_RS, ROOT, VALGRIND, run_cli

from allocgate.baseline_file import read_baseline

PROFILES = [
    DHAT_RS / "reqctx-base.json",
    DHAT_RS / "leaky.json",
    DHAT_RS / "threads.json",
    VALGRIND / "reqctx-base.json",
    VALGRIND / "leaky.json",
]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _bless(profile: Path, workload: str, baseline: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "allocgate.cli",
        "bless",
        "-q",
        "--profile",
        str(profile),
        "--workload",
        workload,
        "--baseline",
        str(baseline),
    ]


@pytest.mark.parametrize("trial", range(3))
def test_five_concurrent_blesses_lose_no_update(tmp_path: Path, trial: int) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, _, stderr = run_cli(*_bless(PROFILES[0], "seed", baseline)[3:])
    assert code == 0, stderr
    procs = [
        subprocess.Popen(
            _bless(PROFILES[i], f"w{i}", baseline),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(5)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    assert sorted(read_baseline(baseline).workloads) == ["seed", "w0", "w1", "w2", "w3", "w4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [baseline.name]


def test_temp_file_of_a_killed_bless_is_cleaned_by_the_next(tmp_path: Path) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, _, stderr = run_cli(*_bless(PROFILES[0], "seed", baseline)[3:])
    assert code == 0, stderr
    # What a bless killed between writing its temporary file and renaming it leaves.
    stale = tmp_path / f".{baseline.name}.k1ll3d.tmp"
    stale.write_text("version: 1\nworkloads:\n  half", encoding="utf-8")
    code, _, stderr = run_cli(*_bless(PROFILES[1], "next", baseline)[3:])
    assert code == 0, stderr
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [baseline.name]
    assert sorted(read_baseline(baseline).workloads) == ["next", "seed"]


def test_blesses_killed_at_random_moments_leave_a_readable_baseline(tmp_path: Path) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, _, stderr = run_cli(*_bless(PROFILES[0], "seed", baseline)[3:])
    assert code == 0, stderr
    big = VALGRIND / "manysites.json"
    for i, delay in enumerate((0.35, 0.5, 0.65, 0.8)):
        proc = subprocess.Popen(
            _bless(big, f"k{i}", baseline),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert "seed" in read_baseline(baseline).workloads
    code, _, stderr = run_cli(*_bless(PROFILES[1], "after", baseline)[3:])
    assert code == 0, stderr
    assert {"seed", "after"} <= set(read_baseline(baseline).workloads)
    assert sorted(p.name for p in tmp_path.iterdir()) == [baseline.name]


def test_bless_into_a_baseline_ending_in_spaces_keeps_the_others(tmp_path: Path) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, _, stderr = run_cli(*_bless(PROFILES[0], "first", baseline)[3:])
    assert code == 0, stderr
    # Edited by hand: trailing spaces, and no final newline.
    baseline.write_text(baseline.read_text().rstrip("\n") + "   ", encoding="utf-8")
    code, _, stderr = run_cli(*_bless(PROFILES[1], "second", baseline)[3:])
    assert code == 0, stderr
    assert sorted(read_baseline(baseline).workloads) == ["first", "second"]
