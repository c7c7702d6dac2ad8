"""`allocgate bless`, `check` and `run` on the real fixture crates under Valgrind DHAT.

Nothing is mocked: cargo builds the crates in fixtures/crates/, Valgrind runs them,
and the CLI runs in a subprocess as a user would run it. Each test writes its own
project (allocgate.yml, baseline, reports) in tmp_path. cargo builds into one
target directory per crate, made once per session outside the repository: the
variants are all package `orders`, and cargo would take one for another if they
shared a target directory.

The helpers here (``Targets``, ``Project``, ``workload``, ``require_tools``) are
also used by the heaptrack and dhat-rs end-to-end tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_tools
from orders_crate import orders_manifest

ROOT = Path(__file__).resolve().parents[1]
CRATES = ROOT / "fixtures" / "crates"
DEMO = ROOT / "fixtures" / "demo"
# The crates these tests build, in a fixed order: the index names the target
# directory (t0, t1, ...), so every binary's path has the same length, and so has
# the copy of argv that `orders::parse_args` allocates. (dhat-wired is built only
# from a temporary copy: resolving `dhat` writes a Cargo.lock next to its manifest.)
# The variants are `orders` plus a patch, materialised by tests/orders_crate.py.
MANIFESTS = {
    "orders": CRATES / "orders" / "Cargo.toml",
    "orders-moved": orders_manifest("orders-moved"),
    "orders-regressed": orders_manifest("orders-regressed"),
    "orders-broken": orders_manifest("orders-broken"),
    "demo-reqctx": DEMO / "reqctx" / "Cargo.toml",
}
# Orders per run: every hot site is far above the 1 KiB absolute tolerance, and a
# run takes about 0.3 s under Valgrind.
N = 200
BUILD_ORDER = "orders::build_order"


def _cargo_env(target: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = str(target)
    env["CARGO_TERM_COLOR"] = "never"
    env.pop("RUSTFLAGS", None)
    return env


class Targets:
    """One cargo target directory per crate, each crate built at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, subprocess.CompletedProcess[str]] = {}

    def dir(self, crate: str) -> Path:
        return self.root / (f"t{list(MANIFESTS).index(crate)}" if crate in MANIFESTS else crate)

    def build(self, crate: str, manifest: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``cargo build --profile profiling`` as allocgate runs it, so its own build is a
        no-op and a test can then take tools off PATH without losing the build."""
        if crate not in self._built:
            self._built[crate] = subprocess.run(
                [
                    "cargo",
                    "build",
                    "--profile",
                    "profiling",
                    "--manifest-path",
                    str(manifest or MANIFESTS[crate]),
                ],
                capture_output=True,
                text=True,
                env=_cargo_env(self.dir(crate)),
                timeout=600,
                check=False,
            )
        return self._built[crate]


def workload(crate: str = "orders", *flags: str, n: int = N, **settings: Any) -> dict[str, Any]:
    """A workload entry running ``crate`` (absolute manifest path) on ``n`` orders."""
    return {"manifest": str(MANIFESTS[crate]), "args": [str(n), *flags], **settings}


@dataclass(frozen=True)
class Done:
    """How one ``allocgate`` invocation ended."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    def error_line(self) -> str:
        """The one line that reports an error: ``NAME: ERROR: ...`` in a check's report,
        ``allocgate: error: ...`` otherwise."""
        lines = [
            line
            for line in (self.stdout + self.stderr).splitlines()
            if ": ERROR: " in line or line.startswith("allocgate: error: ")
        ]
        assert len(lines) == 1, f"expected one error line:\n{self.stdout}\n{self.stderr}"
        assert "Traceback" not in self.stderr, self.stderr
        return lines[0]

    def report(self, path: Path) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(path.read_bytes())
        assert doc["verdict"] == {0: "pass", 1: "regressed", 2: "error"}[self.code]
        return doc


class Project:
    """A user's project in a temporary directory: config, baseline, and the CLI run in it."""

    def __init__(self, path: Path, targets: Targets, profiler: str) -> None:
        self.path = path
        self.targets = targets
        self.profiler = profiler
        path.mkdir(parents=True, exist_ok=True)

    @property
    def baseline(self) -> Path:
        return self.path / "allocgate-baseline.yml"

    def config(
        self,
        workloads: Mapping[str, Mapping[str, Any]],
        *,
        name: str = "allocgate.yml",
        **defaults: Any,
    ) -> Path:
        doc = {"defaults": {"profiler": self.profiler, **defaults}, "workloads": dict(workloads)}
        path = self.path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def allocgate(
        self,
        *args: str | os.PathLike[str],
        crate: str = "orders",
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> Done:
        """Runs the CLI in the project, building ``crate`` into its session target dir."""
        build = self.targets.build(crate)
        if crate != "orders-broken":
            assert build.returncode == 0, build.stderr
        full_env = _cargo_env(self.targets.dir(crate))
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), full_env.get("PYTHONPATH")])
        )
        full_env["PYTHONIOENCODING"] = "utf-8"
        full_env.update(env or {})
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "allocgate.cli", *map(str, args)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            cwd=self.path,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        return Done(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def bless(self, *args: str, crate: str = "orders") -> bytes:
        """Blesses quietly, asserts it worked, and returns the baseline's bytes."""
        done = self.allocgate("bless", "-q", *args, crate=crate)
        assert done.code == 0, done.stdout + done.stderr
        return self.baseline.read_bytes()


def regressed_sites(report: Mapping[str, Any]) -> list[str]:
    return [
        site["key"]
        for result in report["workloads"]
        for site in (result["comparison"] or {}).get("sites", [])
        if site["regressed_metrics"]
    ]


def baseline_block(text: str, name: str) -> str:
    """One workload's lines of a baseline file."""
    lines = text.splitlines(keepends=True)
    start = lines.index(f"  {name}:\n")
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^  \S", lines[i])), len(lines)
    )
    return "".join(lines[start:end])


