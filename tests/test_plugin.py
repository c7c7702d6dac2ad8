"""The pytest plugin (``pytest --allocgate``), end to end with pytester.

Every test builds a temporary project (``allocgate.yml``, a ``pytest.ini`` and,
for the ones that run workloads, a copy of ``fixtures/crates/orders``) and runs
pytest on it in a subprocess: the plugin starts cargo, Valgrind and xdist
workers, none of which belong in this process.

Build caching: the crate copies of unedited tests are identical (copytree keeps
the mtimes), so they share one module-scoped ``CARGO_TARGET_DIR`` and cargo
builds the crate once. A test that edits its copy's source, or breaks it, gets
its own target directory: cargo keeps one fingerprint per package whatever the
source path, so an edited copy built into the shared directory would hand its
binary to the next unedited copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tools
from orders_crate import orders_crate

ROOT = Path(__file__).resolve().parents[1]
CRATES = ROOT / "fixtures" / "crates"
ORDERS = CRATES / "orders"
ORDERS_MANIFEST = ORDERS / "Cargo.toml"

# The inner pytest runs in the pytester directory, where this repository's
# pyproject.toml is not the ini file: it gets its own.
ADDOPTS = "-p no:benchmark -p no:cacheprovider"
PYTEST_INI = f"[pytest]\naddopts = {ADDOPTS}\n"

# pytester points HOME at its temporary directory, and the rustup proxies find
# their toolchains through HOME: pin the real locations (read at import, when
# HOME is still the user's).
_TOOLCHAIN_ENV = {
    "CARGO_HOME": os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo"),
    "RUSTUP_HOME": os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup"),
}

RUN_TIMEOUT = 300.0

# The per-item outcome lines of `-rA` (serial and xdist print them alike).
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) (allocgate\.yml::\w+)", re.MULTILINE)


def workload_yaml(manifest: Path, **workloads: str) -> str:
    """An allocgate.yml profiling with Valgrind DHAT: ``name=N`` runs ``orders N``."""
    lines = ["defaults:", "  profiler: valgrind-dhat", "workloads:"]
    for name, n in workloads.items():
        lines.append(
            f"  {name}: {{manifest: {json.dumps(str(manifest))}, args: [{json.dumps(n)}]}}"
        )
    return "\n".join(lines) + "\n"


def run(pytester: pytest.Pytester, *args: str | os.PathLike[str]) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, timeout=RUN_TIMEOUT)


def outcomes_by_item(result: pytest.RunResult) -> dict[str, str]:
    """``{"allocgate.yml::name": "PASSED" | "FAILED" | "ERROR"}`` from a ``-rA`` run."""
    return {item: outcome for outcome, item in _OUTCOME.findall(result.stdout.str())}


def no_traceback(result: pytest.RunResult) -> None:
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out
    assert "INTERNALERROR" not in out
    assert not re.search(r"allocgate[/\\]\w+\.py", out), out


@dataclass
class Project:
    """A temporary project around a copy of the `orders` crate."""

    pytester: pytest.Pytester
    crate: Path

    @property
    def path(self) -> Path:
        return self.pytester.path

    @property
    def manifest(self) -> Path:
        return self.crate / "Cargo.toml"

    @property
    def baseline(self) -> Path:
        return self.path / "allocgate-baseline.yml"

    def configure(self, **workloads: str) -> None:
        (self.path / "allocgate.yml").write_text(workload_yaml(self.manifest, **workloads))

    def run(self, *args: str | os.PathLike[str]) -> pytest.RunResult:
        return run(self.pytester, *args)


@pytest.fixture(scope="module")
def shared_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cargo target directory for every unedited copy of the crate in this module."""
    return tmp_path_factory.mktemp("cargo-target")


