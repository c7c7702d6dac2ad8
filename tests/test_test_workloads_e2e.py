"""Every #[test] of a crate as a workload, end to end: the real lexer crate built by
cargo, its tests run one by one under Valgrind DHAT (and heaptrack), the CLI and
pytest run in subprocesses as users run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocgate.callsites import FoldOptions
from allocgate.harness import split_harness
from allocgate.load import load_profile
from tests.lexer_crate import (
    CALLS_SPLIT_TOKENS,
    SPLIT_TOKENS,
    UNIT_TESTS,
    Project,
    lexer_target,
    require_tools,
)

__all__ = ["lexer_target"]

pytestmark = [pytest.mark.cargo, pytest.mark.valgrind]

ALL = tuple(f"lexer::{t}" for t in UNIT_TESTS)


@pytest.fixture
def project(tmp_path: Path, lexer_target: Path) -> Project:
    require_tools("cargo", "valgrind")
    return Project(tmp_path / "project", lexer_target)


def test_bless_check_and_a_library_function_that_allocates_more(project: Project) -> None:
    project.config()
    done = project.allocgate("bless", "-q")
    assert done.code == 0, done.output
    blessed = project.baseline.read_text()
    # One entry per test, none for the #[ignore]d one or the harness.
    for name in ALL:
        assert f"\n  {name}:\n" in blessed
    assert "huge_input" not in blessed
    assert "[harness]" not in blessed
    assert "key: test::" not in blessed

    done, results = project.report()
    assert done.code == 0, done.output
    assert sorted(results) == sorted(ALL)
    assert {r["verdict"] for r in results.values()} == {"pass"}
    assert {r["group"] for r in results.values()} == {"lexer"}
    assert done.stdout.startswith("lexer: 6 tests within budget\n"), done.stdout

    # `split_tokens` copies its input once more: exactly its callers regress, naming it.
    project.config(features=["regress"])
    done, results = project.report()
    assert done.code == 1, done.output
    regressed = sorted(n for n, r in results.items() if r["verdict"] == "regressed")
    assert regressed == sorted(f"lexer::{t}" for t in CALLS_SPLIT_TOKENS)
    for name in regressed:
        sites = results[name]["comparison"]["sites"]
        assert [s["key"] for s in sites if s["regressed_metrics"]] == [SPLIT_TOKENS]
        assert f"{name}: REGRESSED" in done.stdout
    assert "lexer: 4 tests within budget, 2 regressed" in done.stdout
    # Only the tests that moved get a table.
    assert "lexer::numbers::tests::parses_numbers" not in done.stdout


def test_a_new_test_is_reported_not_gated_and_strict_makes_it_an_error(project: Project) -> None:
    project.config(tests="numbers::")
    assert project.allocgate("bless", "-q").code == 0
    project.config(tests="numbers::", features=["extra-test"])
    done, results = project.report()
    assert done.code == 0, done.output
    assert results["lexer::numbers::tests::parses_hex"]["status"] == "new"
    assert results["lexer::numbers::tests::parses_numbers"]["verdict"] == "pass"
    assert "  numbers::tests::parses_hex: new test, not gated until blessed" in done.stdout

    done, results = project.report("--strict", "lexer::numbers::tests::parses_hex")
    assert done.code == 2, done.output
    assert list(results) == ["lexer::numbers::tests::parses_hex"]
    assert (
        "run `allocgate bless lexer` to record it"
        in results["lexer::numbers::tests::parses_hex"]["error"]
    )

    # Blessing records it; without the feature it is gone, and the next bless drops it.
    assert project.allocgate("bless", "-q").code == 0
    project.config(tests="numbers::")
    done, results = project.report()
    assert done.code == 0, done.output
    assert results["lexer::numbers::tests::parses_hex"]["status"] == "gone"
    assert "numbers::tests::parses_hex: gone" in done.stdout
    done = project.allocgate("bless", "-q")
    assert "removed lexer::numbers::tests::parses_hex (the test no longer exists)" in done.stderr
    assert "parses_hex" not in project.baseline.read_text()


def test_a_renamed_test_is_one_line(project: Project) -> None:
    project.config(tests="render::")
    assert project.allocgate("bless", "-q").code == 0
    old = "lexer::render::tests::renders_summary"
    text = project.baseline.read_text()
    project.baseline.write_text(text.replace(f"  {old}:", f"  {old}_old:"))
    done, results = project.report()
    assert done.code == 0, done.output
    assert results[old]["status"] == "new"
    assert results[f"{old}_old"]["status"] == "gone"
    lines = [line for line in done.stdout.splitlines() if "renders_summary" in line]
    assert lines == [
        "  render::tests::renders_summary_old → render::tests::renders_summary: renamed? "
        "(new test + gone test; the new one is not gated until blessed)"
    ]


def test_a_failing_test_is_an_error_with_its_assertion_message(project: Project) -> None:
    project.config(tests="idents::", features=["failing"])
    done, results = project.report()
    assert done.code == 2, done.output
    # Not blessed: the passing one is new; the failing one is an error, never measured.
    assert results["lexer::idents::tests::interns_names"]["status"] == "new"
    error = results["lexer::idents::tests::rejects_empty"]["error"]
    assert error.startswith("test 'lexer::idents::tests::rejects_empty' failed under valgrind")
    assert "an empty source interns no names left: 0 right: 1 (at src/idents.rs:" in error
    assert results["lexer::idents::tests::rejects_empty"]["comparison"] is None


def test_shards_split_per_test(project: Project) -> None:
    project.config(tests="tokens::")
    assert project.allocgate("bless", "-q").code == 0
    names = []
    for shard in ("1/2", "2/2"):
        done, results = project.report("--shard", shard)
        assert done.code == 0, done.output
        assert len(results) == 1
        names += list(results)
    assert sorted(names) == ["lexer::tokens::tests::long_line", "lexer::tokens::tests::short_line"]


def test_pytest_collects_one_item_per_test_and_k_selects_one(
    project: Project, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.config(tests="tokens::")
    assert project.allocgate("bless", "-q").code == 0
    config = project.path / "allocgate.yml"
    env = project.env()
    # pytester points HOME elsewhere; rustup's cargo needs the real one.
    for name in ("CARGO_TARGET_DIR", "PYTHONPATH", "HOME"):
        monkeypatch.setenv(name, env[name])
    collected = pytester.runpytest_subprocess(
        "--allocgate", f"--allocgate-config={config}", "--collect-only", "-q"
    )
    items = [line for line in collected.outlines if "::" in line and "allocgate.yml" in line]
    assert [line.split("allocgate.yml::", 1)[1] for line in items] == [
        "lexer::tokens::tests::long_line",
        "lexer::tokens::tests::short_line",
    ]
    ran = pytester.runpytest_subprocess(
        "--allocgate", f"--allocgate-config={config}", "-k", "long_line", "-p", "no:cacheprovider"
    )
    ran.assert_outcomes(passed=1, deselected=1)
    assert "lexer::tokens::tests::long_line: pass" in ran.stdout.str()


def test_dhat_rs_is_refused_for_tests_with_the_alternative(project: Project) -> None:
    project.profiler = "dhat-rs"
    project.config()
    done = project.allocgate("check", "-q")
    assert done.code == 2
    assert done.stderr.startswith(
        f"allocgate: error: {project.path / 'allocgate.yml'}: workloads.lexer.tests: profiler "
        "dhat-rs cannot profile #[test]s"
    )
    alternative = "use profiler: valgrind-dhat or heaptrack"
    assert alternative in done.stderr


@pytest.mark.heaptrack
@pytest.mark.parametrize("profiler", ["valgrind-dhat", "heaptrack"])
def test_the_harness_keys_no_site_and_adds_up(
    profiler: str, tmp_path: Path, lexer_target: Path
) -> None:
    require_tools("cargo", "valgrind" if profiler == "valgrind-dhat" else profiler)
    project = Project(tmp_path / "project", lexer_target, profiler)
    project.config(tests="tokens::tests::long_line")
    kept = tmp_path / "kept"
    done = project.allocgate("run", "-q", "--keep-profiles", kept)
    assert done.code == 0, done.output
    (raw,) = kept.iterdir()
    assert raw.name.startswith("lexer::tokens::tests::long_line.")
    profile, harness = split_harness(load_profile(raw, FoldOptions(harness=True)))
    keys = [s.key for s in profile.callsites]
    assert keys[0].startswith("lexer::tokens::")
    assert not [k for k in keys if not k.startswith("lexer::")]
    # libtest's argument parsing, terminfo and result printing: tens of KiB, all harness.
    assert harness["total_bytes"] > 16 * 1024
    for metric in ("total_bytes", "total_blocks"):
        sites = sum(s.metrics[metric] for s in profile.callsites)
        assert sites + harness[metric] == profile.totals[metric]
    # The same profile folded as any program's keys libtest's frames as sites.
    plain = load_profile(raw, FoldOptions())
    assert any(s.key.startswith(("test::", "<test::")) for s in plain.callsites)


def _sites_per_test(project: Project, kept: Path) -> dict[str, dict[str, int]]:
    done = project.allocgate("run", "-q", "--keep-profiles", kept)
    assert done.code == 0, done.output
    sites = {}
    for raw in sorted(kept.iterdir()):
        profile, _ = split_harness(load_profile(raw, FoldOptions(harness=True)))
        name = raw.name.removesuffix(".json").removesuffix(".zst").removesuffix(".gz")
        sites[name] = {s.key: s.metrics["total_bytes"] for s in profile.callsites}
    return sites


@pytest.mark.heaptrack
def test_valgrind_and_heaptrack_give_the_same_keys_per_test(
    tmp_path: Path, lexer_target: Path
) -> None:
    require_tools("cargo", "valgrind", "heaptrack")
    per_profiler = []
    for profiler in ("valgrind-dhat", "heaptrack"):
        project = Project(tmp_path / profiler, lexer_target, profiler)
        project.config(tests="_n")  # idents::tests::interns_names, numbers::tests::parses_numbers
        per_profiler.append(_sites_per_test(project, tmp_path / f"kept-{profiler}"))
    valgrind, heaptrack = per_profiler
    assert sorted(valgrind) == [
        "lexer::idents::tests::interns_names",
        "lexer::numbers::tests::parses_numbers",
    ]
    assert valgrind["lexer::idents::tests::interns_names"].keys() == {"lexer::idents::intern_all"}
    assert heaptrack == valgrind
