"""``allocgate init``: an allocgate.yml for a crate or workspace, from ``cargo metadata``.

The file it writes runs as is: one workload per binary target, the profiler that
needs no code change written out explicitly, and the defaults the README shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from allocgate.errors import ConfigError, WorkloadError

DHAT_FEATURE = "dhat-heap"
CONFIG_NAME = "allocgate.yml"
INSTALL_PROFILER = (
    "no heap profiler found: install Valgrind (`apt-get install -y valgrind`) or heaptrack "
    f"(`apt-get install -y heaptrack`), or wire dhat-rs behind a `{DHAT_FEATURE}` feature "
    "(see the README)"
)

Which = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Target:
    """A runnable target of a workspace member: what one workload builds."""

    package: str
    manifest: Path
    name: str
    kind: str
    """``bin`` or ``example``."""
    has_dhat_feature: bool


@dataclass(frozen=True)
class TestSuite:
    """A workspace member library whose ``#[test]``s can each be a workload."""

    package: str
    manifest: Path
    integration: bool
    """It also has integration tests (``tests/*.rs``): offered as ``test_target: all``."""
    has_dhat_feature: bool


@dataclass(frozen=True)
class Scaffold:
    """What ``init`` decided: the file's text and where it goes."""

    path: Path
    text: str
    workloads: tuple[str, ...]
    profilers: tuple[str, ...]

    def next_steps(self) -> str:
        config = "" if self.path.name == CONFIG_NAME else f" --config {self.path}"
        return (
            f"wrote {self.path} ({len(self.workloads)} workload"
            f"{'s' if len(self.workloads) != 1 else ''}: {', '.join(self.workloads)}; "
            f"profiler: {', '.join(self.profilers)})\n"
            "next:\n"
            f"  allocgate bless{config}    # build, run and record allocgate-baseline.yml\n"
            f"  allocgate check{config}    # compare a later build with it (exit 1 on growth)\n"
        )


def cargo_metadata(directory: Path) -> Mapping[str, Any]:
    """``cargo metadata --no-deps`` of the crate or workspace in ``directory``."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise WorkloadError("cargo not found on PATH: install Rust with rustup (https://rustup.rs)")
    try:
        # --no-deps: nothing is resolved or downloaded, so it also works offline.
        done = subprocess.run(
            [cargo, "metadata", "--format-version", "1", "--no-deps"],
            cwd=directory,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise WorkloadError(f"{directory}: cargo metadata timed out") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        first = next(
            (line for line in lines if line.startswith("error")), lines[-1] if lines else ""
        )
        raise ConfigError(f"{directory}: not a cargo crate or workspace ({first.strip()})")
    doc: Mapping[str, Any] = orjson.loads(done.stdout)
    return doc


def _members(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    members = set(doc.get("workspace_members") or ())
    return [p for p in doc.get("packages") or () if not members or p.get("id") in members]


def cargo_targets(
    directory: Path, *, examples: bool = False, doc: Mapping[str, Any] | None = None
) -> list[Target]:
    """The workspace members' binaries (and examples, when asked), from ``cargo metadata``."""
    doc = cargo_metadata(directory) if doc is None else doc
    wanted = ("bin", "example") if examples else ("bin",)
    found: list[Target] = []
    for package in _members(doc):
        has_dhat = DHAT_FEATURE in (package.get("features") or {})
        for target in package.get("targets") or ():
            kinds = target.get("kind") or ()
            kind = next((k for k in wanted if k in kinds), None)
            if kind is not None:
                found.append(
                    Target(
                        package=str(package["name"]),
                        manifest=Path(package["manifest_path"]),
                        name=str(target["name"]),
                        kind=kind,
                        has_dhat_feature=has_dhat,
                    )
                )
    return sorted(found, key=lambda t: (t.kind != "bin", t.package, t.name))


_TEST_ATTRIBUTE = "#[test]"


def _has_unit_tests(src_path: str) -> bool:
    """Whether the library's source tree holds a ``#[test]`` (metadata can't say)."""
    root = Path(src_path).parent
    try:
        return any(
            _TEST_ATTRIBUTE in source.read_text(encoding="utf-8", errors="replace")
            for source in sorted(root.rglob("*.rs"))
        )
    except OSError:
        return False


def test_suites(doc: Mapping[str, Any]) -> list[TestSuite]:
    """Member libraries with tests: each ``#[test]`` can be a workload (``tests:``)."""
    suites: list[TestSuite] = []
    for package in _members(doc):
        targets = package.get("targets") or ()
        lib = next(
            (t for t in targets if {"lib", "rlib"} & set(t.get("kind") or ())),
            None,
        )
        if lib is None:
            continue
        integration = any("test" in (t.get("kind") or ()) for t in targets)
        if integration or _has_unit_tests(str(lib.get("src_path", ""))):
            suites.append(
                TestSuite(
                    package=str(package["name"]),
                    manifest=Path(package["manifest_path"]),
                    integration=integration,
                    has_dhat_feature=DHAT_FEATURE in (package.get("features") or {}),
                )
            )
    return sorted(suites, key=lambda s: s.package)