@pytest.fixture
def project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared_target: Path
) -> Project:
    """``orders/`` (a copy of the fixture crate), ``pytest.ini``, an ``orders`` workload."""
    require_tools("cargo", "valgrind")
    for name, value in _TOOLCHAIN_ENV.items():
        if Path(value).is_dir():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CARGO_TARGET_DIR", str(shared_target))
    monkeypatch.setenv("CARGO_TERM_COLOR", "never")
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    crate = pytester.path / "orders"
    shutil.copytree(ORDERS, crate, ignore=shutil.ignore_patterns("target"))
    (pytester.path / "pytest.ini").write_text(PYTEST_INI)
    p = Project(pytester, crate)
    p.configure(orders="2000")
    return p


@pytest.fixture
def own_target(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A private target directory, for a test that edits its copy of the crate."""
    target = tmp_path_factory.mktemp("cargo-target-own")
    monkeypatch.setenv("CARGO_TARGET_DIR", str(target))
    return target


@pytest.fixture
def ini_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project that never builds: configs point at the repository's fixture crate."""
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    (pytester.path / "pytest.ini").write_text(PYTEST_INI)
    return pytester


# ------------------------------------------------------------ options, no-op


def test_help_lists_options_and_ini_key(ini_project: pytest.Pytester) -> None:
    result = run(ini_project, "--help")
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    for option in (
        "--allocgate ",
        "--allocgate-config=PATH",
        "--allocgate-bless",
        "--allocgate-workload=NAME",
        "--allocgate-report-json=PATH",
        "--allocgate-report-md=PATH",
    ):
        assert option in out, option
    result.stdout.fnmatch_lines(["heap-allocation regression gate:"])
    result.stdout.fnmatch_lines(["  allocgate_config (string):*"])


def test_without_flag_the_plugin_does_nothing(ini_project: pytest.Pytester) -> None:
    pytester = ini_project
    (pytester.path / "allocgate.yml").write_text(workload_yaml(ORDERS_MANIFEST, orders="2000"))
    pytester.makepyfile(
        test_trivial="""
        import sys

        def test_trivial():
            # Start-up without --allocgate loads none of the machinery.
            heavy = [m for m in ("allocgate.config", "allocgate.run", "allocgate.baseline",
                                 "allocgate.cli", "allocgate.api") if m in sys.modules]
            assert heavy == []
        """
    )
    collected = run(pytester, "--collect-only", "-q")
    assert collected.ret == pytest.ExitCode.OK
    items = [line for line in collected.stdout.lines if "::" in line]
    assert items == ["test_trivial.py::test_trivial"]

    result = run(pytester, "-v")
    result.assert_outcomes(passed=1)
    assert "allocgate.yml" not in result.stdout.str()
    assert "= allocgate =" not in result.stdout.str()

    # Not even a broken config is looked at.
    (pytester.path / "allocgate.yml").write_text("workloads: [\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)


# ------------------------------------------------------------ the done-when scenario


@pytest.mark.cargo
@pytest.mark.valgrind
def test_bless_pass_then_regression_serial_and_xdist(project: Project, own_target: Path) -> None:
    # bless: the baseline is written, the terminal summary says so.
    # --allocgate-bless alone implies --allocgate.
    blessed = project.run("--allocgate-bless")
    assert blessed.ret == pytest.ExitCode.OK, blessed.stdout.str()
    blessed.assert_outcomes(passed=1)
    assert project.baseline.is_file()
    assert re.search(r"^  orders:$", project.baseline.read_text(), re.MULTILINE)
    assert "orders::build_order" in project.baseline.read_text()
    blessed.stdout.fnmatch_lines(
        [
            "*= allocgate =*",
            "orders: measured for the baseline (*)",
            f"{project.baseline}: recorded orders (*)",
        ]
    )

    # pass, serial and with two workers; the item id shows in -v.
    for extra in ((), ("-n", "2")):
        passed = project.run("--allocgate", "-v", *extra)
        assert passed.ret == pytest.ExitCode.OK, passed.stdout.str()
        passed.assert_outcomes(passed=1)
        assert re.search(
            r"allocgate\.yml::orders PASSED|PASSED allocgate\.yml::orders", passed.stdout.str()
        ), passed.stdout.str()
        passed.stdout.fnmatch_lines(["*= allocgate =*", "orders: pass — total_bytes *"])

    # One more String clone per order on the hot path (what orders-regressed does).
    main_rs = project.crate / "src" / "main.rs"
    source = main_rs.read_text()
    assert source.count("        tags,\n") == 1
    main_rs.write_text(source.replace("        tags,\n", "        tags: tags.clone(),\n"))

    for extra in ((), ("-n", "2")):
        failed = project.run("--allocgate", "-v", *extra)
        assert failed.ret == pytest.ExitCode.TESTS_FAILED, failed.stdout.str()
        failed.assert_outcomes(failed=1)
        failed.stdout.fnmatch_lines(
            [
                "*orders: REGRESSED*grew: orders::build_order*",
                "*status*callsite*baseline*current*Δ*Δ%*",
                "*!*regressed*orders::build_order*+74.7%*",
                "If the growth is intended: pytest --allocgate-bless --allocgate-workload orders",
                "*= allocgate =*",
                "orders: regressed — total_bytes *",
                "FAILED allocgate.yml::orders*",
            ]
        )
        no_traceback(failed)

    # Blessing the change says what changed, and the gate passes again.
    reblessed = project.run("--allocgate", "--allocgate-bless")
    assert reblessed.ret == pytest.ExitCode.OK
    reblessed.stdout.fnmatch_lines([f"{project.baseline}: updated orders (* total, +*)"])
    again = project.run("--allocgate")
    again.assert_outcomes(passed=1)


@pytest.mark.cargo
@pytest.mark.valgrind
def test_xdist_equals_serial(project: Project) -> None:
    project.configure(small="1000", large="2000")

    serial = project.run("--allocgate", "--allocgate-bless")
    serial.assert_outcomes(passed=2)
    serial_bytes = project.baseline.read_bytes()
    project.baseline.unlink()
    parallel = project.run("--allocgate", "--allocgate-bless", "-n", "2")
    parallel.assert_outcomes(passed=2)
    assert project.baseline.read_bytes() == serial_bytes
    parallel.stdout.fnmatch_lines(
        [
            "*= allocgate =*",
            "large: measured for the baseline (*)",
            "small: measured for the baseline (*)",
            f"{project.baseline}: recorded large (*)",
            f"{project.baseline}: recorded small (*)",
        ]
    )

    # `large` now processes more orders than it was blessed with: one regresses.
    project.configure(small="1000", large="2500")
    reports: dict[str, Any] = {}
    for label, extra in (("serial", ()), ("xdist", ("-n", "2"))):
        report = project.path / f"{label}.json"
        result = project.run("--allocgate", "-rA", "--allocgate-report-json", report, *extra)
        assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
        result.assert_outcomes(passed=1, failed=1)
        assert outcomes_by_item(result) == {
            "allocgate.yml::large": "FAILED",
            "allocgate.yml::small": "PASSED",
        }
        doc = json.loads(report.read_text())
        for w in doc["workloads"]:
            w.pop("seconds")  # wall times, the one thing allowed to differ
        reports[label] = doc
    assert reports["serial"]["verdict"] == "regressed"
    assert reports["xdist"] == reports["serial"]


# ------------------------------------------------------------ selection


@pytest.mark.cargo
@pytest.mark.valgrind
def test_k_selects_workloads(project: Project) -> None:
    # `-k a` would match every item: `allocgate.yml`, the file part of each id,
    # contains an "a" (pytest's -k matches substrings of every name in the chain).
    project.configure(small="1000", large="2000")

    listed = project.run("--allocgate", "--collect-only", "-q")
    assert listed.ret == pytest.ExitCode.OK
    assert [line for line in listed.stdout.lines if "::" in line] == [
        "allocgate.yml::large",
        "allocgate.yml::small",
    ]

    only = project.run("--allocgate", "--allocgate-workload", "large", "--collect-only", "-q")
    assert only.ret == pytest.ExitCode.OK
    assert [line for line in only.stdout.lines if "::" in line] == ["allocgate.yml::large"]

    # -k deselects before anything is built or run, and bless writes only what ran.
    selected = project.run("--allocgate", "--allocgate-bless", "-k", "small", "-rA")
    assert selected.ret == pytest.ExitCode.OK
    selected.assert_outcomes(passed=1, deselected=1)
    assert outcomes_by_item(selected) == {"allocgate.yml::small": "PASSED"}
    baseline = project.baseline.read_text()
    assert re.search(r"^  small:$", baseline, re.MULTILINE)
    assert not re.search(r"^  large:$", baseline, re.MULTILINE)


@pytest.mark.cargo
@pytest.mark.valgrind
def test_workloads_run_beside_python_tests(project: Project) -> None:
    project.pytester.mkpydir("tests")
    (project.path / "tests" / "test_unit.py").write_text("def test_unit():\n    pass\n")
    result = project.run("--allocgate", "--allocgate-bless", "-rA", "tests/")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        ["PASSED tests/test_unit.py::test_unit", "PASSED allocgate.yml::orders"]
    )


# ------------------------------------------------------------ configuration errors


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            "workloads:\n  orders: {manifest: MANIFEST, bogus: 1}\n",
            "allocgate: {path}: workloads.orders.bogus: unknown key (expected one of: *)",
            id="unknown-key",
        ),
        pytest.param(
            "workloads:\n  orders: [\n",
            "allocgate: {path}:3:*: invalid YAML: *",
            id="invalid-yaml",
        ),
    ],
)
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_broken_config_is_a_collection_error(
    ini_project: pytest.Pytester, config: str, message: str, xdist: bool
) -> None:
    path = ini_project.path / "allocgate.yml"
    path.write_text(config.replace("MANIFEST", json.dumps(str(ORDERS_MANIFEST))))
    result = run(ini_project, "--allocgate", *(("-n", "2") if xdist else ()))
    # pytest interrupts a session with a collection error (exit 2); under xdist
    # the controller reports it as a failed session (exit 1).
    expected = pytest.ExitCode.TESTS_FAILED if xdist else pytest.ExitCode.INTERRUPTED
    assert result.ret == expected, result.stdout.str()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting allocgate.yml*", message.format(path=path)])
    no_traceback(result)


