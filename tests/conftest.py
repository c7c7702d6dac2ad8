"""Shared fixtures: where the real profiles live, and a way to run the CLI as users do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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


def require_tools(*tools: str) -> None:
    """Skips the test when a tool it needs is not installed; in CI, where
    ALLOCGATE_REQUIRE_TOOLS=1, every tool is installed and a missing one fails."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} is not installed")


def skip_or_fail(missing: str) -> NoReturn:
    """Skips for a missing prerequisite (``missing`` says which); fails in CI."""
    if os.environ.get("ALLOCGATE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{missing}, and ALLOCGATE_REQUIRE_TOOLS=1 requires it")
    pytest.skip(missing)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that talks to the loopback GitHub stand-in (tests/github_server.py),
    # directly or through another fixture, carries the `github` marker.
    for item in items:
        if "github" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.github)


CliResult = tuple[int, str, str]
RunCli = Callable[..., CliResult]


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    path: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """``python -m allocgate.cli ARGS`` in a subprocess → (exit code, stdout, stderr);
    ``path`` replaces PATH (to run where a tool is missing); ``env``: the environment
    to start from (default: this process's)."""
    env = dict(os.environ if env is None else env)
    if path is not None:
        env["PATH"] = path
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
