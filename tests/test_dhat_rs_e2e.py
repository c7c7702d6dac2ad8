"""The gate end to end under dhat-rs, on fixtures/crates/dhat-wired.

dhat-wired declares the `dhat` crate (optional, behind the `dhat-heap` feature),
which cargo must resolve from crates.io even to write Cargo.lock. Where crates.io
is unreachable and `dhat` is not in the local cargo cache, these tests skip and
say so; the crate is copied to a temporary directory first, so the lock file
cargo writes never lands in the repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from orders_crate import materialise
from test_workloads import Done, N, Project, Targets, require_tools

pytestmark = pytest.mark.cargo

RESOLVE_TIMEOUT = 30


def _cargo_error(text: str) -> str:
    """cargo's first ``error:`` line and, when it differs, its last line (the cause)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "no output"
    first = next((line for line in lines if line.startswith("error")), lines[-1])
    return first if first == lines[-1] or "--offline" in lines[-1] else f"{first} ({lines[-1]})"


@pytest.fixture(scope="session")
def dhat_wired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of dhat-wired whose `dhat` dependency cargo could resolve, or a skip."""
    require_tools("cargo")
    crate = tmp_path_factory.mktemp("dhat-wired") / "dhat-wired"
    materialise("dhat-wired", crate)
    env = {**os.environ, "CARGO_NET_RETRY": "0", "CARGO_TERM_COLOR": "never"}
    problems = []
    # Offline first (a warm cache is enough), then online with no retries.
    for extra in (["--offline"], []):
        try:
            proc = subprocess.run(
                [
                    "cargo",
                    "generate-lockfile",
                    *extra,
                    "--manifest-path",
                    str(crate / "Cargo.toml"),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=RESOLVE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            problems.append(f"`cargo generate-lockfile` timed out after {RESOLVE_TIMEOUT} s")
            continue
        if proc.returncode == 0:
            return crate
        problems.append(_cargo_error(proc.stderr))
    pytest.skip(
        "cargo cannot resolve the `dhat` crate that fixtures/crates/dhat-wired depends on "
        "(crates.io unreachable and `dhat` not in the local cargo cache): " + "; ".join(problems)
    )


class DhatProject(Project):
    """A project whose workload is the resolved copy of dhat-wired."""

    def __init__(self, path: Path, targets: Targets, crate: Path) -> None:
        super().__init__(path, targets, profiler="dhat-rs")
        self.crate = crate

    def workload(self, *flags: str) -> dict[str, object]:
        return {"manifest": str(self.crate / "Cargo.toml"), "args": [str(N), *flags]}

    def run(self, *args: str) -> Done:
        return self.allocgate(*args, crate="dhat-wired")


@pytest.fixture(scope="session")
def dhat_targets(dhat_wired: Path, tmp_path_factory: pytest.TempPathFactory) -> Targets:
    """dhat-wired's target directory, built once (without dhat) from the resolved copy."""
    targets = Targets(tmp_path_factory.mktemp("cargo-targets-dhat"))
    build = targets.build("dhat-wired", dhat_wired / "Cargo.toml")
    assert build.returncode == 0, build.stderr
    return targets


@pytest.fixture
def project(tmp_path: Path, dhat_wired: Path, dhat_targets: Targets) -> DhatProject:
    return DhatProject(tmp_path / "project", dhat_targets, dhat_wired)


def test_bless_then_check_passes_and_keeps_the_users_dhat_heap_json(project: DhatProject) -> None:
    project.config({"orders": project.workload()})
    # The workload runs in the project directory, where dhat-rs writes
    # ./dhat-heap.json; a file of the user's by that name must survive.
    users = project.path / "dhat-heap.json"
    users.write_text("the user's own profile\n")
    blessed = project.run("bless")
    assert blessed.code == 0, blessed.stdout + blessed.stderr
    assert "features dhat-heap" in blessed.stderr
    assert "under dhat-rs" in blessed.stderr
    done = project.run("check", "-q")
    assert done.code == 0, done.stdout
    assert "orders::build_order" in done.stdout
    assert users.read_text() == "the user's own profile\n"


def test_exit_early_means_no_profile(project: DhatProject) -> None:
    project.config({"orders": project.workload()})
    before = project.run("bless", "-q")
    assert before.code == 0
    blessed = project.baseline.read_bytes()
    project.config({"orders": project.workload("--exit-early")})
    for command in ("check", "bless"):
        done = project.run(command, "-q")
        assert done.code == 2, done.stdout + done.stderr
        line = done.error_line()
        assert "dhat-heap.json" in line
        # The usual causes: exit before the Profiler drops, the feature, no Profiler.
        assert "process::exit" in line
        assert "dhat-heap" in line
        assert "Profiler" in line
        assert project.baseline.read_bytes() == blessed