def test_missing_config_and_unknown_workload_are_collection_errors(
    ini_project: pytest.Pytester,
) -> None:
    missing = run(ini_project, "--allocgate")
    assert missing.ret == pytest.ExitCode.INTERRUPTED
    missing.stdout.fnmatch_lines(["allocgate: no allocgate.yml found in *"])
    no_traceback(missing)

    path = ini_project.path / "allocgate.yml"
    path.write_text(workload_yaml(ORDERS_MANIFEST, orders="2000"))
    unknown = run(ini_project, "--allocgate", "--allocgate-workload", "nope")
    assert unknown.ret == pytest.ExitCode.INTERRUPTED
    unknown.stdout.fnmatch_lines(
        [f"allocgate: {path}: unknown workload 'nope' (configured: orders)"]
    )
    no_traceback(unknown)


# ------------------------------------------------------------ could not evaluate


@pytest.mark.cargo
@pytest.mark.valgrind
def test_workload_missing_from_baseline_is_an_error(project: Project) -> None:
    project.configure(small="1000", large="2000")
    blessed = project.run("--allocgate", "--allocgate-bless", "--allocgate-workload", "small")
    blessed.assert_outcomes(passed=1)

    result = project.run("--allocgate", "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, errors=1)
    assert outcomes_by_item(result) == {
        "allocgate.yml::large": "ERROR",
        "allocgate.yml::small": "PASSED",
    }
    result.stdout.fnmatch_lines(
        [
            f"allocgate: {project.baseline}: no baseline for workload 'large' (has: small);*",
            "large: error — *no baseline for workload 'large'*",
            "small: pass — *",
        ]
    )
    no_traceback(result)


@pytest.mark.cargo
@pytest.mark.valgrind
def test_crate_that_does_not_compile_is_an_error(project: Project, own_target: Path) -> None:
    # Blessed first: without a baseline entry the item stops before the build.
    project.run("--allocgate-bless").assert_outcomes(passed=1)
    broken = orders_crate("orders-broken") / "src" / "main.rs"
    shutil.copyfile(broken, project.crate / "src" / "main.rs")
    result = project.run("--allocgate")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of allocgate workload orders*",
            f"allocgate: {project.manifest}: cargo build failed for workload 'orders': *",
            "orders: error — *cargo build failed*",
        ]
    )
    no_traceback(result)