def restricted_path(directory: Path, *tools: str) -> str:
    """A PATH holding only python and the named tools (symlinks)."""
    directory.mkdir()
    (directory / "python").symlink_to(sys.executable)
    for tool in tools:
        found = shutil.which(tool)
        assert found is not None
        (directory / tool).symlink_to(found)
    return str(directory)


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Targets:
    require_tools("cargo")
    return Targets(tmp_path_factory.mktemp("cargo-targets"))


@pytest.fixture
def project(tmp_path: Path, targets: Targets) -> Project:
    require_tools("valgrind")
    return Project(tmp_path / "project", targets, profiler="valgrind-dhat")


pytestmark = [pytest.mark.cargo, pytest.mark.valgrind]


# ---------------------------------------------------------------- the gate


def test_bless_then_check_passes(project: Project) -> None:
    # A relative manifest path, as a committed allocgate.yml would have.
    manifest = os.path.relpath(CRATES / "orders" / "Cargo.toml", project.path)
    project.config({"orders": {"manifest": manifest, "args": [str(N)]}})
    blessed = project.allocgate("bless")
    assert blessed.code == 0, blessed.stderr
    assert f"{project.baseline}: recorded orders" in blessed.stderr
    baseline = yaml.safe_load(project.baseline.read_text())
    keys = [site["key"] for site in baseline["workloads"]["orders"]["callsites"]]
    assert BUILD_ORDER in keys
    assert baseline["workloads"]["orders"]["profiler"] == "valgrind-dhat"

    checked = project.allocgate("check")
    assert checked.code == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("orders: within budget")
    assert BUILD_ORDER in checked.stdout


def test_the_demo_passes(project: Project) -> None:
    # The README's "run the main job": the committed demo baseline holds on this machine.
    config, baseline = DEMO / "allocgate.yml", DEMO / "allocgate-baseline.yml"
    before = baseline.read_bytes()
    done = project.allocgate("check", "--config", config, crate="demo-reqctx")
    assert done.code == 0, done.stdout + done.stderr
    assert done.stdout.startswith("reqctx: within budget")
    assert baseline.read_bytes() == before


def test_regressed_variant_fails_naming_build_order(project: Project) -> None:
    project.config({"orders": workload("orders")})
    before = project.bless()
    regressed = project.config({"orders": workload("orders-regressed")}, name="regressed.yml")
    report = project.path / "report.json"
    done = project.allocgate(
        "check", "--config", regressed, "--report-json", report, crate="orders-regressed"
    )
    assert done.code == 1, done.stdout + done.stderr
    assert done.stdout.startswith("orders: REGRESSED")
    assert f"grew: {BUILD_ORDER}" in done.stdout.splitlines()[0]
    assert re.search(
        rf"^  {BUILD_ORDER} grew via orders::process_orders \(\+[\d.]+ \w+\)$", done.stdout, re.M
    ), done.stdout
    assert regressed_sites(done.report(report)) == [BUILD_ORDER]
    assert project.baseline.read_bytes() == before


