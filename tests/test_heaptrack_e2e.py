"""The gate end to end under heaptrack: real cargo builds, real heaptrack runs.

The same story as tests/test_workloads.py under Valgrind DHAT: bless then check
passes, the regressed variant fails naming `orders::build_order`, the moved one
passes; plus what only heaptrack measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_workloads import (
    BUILD_ORDER,
    N,
    Project,
    Targets,
    regressed_sites,
    require_tools,
    restricted_path,
    workload,
)

from allocgate.callsites import FoldOptions
from allocgate.load import load_profile
from allocgate.profilers.heaptrack import HEAPTRACK_METRICS

pytestmark = [pytest.mark.cargo, pytest.mark.heaptrack]


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Targets:
    require_tools("cargo")
    return Targets(tmp_path_factory.mktemp("cargo-targets-heaptrack"))


@pytest.fixture
def project(tmp_path: Path, targets: Targets) -> Project:
    require_tools("heaptrack", "zstd")  # allocgate reads the .zst trace itself
    return Project(tmp_path / "project", targets, profiler="heaptrack")


def test_bless_then_check_passes(project: Project) -> None:
    project.config({"orders": workload("orders")})
    blessed = project.allocgate("bless")
    assert blessed.code == 0, blessed.stderr
    # A bless measures 3 runs (bless_runs) to record each site's range.
    assert "running orders 3/3 under heaptrack" in blessed.stderr
    entry = yaml.safe_load(project.baseline.read_text())["workloads"]["orders"]
    assert entry["profiler"] == "heaptrack"
    assert BUILD_ORDER in [site["key"] for site in entry["callsites"]]
    done = project.allocgate("check", "-q")
    assert done.code == 0, done.stdout
    assert done.stdout.startswith("orders: within budget")


def test_callsite_keys_are_the_same_in_every_run(project: Project) -> None:
    # Two runs of one binary: every callsite key must survive address randomisation
    # (DESIGN.md: "addresses (differ every build and run) are dropped").
    project.config({"orders": workload("orders")})
    keys = []
    for run in ("one", "two"):
        kept = project.path / run
        done = project.allocgate("run", "-q", "--keep-profiles", kept)
        assert done.code == 0, done.stderr
        (trace,) = kept.iterdir()
        profile = load_profile(trace, FoldOptions())
        keys.append({site.key for site in profile.callsites})
    assert keys[0] == keys[1], sorted(keys[0] ^ keys[1])
    assert not [key for key in keys[0] if key.startswith("0x")]


def test_regressed_variant_fails_naming_build_order(project: Project) -> None:
    project.config({"orders": workload("orders")})
    before = project.bless()
    regressed = project.config({"orders": workload("orders-regressed")}, name="regressed.yml")
    report = project.path / "report.json"
    done = project.allocgate(
        "check", "--config", regressed, "--report-json", report, crate="orders-regressed"
    )
    assert done.code == 1, done.stdout + done.stderr
    assert BUILD_ORDER in done.stdout.splitlines()[0]
    sites = regressed_sites(done.report(report))
    assert BUILD_ORDER in sites
    assert [s for s in sites if s.startswith("orders::")] == [BUILD_ORDER]
    assert project.baseline.read_bytes() == before


def test_moved_variant_passes(project: Project) -> None:
    project.config({"orders": workload("orders")})
    project.bless()
    moved = project.config({"orders": workload("orders-moved")}, name="moved.yml")
    done = project.allocgate("check", "-q", "--config", moved, crate="orders-moved")
    assert done.code == 0, done.stdout


def test_gating_on_total_blocks(project: Project) -> None:
    project.config({"orders": workload("orders")}, metrics=["total_blocks"])
    project.bless()
    assert project.allocgate("check", "-q").code == 0
    regressed = project.config(
        {"orders": workload("orders-regressed")}, name="regressed.yml", metrics=["total_blocks"]
    )
    report = project.path / "report.json"
    done = project.allocgate(
        "check", "-q", "--config", regressed, "--report-json", report, crate="orders-regressed"
    )
    assert done.code == 1, done.stdout
    doc = done.report(report)
    site = next(s for s in doc["workloads"][0]["comparison"]["sites"] if s["key"] == BUILD_ORDER)
    assert site["regressed_metrics"] == ["total_blocks"]
    # build_order allocates 8 blocks per order, the regressed variant 12.
    assert (site["baseline"]["total_blocks"], site["current"]["total_blocks"]) == (8 * N, 12 * N)


def test_heaptrack_measures_temporary_blocks(project: Project) -> None:
    # heaptrack measures every metric allocgate knows, so there is no metric it
    # lacks to refuse; its own one, temporary allocations, reaches the profile.
    assert "temporary_blocks" in HEAPTRACK_METRICS
    project.config({"orders": workload("orders")}, metrics=["temporary_blocks"])
    done = project.allocgate("run", "-q", "--format", "json")
    assert done.code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["profiler"] == "heaptrack"
    assert set(doc["totals"]) == set(HEAPTRACK_METRICS)
    assert all("temporary_blocks" in site for site in doc["callsites"])
    assert project.allocgate("bless", "-q").code == 0
    entry = yaml.safe_load(project.baseline.read_text())["workloads"]["orders"]
    assert "temporary_blocks" in entry["totals"]


def test_heaptrack_not_on_path(project: Project, tmp_path: Path) -> None:
    project.config({"orders": workload("orders")})
    before = project.bless()
    path = restricted_path(tmp_path / "bin", "cargo")
    for command in ("check", "bless"):
        done = project.allocgate(command, "-q", env={"PATH": path})
        assert done.code == 2, done.stdout + done.stderr
        line = done.error_line()
        assert "heaptrack not found on PATH" in line
        assert "apt-get install -y heaptrack" in line
        assert project.baseline.read_bytes() == before