# ------------------------------------------------------------ reports


WORKER_PROBE = """
import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    # Runs after the plugin's own sessionfinish in each worker, before the
    # controller's: a report that exists now was written by a worker.
    worker = getattr(session.config, "workerinput", None)
    if worker is not None:
        seen = [name for name in ("report.json", "report.md") if os.path.exists(name)]
        with open("worker-probe.log", "a") as log:
            log.write(f"{worker['workerid']} ran={session.testscollected} saw={seen}\\n")
"""


@pytest.mark.cargo
@pytest.mark.valgrind
def test_reports_written_once_by_the_controller_under_xdist(project: Project) -> None:
    project.configure(small="1000", large="2000")
    project.run("--allocgate", "--allocgate-bless").assert_outcomes(passed=2)
    project.pytester.makeconftest(WORKER_PROBE)

    result = project.run(
        "--allocgate",
        "-n",
        "2",
        "--allocgate-report-json",
        "report.json",
        "--allocgate-report-md",
        "report.md",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)

    probe = (project.path / "worker-probe.log").read_text().splitlines()
    assert len(probe) == 2, probe
    assert all(line.endswith("saw=[]") for line in probe), probe

    doc = json.loads((project.path / "report.json").read_text())
    assert doc["allocgate_report"] == 1
    assert doc["verdict"] == "pass"
    assert [(w["name"], w["verdict"]) for w in doc["workloads"]] == [
        ("large", "pass"),
        ("small", "pass"),
    ]
    markdown = (project.path / "report.md").read_text()
    assert "large" in markdown
    assert "small" in markdown


