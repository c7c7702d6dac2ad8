"""Shared fixtures: where the real profiles live, and a way to run the CLI as users do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "fixtures" / "samples"
DHAT_RS = SAMPLES / "dhat-rs"
VALGRIND = SAMPLES / "valgrind-dhat"
BAD = ROOT / "fixtures" / "bad"

# Every DHAT JSON sample (dhat-rs and Valgrind), including the determinism reruns,
# the ad-hoc profile, the release build without debug info and the dev build.
DHAT_SAMPLES = sorted(
    [*DHAT_RS.rglob("*.json"), *VALGRIND.rglob("*.json")],
    key=lambda p: str(p.relative_to(SAMPLES)),
)


def sample_id(path: Path) -> str:
    return str(path.relative_to(SAMPLES))


def dhat_json(path: Path) -> dict[str, Any]:
    """The profile decoded independently of allocgate (plain ``json``)."""
    with path.open(encoding="utf-8") as handle:
        doc: dict[str, Any] = json.load(handle)
    return doc


CliResult = tuple[int, str, str]
RunCli = Callable[..., CliResult]


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """``python -m allocgate.cli ARGS`` in a subprocess → (exit code, stdout, stderr);
    ``env``: the environment to start from (default: this process's)."""
    env = dict(os.environ if env is None else env)
    # The package is imported from this checkout whatever the working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    env.pop("ALLOCGATE_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "allocgate.cli", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def cli() -> RunCli:
    """Runs the ``allocgate`` CLI in a subprocess; returns (code, stdout, stderr)."""
    return run_cli


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def dhat_rs() -> Path:
    return DHAT_RS


@pytest.fixture(scope="session")
def valgrind() -> Path:
    return VALGRIND


@pytest.fixture(scope="session")
def bad_dir() -> Path:
    return BAD