def fallback_profiler(which: Which = shutil.which) -> str | None:
    """The profiler that needs no change to the code: Valgrind DHAT, else heaptrack."""
    if which("valgrind"):
        return "valgrind-dhat"
    if which("heaptrack"):
        return "heaptrack"
    return None


def _names(targets: Sequence[Target]) -> list[str]:
    """Workload names: the target's name, qualified only where two would clash."""
    plain = [t.name if t.kind == "bin" else f"example-{t.name}" for t in targets]
    return [
        name if plain.count(name) == 1 else f"{t.package}-{name}" for name, t in zip(plain, targets)
    ]


def _scalar(value: str) -> str:
    """A YAML scalar that reads back as this string (quoted only when it must be)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def scaffold(
    directory: Path,
    config_path: Path,
    *,
    examples: bool = False,
    tests: bool = False,
    which: Which = shutil.which,
) -> Scaffold:
    """Decides the config for the crate or workspace in ``directory``; writes nothing.

    Libraries with tests are offered as ``tests:`` workloads (one workload per
    ``#[test]``): written out with ``tests``, or when there is no binary to run,
    else left as a commented block to uncomment."""
    doc = cargo_metadata(directory)
    targets = cargo_targets(directory, examples=examples, doc=doc)
    fallback = fallback_profiler(which)
    # dhat-rs needs a profiler created inside each test, so tests run under the fallback.
    suites = test_suites(doc) if fallback is not None else []
    if not targets and not suites:
        what = "binary or example targets" if examples else "binary targets (try --examples)"
        raise ConfigError(f"{directory}: the crate has no {what} and no library tests")
    tests = tests or not targets
    profilers = []
    for t in targets:
        if t.has_dhat_feature:
            profilers.append("dhat-rs")
        elif fallback is None:
            raise WorkloadError(INSTALL_PROFILER)
        else:
            profilers.append(fallback)
    if suites and fallback is not None and tests:
        profilers += [fallback] * len(suites)
    default = fallback if fallback is not None and fallback in profilers else profilers[0]
    root = config_path.parent.resolve()
    lines = [
        "# allocgate.yml, written by `allocgate init`. Paths are relative to this file.",
        "# Every key under `defaults` may be overridden per workload; see the README.",
        "baseline: allocgate-baseline.yml",
        "defaults:",
        f"  profiler: {default}",
        "  cargo_profile: profiling        # allocgate supplies it when Cargo.toml has none",
        "  top: 5                          # callsites gated per workload",
        "  metrics: [total_bytes]",
        "  threshold: {total_bytes: {relative: 5%, absolute: 1 KiB}}",
        "workloads:",
    ]
    names = _names(targets)
    for name, t, profiler in zip(names, targets, profilers):
        manifest = Path(os.path.relpath(t.manifest, root)).as_posix()
        lines += [
            f"  {_scalar(name)}:",
            f"    manifest: {_scalar(manifest)}",
            f"    {t.kind}: {_scalar(t.name)}",
        ]
        if profiler != default:
            lines.append(f"    profiler: {profiler}")
    test_names = _suite_names(suites, set(names))
    if suites and not tests:
        lines.append(
            "  # Each #[test] of a library can be a workload of its own (one baseline entry"
        )
        lines.append("  # per test): uncomment, or run `allocgate init --tests --force`.")
    for name, suite in zip(test_names, suites):
        block = _suite_lines(name, suite, root, fallback if fallback != default else None)
        # "  # key:" uncomments (delete "# ") back to the right indentation.
        lines += block if tests else [f"  # {line[2:]}" for line in block]
    return Scaffold(
        path=config_path,
        text="\n".join(lines) + "\n",
        workloads=tuple(names + (test_names if tests else [])),
        profilers=tuple(sorted(set(profilers))),
    )


def _suite_names(suites: Sequence[TestSuite], taken: set[str]) -> list[str]:
    names = []
    for suite in suites:
        name = f"{suite.package}-tests"
        while name in taken:
            name += "-lib"
        taken.add(name)
        names.append(name)
    return names


def _suite_lines(name: str, suite: TestSuite, root: Path, profiler: str | None) -> list[str]:
    manifest = Path(os.path.relpath(suite.manifest, root)).as_posix()
    lines = [
        f"  {_scalar(name)}:",
        f"    manifest: {_scalar(manifest)}",
        '    tests: ""                    # a cargo test filter; "" makes every test a workload',
    ]
    if suite.integration:
        lines.append("    test_target: all             # the library's tests and tests/*.rs")
    if profiler is not None:
        lines.append(f"    profiler: {profiler}")
    return lines


def exists_error(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} already exists; it was left unchanged (pass --force to overwrite it)"
    )


def write_new(path: Path, text: str, *, force: bool = False) -> None:
    """Creates ``path``; an existing file is left byte for byte unless ``force``."""
    if not force:
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise exists_error(path) from None
        return
    from allocgate.atomic import atomic_write

    atomic_write(path, text, ConfigError)
