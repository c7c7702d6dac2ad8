"""A crate's ``#[test]``s as workloads: building the test binaries, listing their
tests, and running one test alone the way cargo's own test runner would.

``cargo test --no-run --message-format=json`` names the binaries,
``BIN --list --format terse`` names their tests, and ``BIN --exact NAME
--test-threads=1`` runs one of them on the harness's main thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from allocgate.build import executables, first_compiler_error
from allocgate.errors import WorkloadError
from allocgate.process import Finished, require_tool, run_process, tail

LIB = "lib"
"""``test_target: lib`` (the default): the unit tests of the library."""
ALL = "all"
"""``test_target: all``: the library's unit tests and every ``tests/NAME.rs``."""

_LIST_TIMEOUT = 60.0


@dataclass(frozen=True)
class TestBinary:
    """One test executable cargo built."""

    __test__ = False  # not a pytest test class

    target: str
    """The cargo target's name (the crate name for the library, ``NAME`` for tests/NAME.rs)."""
    kind: str
    """``lib``, ``test`` (an integration test file), ``bin``, ``example`` or ``bench``."""
    path: Path


@dataclass(frozen=True)
class TestCase:
    """One ``#[test]`` of one binary, and the name its workload gets."""

    __test__ = False

    binary: TestBinary
    name: str
    """The test's path as libtest lists it, e.g. ``tokens::tests::long_line``."""
    workload: str
    """``<workload>::<test path>`` (``<workload>::<target>::<test path>`` for an
    integration test under ``test_target: all``)."""
    group: str = ""
    """The configured workload the test belongs to (``lexer``)."""

    def argv(self, exe: Path | None = None) -> list[str]:
        """The command that runs this test alone, output captured by libtest as usual."""
        return [str(exe or self.binary.path), *run_args(self.name)]


def run_args(name: str) -> list[str]:
    return ["--exact", name, "--test-threads=1"]


def build_command(
    cargo: str,
    manifest: Path,
    cargo_profile: str,
    features: Sequence[str],
    test_target: str,
) -> list[str]:
    """``cargo test --no-run`` for the test binaries ``test_target`` selects."""
    argv = [
        cargo,
        "test",
        "--no-run",
        "--manifest-path",
        str(manifest),
        "--profile",
        cargo_profile,
        "--message-format=json-render-diagnostics",
    ]
    if features:
        argv += ["--features", ",".join(features)]
    if test_target == LIB:
        argv.append("--lib")
    elif test_target == ALL:
        argv += ["--lib", "--tests"]
    else:
        argv += ["--test", test_target]
    return argv


def parse_test_binaries(messages: str) -> list[TestBinary]:
    """The test executables among cargo's JSON messages, library first, then by name."""
    found: dict[Path, TestBinary] = {}
    for msg in executables(messages.splitlines()):
        if not (msg.get("profile") or {}).get("test"):
            continue
        target = msg.get("target") or {}
        kinds = target.get("kind") or []
        kind = "lib" if any(k in ("lib", "rlib", "cdylib", "dylib") for k in kinds) else kinds[0]
        path = Path(msg["executable"])
        found[path] = TestBinary(target=str(target.get("name")), kind=str(kind), path=path)
    return sorted(found.values(), key=lambda b: (b.kind != "lib", b.kind, b.target))


def build_test_binaries(
    manifest: Path,
    cargo_profile: str,
    features: Sequence[str],
    test_target: str,
    *,
    what: str,
    env: Mapping[str, str] | None = None,
) -> list[TestBinary]:
    """Builds the test binaries (never runs them) and returns where cargo put them."""
    argv = build_command(require_tool("cargo"), manifest, cargo_profile, features, test_target)
    done = run_process(argv, cwd=manifest.parent, env=env, what=f"building {what}")
    if done.returncode != 0:
        if "no test target named" in done.stderr or "no library targets found" in done.stderr:
            raise WorkloadError(
                f"{manifest}: {what}: test_target {test_target!r}: "
                + _cargo_error_line(done.stderr)
                + " (expected 'lib', 'all' or the NAME of a tests/NAME.rs file)"
            )
        raise WorkloadError(
            f"{manifest}: cargo test --no-run failed for {what}: "
            + first_compiler_error(done.stderr, done.returncode)
        )
    binaries = parse_test_binaries(done.stdout)
    if not binaries:
        raise WorkloadError(f"{manifest}: {what}: cargo built no test binary for {test_target!r}")
    return binaries


