"""Provenance: the real toolchain's facts, Cargo.lock versions, and drift warnings."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from allocgate.provenance import (
    Provenance,
    current,
    drift,
    find_lockfile,
    locked_version,
    rustc_facts,
    tool_version,
)

LOCK = """\
version = 4

[[package]]
name = "dhat"
version = "0.3.3"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "orders"
version = "0.1.0"
"""


def test_rustc_facts_are_the_toolchains(tmp_path: Path) -> None:
    if shutil.which("rustc") is None:
        pytest.skip("rustc not found on PATH")
    version, host = rustc_facts(tmp_path)
    assert version is not None
    assert re.match(r"\d+\.\d+\.\d+", version)
    assert host is not None
    assert host.count("-") >= 2


def test_valgrind_version() -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind not found on PATH")
    version = tool_version("valgrind")
    assert version is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version)


def test_dhat_version_from_the_workspace_lockfile(tmp_path: Path) -> None:
    (tmp_path / "Cargo.lock").write_text(LOCK)
    member = tmp_path / "crates" / "orders"
    member.mkdir(parents=True)
    (member / "Cargo.toml").write_text("[package]\n")
    assert find_lockfile(member / "Cargo.toml") == tmp_path / "Cargo.lock"
    assert locked_version(tmp_path / "Cargo.lock", "dhat") == "0.3.3"
    assert locked_version(tmp_path / "Cargo.lock", "serde") is None
    facts = current(member / "Cargo.toml", "profiling", "dhat-rs")
    assert (facts.profiler_version, facts.dhat_version, facts.cargo_profile) == (
        "0.3.3",
        "0.3.3",
        "profiling",
    )


def test_drift_names_both_versions() -> None:
    old = Provenance(rustc="1.94.0 (4a4ef493e 2026-03-02)", target="x86_64-unknown-linux-gnu")
    new = Provenance(rustc="1.95.0 (59807616e 2026-04-14)", target="x86_64-unknown-linux-gnu")
    (warning,) = drift("tokenize", "valgrind-dhat", old, new)
    assert "tokenize" in warning
    assert "rustc 1.94.0 (4a4ef493e 2026-03-02)" in warning
    assert "rustc 1.95.0 (59807616e 2026-04-14)" in warning


def test_drift_of_the_profiler_names_the_tool() -> None:
    (warning,) = drift(
        "w",
        "valgrind-dhat",
        Provenance(profiler_version="3.18.1"),
        Provenance(profiler_version="3.19.0"),
    )
    assert "valgrind 3.18.1" in warning
    assert "valgrind 3.19.0" in warning


def test_unknown_or_equal_facts_never_warn() -> None:
    same = Provenance(rustc="1.95.0", cargo_profile="profiling")
    assert drift("w", "heaptrack", same, same) == []
    assert drift("w", "heaptrack", Provenance(), same) == []


def test_round_trip_ignores_other_keys() -> None:
    facts = Provenance(rustc="1.95.0", target="t", profiler_version="1.4.0")
    data = {**facts.to_dict(), "reason": "bigger buffers", "blessed_by": "octocat"}
    assert Provenance.from_mapping(data) == facts
    assert facts.to_dict() == {"rustc": "1.95.0", "target": "t", "profiler_version": "1.4.0"}