def test_moved_variant_passes_against_the_orders_baseline(project: Project) -> None:
    project.config({"orders": workload("orders")})
    project.bless()
    moved = project.config({"orders": workload("orders-moved")}, name="moved.yml")
    done = project.allocgate("check", "--config", moved, crate="orders-moved")
    assert done.code == 0, done.stdout + done.stderr
    assert "orders: within budget" in done.stdout


def test_report_files_match_the_verdict(project: Project) -> None:
    project.config({"orders": workload("orders")})
    project.bless()
    json_path, md_path = project.path / "out" / "report.json", project.path / "report.md"
    (project.path / "out").mkdir()
    done = project.allocgate("check", "--report-json", json_path, "--report-md", md_path)
    assert done.code == 0
    report = done.report(json_path)
    assert report["allocgate_report"] == 1
    assert [w["name"] for w in report["workloads"]] == ["orders"]
    assert report["workloads"][0]["verdict"] == "pass"
    markdown = md_path.read_text()
    assert "<!-- allocgate-comment: default -->" in markdown
    assert "within budget" in markdown

    regressed = project.config({"orders": workload("orders-regressed")}, name="regressed.yml")
    done = project.allocgate(
        "check",
        "--config",
        regressed,
        "--report-json",
        json_path,
        "--report-md",
        md_path,
        crate="orders-regressed",
    )
    assert done.code == 1
    assert done.report(json_path)["workloads"][0]["verdict"] == "regressed"
    markdown = md_path.read_text()
    assert "regress" in markdown.lower()
    # The regressed site's heaviest stacks, each with its own delta against the
    # baseline's value for the same caller: build_order's one caller grew.
    blessed = yaml.safe_load(project.baseline.read_text())["workloads"]["orders"]
    (recorded,) = [s for s in blessed["callsites"] if s["key"] == BUILD_ORDER]
    assert list(recorded["stacks"]) == ["orders::process_orders"]
    (site,) = [
        s
        for s in done.report(json_path)["workloads"][0]["comparison"]["sites"]
        if s["regressed_metrics"]
    ]
    heaviest = site["stacks"][0]
    assert heaviest["via"] == "orders::process_orders"
    assert heaviest["baseline"] == recorded["stacks"]["orders::process_orders"]
    assert heaviest["current"] > heaviest["baseline"]
    stacks = markdown[markdown.index("<details><summary>Stacks") :]
    grew = re.search(r"via <code>orders::process&#95;orders</code>: \+[\d.]+ \w+ \(", stacks)
    assert grew, stacks
    assert "orders::build_order (" in stacks[grew.end() :].split("</pre>")[0]


def test_run_prints_the_top_callsites(project: Project) -> None:
    project.config({"orders": workload("orders")})
    done = project.allocgate("run", "--top", "3", "-q")
    assert done.code == 0, done.stderr
    assert done.stdout.startswith("== orders\n")
    ranked = re.findall(r"^\s*(\d+)\s+.*?\s(orders::\w+)\s", done.stdout, re.M)
    assert ranked == [
        ("1", "orders::parse_line"),
        ("2", "orders::render_receipt"),
        ("3", BUILD_ORDER),
    ]
    assert not project.baseline.exists(), "run compares nothing and writes no baseline"


def test_keep_profiles_keeps_the_raw_profile_and_names_it(project: Project) -> None:
    project.config({"orders": workload("orders")})
    project.bless()
    kept, report = project.path / "kept", project.path / "report.json"
    done = project.allocgate("check", "-q", "--keep-profiles", kept, "--report-json", report)
    assert done.code == 0
    profile = kept / "orders.json"
    doc = json.loads(profile.read_bytes())
    assert doc["dhatFileVersion"] == 2
    assert doc["mode"] == "heap"
    assert str(profile.resolve()) in done.stdout
    assert done.report(report)["workloads"][0]["profiles"] == [str(profile.resolve())]

    done = project.allocgate("run", "-q", "--keep-profiles", project.path / "kept-by-run")
    assert done.code == 0
    assert str((project.path / "kept-by-run" / "orders.json").resolve()) in done.stdout


def test_runs_record_a_spread_and_a_deterministic_workload_is_not_flagged(
    project: Project,
) -> None:
    project.config({"orders": workload("orders", runs=3)})
    project.bless()
    report = project.path / "report.json"
    done = project.allocgate("check", "--report-json", report)
    assert done.code == 0, done.stdout + done.stderr
    for i in (1, 2, 3):
        assert f"allocgate: running orders {i}/3" in done.stderr
    result = done.report(report)["workloads"][0]
    assert result["runs"] == 3
    assert result["baseline_runs"] == 3
    assert result["nondeterministic"] == []
    assert "varied between" not in done.stdout
    assert "deterministic: every gated callsite had the same value in every run" in done.stdout