@pytest.mark.cargo
@pytest.mark.valgrind
def test_bless_report_does_not_call_blessed_workloads_errors(project: Project) -> None:
    """A blessed workload was measured, not "could not be evaluated"."""
    result = project.run(
        "--allocgate",
        "--allocgate-bless",
        "--allocgate-report-json",
        "report.json",
        "--allocgate-report-md",
        "report.md",
    )
    assert result.ret == pytest.ExitCode.OK
    report = project.path / "report.json"
    if report.exists():
        doc = json.loads(report.read_text())
        assert doc["verdict"] != "error", doc
        # An "error" verdict always carries its message.
        assert [w for w in doc["workloads"] if w["verdict"] == "error" and not w["error"]] == []
    markdown = project.path / "report.md"
    if markdown.exists():
        assert "Could not evaluate: None" not in markdown.read_text()
        assert "could not be evaluated" not in markdown.read_text()


# ------------------------------------------------------------ the fixture


@pytest.mark.cargo
@pytest.mark.valgrind
def test_allocgate_fixture_measures_a_workload(project: Project) -> None:
    project.pytester.makepyfile(
        test_profile="""
        def test_profile(allocgate):
            m = allocgate.measure("orders")
            assert any(s.key == "orders::build_order" for s in m.profile.callsites)
            assert m.profile.totals["total_bytes"] > 0
        """
    )
    result = project.run("-rA")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PASSED test_profile.py::test_profile"])


# ------------------------------------------------------------ the ini key


