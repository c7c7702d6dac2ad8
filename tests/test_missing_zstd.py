"""A zstd-compressed heaptrack trace where the zstd command is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SAMPLES

LEAKY = SAMPLES / "heaptrack" / "leaky.zst"


def test_missing_zstd_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "allocgate.cli", "show", str(LEAKY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == (
        f"allocgate: error: {LEAKY}: the zstd command is needed to read this heaptrack "
        "trace (apt-get install zstd)\n"
    )