def test_text_and_markdown_reports_show_the_spread_of_runs(project: Project) -> None:
    # Issue 3: "the report shows the spread" of `runs: N`; today only the JSON has it.
    project.config({"orders": workload("orders", runs=3)})
    project.bless()
    md = project.path / "report.md"
    done = project.allocgate("check", "-q", "--report-md", md)
    assert done.code == 0
    assert re.search(r"\b3 runs\b", done.stdout), done.stdout
    assert re.search(r"\b3 runs\b", md.read_text())


def test_progress_lines_and_quiet(project: Project) -> None:
    project.config({"orders": workload("orders")})
    project.bless()
    done = project.allocgate("check")
    assert done.code == 0
    lines = done.stderr.splitlines()
    assert re.fullmatch(r"allocgate: building orders \(profiling\)… \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"allocgate: running orders under valgrind-dhat… \d+\.\d s", lines[1])
    assert len(lines) == 2, lines
    for command in ("check", "run"):
        quiet = project.allocgate(command, "--quiet")
        assert quiet.code == 0
        assert quiet.stderr == "", quiet.stderr
        assert quiet.stdout


def test_blessing_one_workload_keeps_the_others_byte_identical(project: Project) -> None:
    project.config({"a": workload("orders"), "b": workload("orders", n=100)})
    first = project.bless().decode()
    assert "\n  a:\n" in first
    assert "\n  b:\n" in first
    project.config({"a": workload("orders", n=300), "b": workload("orders", n=150)})
    done = project.allocgate("bless", "b")
    assert done.code == 0
    assert f"{project.baseline}: updated b" in done.stderr
    assert "updated a" not in done.stderr
    second = project.baseline.read_text()
    assert baseline_block(second, "a") == baseline_block(first, "a")
    assert baseline_block(second, "b") != baseline_block(first, "b")
    assert second.split("\n  a:\n")[0] == first.split("\n  a:\n")[0]


def test_shards_partition_the_workloads(project: Project) -> None:
    project.config({name: workload("orders", n=n) for name, n in (("a", 50), ("b", 60), ("c", 70))})
    blessed = project.allocgate("bless")
    assert blessed.code == 0
    # Workloads that share a build are built once per invocation.
    assert blessed.stderr.count("allocgate: building ") == 1, blessed.stderr
    names = []
    for k in (1, 2):
        report = project.path / f"shard{k}.json"
        done = project.allocgate("check", "-q", "--shard", f"{k}/2", "--report-json", report)
        assert done.code == 0, done.stdout
        doc = done.report(report)
        assert doc["shard"] == f"{k}/2"
        names.append({w["name"] for w in doc["workloads"]})
    assert all(names), names
    assert names[0] & names[1] == set()
    assert names[0] | names[1] == {"a", "b", "c"}
    merged = project.allocgate(
        "merge", project.path / "shard1.json", project.path / "shard2.json", "--format", "json"
    )
    assert merged.code == 0
    assert [w["name"] for w in json.loads(merged.stdout)["workloads"]] == ["a", "b", "c"]


# ---------------------------------------------------------------- failure modes

FAILURES = [
    pytest.param("orders-broken", (), {}, ["cargo build failed"], id="compile-error"),
    pytest.param(
        "orders",
        ("--panic",),
        {},
        ["exited with code 101", f"orders: simulated failure after {N} orders"],
        id="crash",
    ),
    pytest.param("orders", ("--abort",), {}, ["killed by SIGABRT"], id="killed"),
    pytest.param(
        "orders", ("--sleep-ms=20000",), {"timeout": "2s"}, ["timed out after 2.0 s"], id="timeout"
    ),
]


def _processes_with(*needles: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(needle in text for needle in needles):
            found.append(text)
    return found


@pytest.mark.parametrize("command", ["check", "bless"])
@pytest.mark.parametrize(("crate", "flags", "settings", "words"), FAILURES)
def test_failure_is_exit_2_with_one_line_and_the_baseline_untouched(
    project: Project,
    command: str,
    crate: str,
    flags: Sequence[str],
    settings: dict[str, Any],
    words: list[str],
) -> None:
    # `bad` has a baseline entry (check verifies that before it builds), then breaks.
    project.config({"good": workload("orders"), "bad": workload("orders")})
    before = project.bless()
    project.config({"good": workload("orders"), "bad": workload(crate, *flags, **settings)})
    done = project.allocgate(command, "bad", crate=crate)
    assert done.code == 2, done.stdout + done.stderr
    line = done.error_line()
    for word in ["'bad'", *words]:
        assert word in line, line
    assert project.baseline.read_bytes() == before
    assert done.seconds < 20
    if "timeout" in settings:
        leftovers = _processes_with(str(project.targets.dir(crate)), *flags)
        assert leftovers == [], "the timed-out workload's process group still runs"


def test_a_failed_bless_writes_nothing(project: Project) -> None:
    project.config({"good": workload("orders"), "bad": workload("orders", "--panic")})
    done = project.allocgate("bless")
    assert done.code == 2
    assert "'bad' exited with code 101" in done.error_line()
    assert not project.baseline.exists(), "bless measures everything before writing"
    assert list(project.path.iterdir()) == [project.path / "allocgate.yml"]
    before = project.bless("good")
    done = project.allocgate("bless")
    assert done.code == 2
    assert project.baseline.read_bytes() == before


def test_check_reports_every_workload_when_one_fails(project: Project) -> None:
    project.config({"good": workload("orders"), "bad": workload("orders")})
    project.bless()
    project.config({"good": workload("orders"), "bad": workload("orders", "--abort")})
    report = project.path / "report.json"
    done = project.allocgate("check", "-q", "--report-json", report)
    assert done.code == 2
    verdicts = {w["name"]: w["verdict"] for w in done.report(report)["workloads"]}
    assert verdicts == {"bad": "error", "good": "pass"}


def blessed_then_broken(project: Project) -> None:
    """A workload with a baseline entry whose crate then stops compiling."""
    project.config({"bad": workload("orders")})
    project.bless()
    project.config({"bad": workload("orders-broken")})


def test_compile_error_shows_cargos_errors(project: Project) -> None:
    blessed_then_broken(project)
    done = project.allocgate("check", crate="orders-broken")
    assert done.code == 2
    assert "error[E0308]: mismatched types" in done.stderr
    assert "src/main.rs:162" in done.stderr


def test_compile_error_message_names_the_compiler_error(project: Project) -> None:
    # The one-line message (what --quiet, the JSON report and the PR comment show)
    # must say why the build failed, not only cargo's closing "could not compile".
    blessed_then_broken(project)
    done = project.allocgate("check", "-q", crate="orders-broken")
    assert done.code == 2
    line = done.error_line()
    assert "cargo build failed" in line
    assert "error[E0308]: mismatched types" in line, line


def test_valgrind_not_on_path(project: Project, tmp_path: Path) -> None:
    project.config({"orders": workload("orders")})
    before = project.bless()
    path = restricted_path(tmp_path / "bin", "cargo")
    for command in ("check", "bless", "run"):
        done = project.allocgate(command, "-q", env={"PATH": path})
        assert done.code == 2, done.stdout + done.stderr
        line = done.error_line()
        assert "valgrind not found on PATH" in line
        assert "apt-get install -y valgrind" in line
        assert project.baseline.read_bytes() == before


def test_cargo_not_on_path(project: Project, tmp_path: Path) -> None:
    project.config({"orders": workload("orders")})
    before = project.bless()
    path = restricted_path(tmp_path / "bin")
    for command in ("check", "bless"):
        done = project.allocgate(command, "-q", env={"PATH": path})
        assert done.code == 2, done.stdout + done.stderr
        line = done.error_line()
        assert "cargo not found on PATH" in line
        assert "rustup" in line
        assert project.baseline.read_bytes() == before


def test_workload_missing_from_the_baseline(project: Project) -> None:
    project.config({"a": workload("orders"), "b": workload("orders", n=100)})
    done = project.allocgate("check", "a", "-q")
    assert done.code == 2
    line = done.error_line()
    assert "no baseline for workload 'a'" in line
    assert "allocgate bless a" in line
    assert not project.baseline.exists()

    before = project.bless("a")
    done = project.allocgate("check", "b", "-q")
    assert done.code == 2
    assert "allocgate bless b" in done.error_line()
    assert project.baseline.read_bytes() == before


@pytest.mark.parametrize("command", ["check", "bless", "run"])
def test_gating_a_metric_valgrind_does_not_measure_is_an_error(
    project: Project, command: str
) -> None:
    # DHAT has no temporary-allocation count: gating on it is an error, not a silent 0.
    project.config({"orders": workload("orders")})
    before = project.bless()
    project.config({"orders": workload("orders", metrics=["temporary_blocks"])})
    done = project.allocgate(command, "-q")
    assert done.code == 2, done.stdout + done.stderr
    line = done.error_line()
    assert "temporary_blocks" in line
    assert "valgrind-dhat" in line
    assert project.baseline.read_bytes() == before
