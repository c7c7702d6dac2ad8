"""Callsite identity survives real edits: the fixture crates built with cargo and profiled
with Valgrind DHAT at test time.

- ``orders-moved`` (lines moved, functions reordered, locals renamed) must fold to
  exactly the callsites and values of ``orders``;
- ``orders-regressed`` (one extra clone in ``build_order``) must be reported as a
  regression at that function, and only there.

Each crate is built and profiled once per session. Without cargo or valgrind the
tests skip, unless ALLOCGATE_REQUIRE_TOOLS=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT, RunCli, require_tools
from orders_crate import orders_crate

from allocgate.callsites import FoldOptions
from allocgate.load import load_profile
from allocgate.profile import Profile

VARIANTS = ("orders", "orders-moved", "orders-regressed")
# Every function of orders that allocates (fixtures/crates/README.md).
HOT = (
    "orders::make_line",
    "orders::parse_line",
    "orders::build_order",
    "orders::render_receipt",
    "orders::index_by_customer",
)

pytestmark = [pytest.mark.cargo, pytest.mark.valgrind]

Profiled = Callable[[str], Path]


def _need(tool: str) -> str:
    require_tools(tool)
    path = shutil.which(tool)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Profiled:
    """``profiled(crate)``: builds the crate once and returns its Valgrind DHAT profile."""
    cargo = _need("cargo")
    valgrind = _need("valgrind")
    root = tmp_path_factory.mktemp("fold-stability")
    cache: dict[str, Path] = {}
    env = {k: v for k, v in os.environ.items() if k != "RUSTFLAGS"}
    env["CARGO_TERM_COLOR"] = "never"

    def profile(crate: str) -> Path:
        if crate in cache:
            return cache[crate]
        # Target directories whose paths have the same length, so the binaries'
        # paths do too: std::env::args copies argv into orders::parse_args.
        target = root / f"target-{VARIANTS.index(crate)}"
        build = subprocess.run(
            [
                cargo,
                "build",
                "--offline",
                "--locked",
                "--profile",
                "profiling",
                "--manifest-path",
                str(orders_crate(crate) / "Cargo.toml"),
                "--target-dir",
                str(target),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        assert build.returncode == 0, f"cargo build of {crate} failed:\n{build.stderr}"
        binary = target / "profiling" / "orders"
        out = root / f"{crate}.dhat.json"
        run = subprocess.run(
            [valgrind, "--tool=dhat", f"--dhat-out-file={out}", str(binary)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, f"{crate} under valgrind failed:\n{run.stderr}"
        assert out.is_file()
        cache[crate] = out
        return out

    return profile


def fold(path: Path, depth: int = 1) -> Profile:
    return load_profile(path, FoldOptions(depth=depth))


def test_the_fixture_crates_are_there() -> None:
    for crate in VARIANTS:
        assert (orders_crate(crate) / "Cargo.toml").is_file(), crate
        assert (orders_crate(crate) / "src" / "main.rs").is_file(), crate


def test_the_regressed_variant_says_which_function_changed() -> None:
    source = (orders_crate("orders-regressed") / "src" / "main.rs").read_text(encoding="utf-8")
    header = "\n".join(line for line in source.splitlines() if line.startswith("//!"))
    assert re.search(r"in `build_order`", header)
    # ...and that function is the one whose body differs from orders'.
    base = (orders_crate("orders") / "src" / "main.rs").read_text(encoding="utf-8").splitlines()
    changed = [
        i
        for i, (a, b) in enumerate(zip(base, source.splitlines()))
        if a != b and not a.startswith("//!")
    ]
    assert len(changed) == 1
    above = base[: changed[0]]
    owner = next(line for line in reversed(above) if line.lstrip().startswith("fn "))
    assert "fn build_order" in owner


def test_valgrind_profile_names_the_hot_functions(profiled: Profiled) -> None:
    profile = fold(profiled("orders"))
    assert profile.profiler == "valgrind-dhat"
    keys = [s.key for s in profile.callsites]
    assert set(keys[:5]) == set(HOT)
    by_key = {s.key: s.metrics for s in profile.callsites}
    # fixtures/crates/README.md: N = 5000.
    assert by_key["orders::make_line"]["total_bytes"] == 230_000
    assert by_key["orders::make_line"]["total_blocks"] == 5_000
    assert by_key["orders::build_order"]["total_bytes"] == 730_000
    assert by_key["orders::render_receipt"]["total_bytes"] == 800_000


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_moved_lines_fold_to_identical_callsites(profiled: Profiled, depth: int) -> None:
    original = fold(profiled("orders"), depth)
    moved = fold(profiled("orders-moved"), depth)
    assert {s.key: s.metrics for s in moved.callsites} == {
        s.key: s.metrics for s in original.callsites
    }
    assert moved.totals == original.totals
    assert [s.key for s in moved.callsites] == [s.key for s in original.callsites]
    # The lines really moved: the same callsites are seen at other lines.
    where = {s.key.split(" ← ")[0]: s.location for s in original.callsites}
    moved_where = {s.key.split(" ← ")[0]: s.location for s in moved.callsites}
    assert all(where[k] != moved_where[k] for k in HOT), (where, moved_where)


def test_moved_lines_diff_as_unchanged(profiled: Profiled, cli: RunCli) -> None:
    code, out, err = cli(
        "diff", profiled("orders"), profiled("orders-moved"), "--format", "json", "--top", "20"
    )
    assert code == 0, err
    sites = json.loads(out)["workloads"][0]["comparison"]["sites"]
    assert {s["status"] for s in sites} == {"unchanged"}


def test_extra_clone_is_a_regression_at_build_order(profiled: Profiled, cli: RunCli) -> None:
    code, out, err = cli(
        "diff", profiled("orders"), profiled("orders-regressed"), "--format", "json"
    )
    assert code == 1, err
    comparison = json.loads(out)["workloads"][0]["comparison"]
    statuses = {s["key"]: s["status"] for s in comparison["sites"]}
    regressed = {s["key"] for s in comparison["sites"] if s["regressed_metrics"]}
    assert regressed == {"orders::build_order"}
    for key in HOT:
        if key != "orders::build_order":
            assert statuses.get(key, "unchanged") == "unchanged", key
    build = next(s for s in comparison["sites"] if s["key"] == "orders::build_order")
    # fixtures/crates/README.md: 730,000 B / 40,000 blocks → 1,275,000 B / 60,000 blocks.
    assert build["baseline"]["total_bytes"] == 730_000
    assert build["current"]["total_bytes"] == 1_275_000
    assert build["current"]["total_blocks"] == 60_000


def test_extra_clone_text_report_names_only_build_order(profiled: Profiled, cli: RunCli) -> None:
    code, out, _ = cli("diff", profiled("orders"), profiled("orders-regressed"))
    assert code == 1
    verdict = out.splitlines()[0]
    grew = verdict.split("grew: ", 1)[1]
    names = {n.strip() for n in grew.split(",")}
    assert "orders::build_order" in names
    assert names <= {"orders::build_order", "total"}


def test_blessed_orders_gates_the_regressed_variant(
    profiled: Profiled, cli: RunCli, tmp_path: Path
) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, _, err = cli(
        "bless", "--profile", profiled("orders"), "--workload", "orders", "--baseline", baseline
    )
    assert code == 0, err
    assert cli("diff", baseline, profiled("orders-moved"))[0] == 0
    code, out, _ = cli("diff", baseline, profiled("orders-regressed"), "--format", "json")
    assert code == 1
    sites = json.loads(out)["workloads"][0]["comparison"]["sites"]
    assert {s["key"] for s in sites if s["regressed_metrics"]} == {"orders::build_order"}


@pytest.mark.parametrize(("require", "outcome"), [(None, "skipped"), ("1", "errors")])
def test_missing_tools_skip_or_fail(
    require: str | None, outcome: str, pytester: pytest.Pytester
) -> None:
    # This very module, run where neither cargo nor valgrind is on PATH.
    here = Path(__file__)
    pytester.makeconftest((here.parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(
        test_copy=here.read_text(encoding="utf-8"),
        orders_crate=(here.parent / "orders_crate.py").read_text(encoding="utf-8"),
    )
    pytester.makeini(
        "[pytest]\nmarkers =\n    cargo: cargo\n    valgrind: valgrind\n"
        "filterwarnings = error\naddopts = --strict-markers -p no:cacheprovider\n"
    )
    empty = pytester.mkdir("empty-bin")
    env = {**os.environ, "PATH": str(empty), "PYTHONPATH": str(ROOT)}
    env.pop("ALLOCGATE_REQUIRE_TOOLS", None)
    if require is not None:
        env["ALLOCGATE_REQUIRE_TOOLS"] = require
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:allocgate",
            # pytest-benchmark, where installed, fails to start without git on PATH.
            "-p",
            "no:benchmark",
            "-k",
            "profiled or moved or clone or blessed or hot",
            "-rs",
            str(pytester.path / "test_copy.py"),
        ],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" not in summary, proc.stdout
    if outcome == "skipped":
        assert proc.returncode == 0, proc.stdout
        assert re.search(r"\b\d+ skipped\b", summary), summary
        assert "cargo is not installed" in proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout
        assert "ALLOCGATE_REQUIRE_TOOLS=1 requires it" in proc.stdout
        assert "skipped" not in summary, summary
