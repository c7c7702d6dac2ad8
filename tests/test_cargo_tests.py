"""Building, listing and running a crate's #[test]s one by one, with the real lexer crate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from allocgate import cargo_tests
from allocgate.errors import WorkloadError
from allocgate.process import run_process
from tests.lexer_crate import MANIFEST, UNIT_TESTS, cargo_env, lexer_target

__all__ = ["lexer_target"]

pytestmark = pytest.mark.cargo


def _build(target: Path, test_target: str, *features: str) -> list[cargo_tests.TestBinary]:
    return cargo_tests.build_test_binaries(
        MANIFEST, "profiling", features, test_target, what="lexer", env=cargo_env(target)
    )


def _cases(
    target: Path, test_target: str, pattern: str, *features: str
) -> list[cargo_tests.TestCase]:
    binaries = _build(target, test_target, *features)
    names = {b.path: cargo_tests.list_tests(b, cwd=MANIFEST.parent) for b in binaries}
    return cargo_tests.select_cases(
        "lexer", binaries, names, pattern, qualify=test_target == cargo_tests.ALL
    )


def test_build_command_selects_the_test_targets() -> None:
    def argv(t: str) -> list[str]:
        return cargo_tests.build_command("cargo", MANIFEST, "profiling", ("regress",), t)[2:]

    assert argv("lib")[-3:] == ["--features", "regress", "--lib"]
    assert argv("all")[-2:] == ["--lib", "--tests"]
    assert argv("roundtrip")[-2:] == ["--test", "roundtrip"]
    assert "--no-run" in argv("lib")
    assert argv("lib")[argv("lib").index("--profile") + 1] == "profiling"


@pytest.mark.parametrize(
    ("test_target", "binaries"),
    [
        ("lib", [("lexer", "lib")]),
        ("all", [("lexer", "lib"), ("roundtrip", "test")]),
        ("roundtrip", [("roundtrip", "test")]),
    ],
)
def test_builds_the_binaries_of_the_test_target(
    lexer_target: Path, test_target: str, binaries: list[tuple[str, str]]
) -> None:
    built = _build(lexer_target, test_target)
    assert [(b.target, b.kind) for b in built] == binaries
    assert all(b.path.is_file() and os.access(b.path, os.X_OK) for b in built)
    assert all(str(b.path).startswith(str(lexer_target / "profiling")) for b in built)


def test_an_unknown_test_target_is_named(lexer_target: Path) -> None:
    with pytest.raises(WorkloadError, match=r"test_target 'nosuch': no test target named `nosuch`"):
        _build(lexer_target, "nosuch")


def test_lists_every_test_but_the_ignored_ones(lexer_target: Path) -> None:
    (binary,) = _build(lexer_target, "lib")
    names = cargo_tests.list_tests(binary, cwd=MANIFEST.parent)
    assert sorted(names) == sorted(UNIT_TESTS)
    assert "tokens::tests::huge_input" not in names


def test_a_feature_adds_a_test(lexer_target: Path) -> None:
    cases = _cases(lexer_target, "lib", "numbers::", "extra-test")
    assert [c.workload for c in cases] == [
        "lexer::numbers::tests::parses_hex",
        "lexer::numbers::tests::parses_numbers",
    ]


def test_the_filter_is_cargos_substring_match(lexer_target: Path) -> None:
    assert [c.name for c in _cases(lexer_target, "lib", "tokens::")] == [
        "tokens::tests::long_line",
        "tokens::tests::short_line",
    ]
    assert [c.name for c in _cases(lexer_target, "lib", "long_")] == ["tokens::tests::long_line"]
    assert len(_cases(lexer_target, "lib", "")) == len(UNIT_TESTS)


def test_integration_tests_are_named_after_their_file_under_all(lexer_target: Path) -> None:
    names = [c.workload for c in _cases(lexer_target, "all", "roundtrip")]
    assert names == ["lexer::roundtrip::roundtrip_tokens"]
    assert [c.workload for c in _cases(lexer_target, "roundtrip", "")] == [
        "lexer::roundtrip_tokens"
    ]


def _run(case: cargo_tests.TestCase) -> cargo_tests.Finished:
    # RUST_BACKTRACE=1 must not change the one-line message.
    env = {**os.environ, "RUST_BACKTRACE": "1"}
    return run_process(case.argv(), cwd=MANIFEST.parent, env=env, what=case.workload)


def test_runs_exactly_one_test(lexer_target: Path) -> None:
    (case,) = _cases(lexer_target, "lib", "long_line")
    assert case.argv()[1:] == ["--exact", "tokens::tests::long_line", "--test-threads=1"]
    done = _run(case)
    cargo_tests.check_test_ran(case, done, "no profiler")
    assert "1 passed" in done.stdout


def test_a_failing_test_is_an_error_with_its_assertion_message(lexer_target: Path) -> None:
    (case,) = _cases(lexer_target, "lib", "rejects_empty", "failing")
    with pytest.raises(WorkloadError) as caught:
        cargo_tests.check_test_ran(case, _run(case), "no profiler")
    assert str(caught.value) == (
        "test 'lexer::idents::tests::rejects_empty' failed under no profiler: assertion "
        "`left == right` failed: an empty source interns no names left: 0 right: 1 "
        "(at src/idents.rs:38:9)"
    )


def test_a_test_that_no_longer_exists_did_not_run(lexer_target: Path) -> None:
    (case,) = _cases(lexer_target, "lib", "long_line")
    gone = cargo_tests.TestCase(case.binary, "tokens::tests::renamed", "lexer::renamed")
    with pytest.raises(WorkloadError, match=r"'lexer::renamed' did not run \(test result: ok\. 0"):
        cargo_tests.check_test_ran(gone, _run(gone), "no profiler")


def test_parse_list_keeps_tests_not_benchmarks() -> None:
    out = "a::b: test\nbench_x: bench\nc: test\n\n3 tests, 1 benchmark\n"
    assert cargo_tests.parse_list(out) == ["a::b", "c"]
