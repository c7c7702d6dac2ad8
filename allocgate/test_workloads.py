"""``tests:`` workloads turned into one workload per #[test], and the tests that
appeared or vanished since the bless.

A workload with ``tests: FILTER`` stands for every matching test of the crate:
``lexer`` becomes ``lexer::tokens::tests::long_line``, ``lexer::…``, each with its
own baseline entry, verdict and report row. Which tests exist is only known
after building the test binaries, so this happens after the config is read and
before anything is run, sharded or compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from allocgate import cargo_tests
from allocgate.cargo_tests import TestBinary, TestCase
from allocgate.config import WorkloadConfig
from allocgate.errors import AllocgateError, WorkloadError
from allocgate.process import Progress

NEW = "new"
"""A test added since the bless: reported, not gated until blessed."""
GONE = "gone"
"""A test in the baseline that no longer exists (or no longer matches the filter)."""


class TestSuites:
    """Test binaries built and listed once per (manifest, profile, features, target)."""

    __test__ = False

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._listed: dict[tuple[Path, str, tuple[str, ...], str], dict[TestBinary, list[str]]] = {}

    def cases(self, w: WorkloadConfig) -> list[TestCase]:
        """The tests ``w`` stands for, in a stable order."""
        assert w.tests is not None
        key = (w.manifest, w.cargo_profile, w.features, w.test_target)
        if key not in self._listed:
            label = w.cargo_profile + (f", features {','.join(w.features)}" if w.features else "")
            with self.progress.step(f"building the tests of {w.name} ({label})"):
                binaries = cargo_tests.build_test_binaries(
                    w.manifest,
                    w.cargo_profile,
                    w.features,
                    w.test_target,
                    what=f"workload {w.name!r}",
                )
                self._listed[key] = {
                    b: cargo_tests.list_tests(b, cwd=w.cwd, env=None) for b in binaries
                }
        listed = self._listed[key]
        names = {b.path: tests for b, tests in listed.items()}
        cases = cargo_tests.select_cases(
            w.name,
            list(listed),
            names,
            w.tests,
            qualify=w.test_target == cargo_tests.ALL,
            exact=w.tests_exact,
        )
        if not cases:
            every = sorted(t for tests in listed.values() for t in tests)
            shown = ", ".join(every[:5]) + (f" and {len(every) - 5} more" if len(every) > 5 else "")
            what = (
                f"no test {w.name}::{w.tests}"
                if w.tests_exact
                else f"its filter tests: {w.tests!r} matches no test"
            )
            raise WorkloadError(
                f"workload {w.name!r}: {what} of test_target {w.test_target!r} "
                f"(its tests: {shown or 'none'})"
            )
        return cases


def for_test(w: WorkloadConfig, case: TestCase) -> WorkloadConfig:
    """The workload of one test: its binary run with ``--exact NAME --test-threads=1``."""
    # A backtrace's symbolization would be measured as the test's: off unless asked for.
    env = {"RUST_BACKTRACE": "0", **w.env}
    return dataclasses.replace(
        w, name=case.workload, args=tuple(cargo_tests.run_args(case.name)), env=env, test=case
    )


@dataclass(frozen=True)
class Plan:
    """What a check runs: plain workloads and one per test, the test workloads
    that could not be expanded (with why), and the baselined tests that are gone."""

    workloads: tuple[WorkloadConfig, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)
    """Baseline entry name → the workload (group) it belonged to."""

    def shard(self, k: int, n: int) -> Plan:
        """The K-th of N deterministic subsets, split per test: round robin over
        every name the plan reports, sorted."""
        names = sorted({w.name for w in self.workloads} | set(self.failed) | set(self.gone))
        mine = {name for i, name in enumerate(names) if i % n == k - 1}
        return Plan(
            tuple(w for w in self.workloads if w.name in mine),
            {k_: v for k_, v in self.failed.items() if k_ in mine},
            {k_: v for k_, v in self.gone.items() if k_ in mine},
        )


def plan(
    workloads: Sequence[WorkloadConfig],
    suites: TestSuites,
    baselined: Iterable[str] = (),
) -> Plan:
    """Expands the ``tests:`` workloads; one that cannot be built is a failure of its
    own and spoils no other. ``baselined`` (the baseline's names) finds the gone tests."""
    out: list[WorkloadConfig] = []
    failed: dict[str, str] = {}
    gone: dict[str, str] = {}
    known = sorted(baselined)
    for w in workloads:
        if w.tests is None:
            out.append(w)
            continue
        try:
            tests = [for_test(w, case) for case in suites.cases(w)]
        except AllocgateError as exc:
            failed[w.name if not w.tests_exact else f"{w.name}::{w.tests}"] = str(exc)
            continue
        out.extend(tests)
        if not w.tests_exact:
            current = {t.name for t in tests}
            prefix = f"{w.name}::"
            gone.update((n, w.name) for n in known if n.startswith(prefix) and n not in current)
    return Plan(tuple(out), failed, gone)


def expand(workloads: Sequence[WorkloadConfig], suites: TestSuites) -> list[WorkloadConfig]:
    """Every workload, test workloads expanded; the first that cannot be is an error."""
    p = plan(workloads, suites)
    for message in p.failed.values():
        raise WorkloadError(message)
    return list(p.workloads)


def renamed_pairs(
    new: Sequence[tuple[str, str]], gone: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(gone, new) pairs said in one line: within a workload, exactly one test new
    and one gone reads as a rename. ``new``/``gone`` are (name, group) pairs."""
    pairs = []
    for group in sorted({g for _, g in new} & {g for _, g in gone}):
        added = [n for n, g in new if g == group]
        removed = [n for n, g in gone if g == group]
        if len(added) == 1 and len(removed) == 1:
            pairs.append((removed[0], added[0]))
    return pairs