def _cargo_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("error"):
            return line.removeprefix("error: ").strip()
    return tail(stderr, 1)


def parse_list(stdout: str) -> list[str]:
    """Test names from ``--list --format terse`` (``NAME: test``; benchmarks are not tests)."""
    names = []
    for line in stdout.splitlines():
        name, sep, kind = line.rpartition(": ")
        if sep and kind.strip() == "test":
            names.append(name)
    return names


def list_tests(binary: TestBinary, *, cwd: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The tests ``cargo test`` would run: every listed test except the ``#[ignore]``d."""

    def listed(*extra: str) -> list[str]:
        done = run_process(
            [str(binary.path), "--list", "--format", "terse", *extra],
            cwd=cwd,
            env=env,
            timeout=_LIST_TIMEOUT,
            what=f"listing the tests of {binary.path.name}",
        )
        if done.returncode != 0:
            raise WorkloadError(
                f"{binary.path}: --list failed with exit code {done.returncode}: "
                + (tail(done.stderr, 2).replace("\n", " | ") or "no output")
            )
        return parse_list(done.stdout)

    ignored = set(listed("--ignored"))
    return [name for name in listed() if name not in ignored]


def matches(name: str, pattern: str) -> bool:
    """cargo's test filter: a substring of the test's path (an empty one matches all)."""
    return pattern in name


def select_cases(
    workload: str,
    binaries: Sequence[TestBinary],
    names: Mapping[Path, Sequence[str]],
    pattern: str,
    *,
    qualify: bool,
    exact: bool = False,
) -> list[TestCase]:
    """The matching tests of every binary, in a stable order, each named as a workload.

    ``qualify`` puts the target's name before an integration test's path, so that
    tests of the same name in two binaries stay two workloads. ``exact``: ``pattern``
    is one test's workload name without the ``<workload>::`` prefix.
    """
    cases = []
    for binary in binaries:
        prefix = f"{workload}::" + (f"{binary.target}::" if qualify and binary.kind != LIB else "")
        for name in sorted(names.get(binary.path, ())):
            full = prefix + name
            if (full == f"{workload}::{pattern}") if exact else matches(name, pattern):
                cases.append(TestCase(binary, name, full, workload))
    return cases


_RESULT_RE = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", re.M)


def check_test_ran(case: TestCase, done: Finished, under: str) -> None:
    """Raises unless exactly this one test ran and passed: a failure is never a measurement."""
    if done.returncode == 0:
        counts = _RESULT_RE.search(done.stdout)
        if counts is not None and counts.group(1) == "1":
            return
        seen = counts.group(0) if counts else "no 'test result' line"
        raise WorkloadError(
            f"test {case.workload!r} did not run ({seen}): it was renamed, removed or "
            "#[ignore]d since the tests were listed"
        )
    if done.returncode < 0:
        raise WorkloadError(
            f"test {case.workload!r} was killed by signal {-done.returncode} under {under}"
        )
    raise WorkloadError(f"test {case.workload!r} failed under {under}: {failure_message(done)}")


_PANIC_RE = re.compile(r"panicked at (?P<where>[^\n]*?):?\n(?P<message>.*)", re.S)


def failure_message(done: Finished) -> str:
    """The failed test's own message: the panic text and where it panicked, in one line.

    libtest prints the captured output of a failed test between ``---- NAME stdout ----``
    and the ``failures:`` list; the panic message is in it.
    """
    section = done.stdout
    start = section.find("\n---- ")
    if start >= 0:
        section = section[start:]
        end = section.find("\nfailures:", 1)
        if end >= 0:
            section = section[:end]
    found = _PANIC_RE.search(section)
    if found is not None:
        lines = [
            line.strip()
            for line in found.group("message").splitlines()
            if line.strip() and not line.startswith(("note: ", "stack backtrace:"))
        ]
        # The message, and the `left:`/`right:` lines of an assert_eq!, nothing after.
        kept: list[str] = []
        for line in lines:
            if kept and not line.startswith(("left:", "right:")):
                break
            kept.append(line)
        return " ".join(kept) + f" (at {found.group('where').strip()})"
    last = tail(section if start >= 0 else done.stdout + "\n" + done.stderr, 3)
    return f"exit code {done.returncode}" + (f": {last.replace(chr(10), ' | ')}" if last else "")