@pytest.mark.parametrize("ini", ["pytest.ini", "pyproject.toml"])
def test_ini_key_is_used_and_the_option_wins(ini_project: pytest.Pytester, ini: str) -> None:
    pytester = ini_project
    configs = pytester.mkdir("configs")
    (pytester.path / "allocgate.yml").write_text(workload_yaml(ORDERS_MANIFEST, found="2000"))
    (configs / "ini.yml").write_text(workload_yaml(ORDERS_MANIFEST, from_ini="2000"))
    (configs / "cli.yml").write_text(workload_yaml(ORDERS_MANIFEST, from_cli="2000"))

    def items(*args: str) -> list[str]:
        result = run(pytester, "--allocgate", "--collect-only", "-q", *args)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        return [line for line in result.stdout.lines if "::" in line]

    # No ini key: the nearest allocgate.yml.
    assert items() == ["allocgate.yml::found"]
    if ini == "pytest.ini":
        (pytester.path / "pytest.ini").write_text(
            f"{PYTEST_INI}allocgate_config = configs/ini.yml\n"
        )
    else:
        (pytester.path / "pytest.ini").unlink()
        pytester.makepyprojecttoml(
            "[tool.pytest.ini_options]\n"
            f'addopts = "{ADDOPTS}"\n'
            'allocgate_config = "configs/ini.yml"\n'
        )
    assert items() == ["configs/ini.yml::from_ini"]
    assert items("--allocgate-config", "configs/cli.yml") == ["configs/cli.yml::from_cli"]


REPORT_ARGS = ("--report-json", "cli.json", "--report-md", "cli.md")


@pytest.mark.cargo
@pytest.mark.valgrind
def test_cli_and_plugin_write_the_same_reports(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One workload through `allocgate check` and through `pytest --allocgate`: the
    markdown reports are the same bytes, and so are the JSON reports but for timings."""
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    project.configure(orders="2000", bigger="4000")
    project.run("--allocgate", "--allocgate-bless").assert_outcomes(passed=2)
    # A regression in one workload, so the reports have something to say.
    config = project.path / "allocgate.yml"
    config.write_text(config.read_text().replace("'4000'", "'6000'").replace('"4000"', '"6000"'))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = subprocess.run(
        [*(sys.executable, "-m", "allocgate.cli", "check", "-q"), *REPORT_ARGS],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert cli.returncode == 1, cli.stderr
    plugin = project.run(
        "--allocgate", "--allocgate-report-json", "py.json", "--allocgate-report-md", "py.md"
    )
    plugin.assert_outcomes(passed=1, failed=1)

    cli_md, py_md = ((project.path / n).read_bytes() for n in ("cli.md", "py.md"))
    assert b"regressed" in cli_md
    # The same report; only the bless hint speaks the language of its shell.
    cli_hint = b"`allocgate bless bigger`"
    py_hint = b"`pytest --allocgate-bless --allocgate-workload bigger`"
    assert cli_hint in cli_md
    assert py_hint in py_md
    assert cli_md.replace(cli_hint, py_hint) == py_md

    def without_timings(name: str) -> bytes:
        text = (project.path / name).read_bytes()
        timings = re.compile(rb'("(?:build|run|analyse)": )[-+.0-9eE]+')
        assert len(timings.findall(text)) == 6, text  # build, run, analyse per workload
        return timings.sub(rb"\1T", text)

    assert without_timings("cli.json") == without_timings("py.json")


@pytest.mark.cargo
@pytest.mark.valgrind
def test_a_rebaselined_pr_without_a_reason_fails_with_require_reason(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools("git")

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
            cwd=project.path,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    project.run("--allocgate", "--allocgate-bless").assert_outcomes(passed=1)
    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    project.configure(orders="2600")
    config = project.path / "allocgate.yml"
    config.write_text("require_reason: true\n" + config.read_text())
    project.run("--allocgate", "--allocgate-bless").assert_outcomes(passed=1)
    event = project.path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 5, "base": {"sha": base}}}))
    summary = project.path / "summary.md"
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = project.run("--allocgate")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["require_reason: the baseline changed in this pull request without a reason for orders"]
    )
    assert "### ❌ Baseline changed in this PR" in summary.read_text(encoding="utf-8")
    no_traceback(result)
