"""What made a measurement: toolchain, target, cargo profile, profiler and their versions.

The baseline records it per workload; ``check`` compares it with the current
one, so a toolchain or profiler bump explains its own diff instead of showing
up as regressions nobody caused.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from allocgate.process import command_output

# The keys newcomer owns in a baseline workload's `provenance:` mapping; bless
# adds its own (reason, blessed_by, ...) to the same mapping.
# (The profiler itself is the workload entry's `profiler`, not repeated here.)
FIELDS = ("rustc", "target", "cargo_profile", "profiler_version", "dhat_version")
_LABELS = {
    "rustc": "rustc",
    "target": "target",
    "cargo_profile": "cargo profile",
    "dhat_version": "dhat crate",
}
_TOOLS = {"valgrind-dhat": "valgrind", "heaptrack": "heaptrack", "dhat-rs": "dhat crate"}


@dataclass(frozen=True)
class Provenance:
    """One workload's toolchain facts; None where a fact is unknown."""

    rustc: str | None = None
    """``rustc -V`` without the leading ``rustc``, e.g. ``1.95.0 (59807616e 2026-04-14)``."""
    target: str | None = None
    cargo_profile: str | None = None
    profiler_version: str | None = None
    """``valgrind --version`` / ``heaptrack --version``; for dhat-rs the dhat crate's."""
    dhat_version: str | None = None
    """The ``dhat`` crate's version from Cargo.lock (dhat-rs workloads)."""

    def to_dict(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Provenance:
        """Reads the keys it knows; others (bless's reason, blessed_by, …) are not its business."""
        return cls(**{k: str(data[k]) for k in FIELDS if data.get(k) is not None})


def drift(workload: str, profiler: str, recorded: Provenance, current: Provenance) -> list[str]:
    """One warning per fact that differs, naming both values. Unknown facts never warn."""
    warnings = []
    for key in FIELDS:
        before, now = getattr(recorded, key), getattr(current, key)
        if before is None or now is None or before == now:
            continue
        if key == "dhat_version" and profiler == "dhat-rs":
            continue  # already said as the profiler's version
        label = _TOOLS.get(profiler, profiler) if key == "profiler_version" else _LABELS[key]
        warnings.append(
            f"{workload}: the baseline was made with {label} {before}, this run used {label} "
            f"{now}; allocations may differ because of that, not because of the code"
        )
    return warnings


@lru_cache(maxsize=32)
def rustc_facts(directory: Path) -> tuple[str | None, str | None]:
    """``(version, host triple)`` of the rustc cargo would use in ``directory``.

    Run there, so a rust-toolchain.toml of the project picks the toolchain, as
    it does for cargo; ``RUSTC`` wins as it does for cargo.
    """
    out = command_output([os.environ.get("RUSTC") or "rustc", "-vV"], cwd=directory)
    if out is None:
        return None, None
    lines = out.splitlines()
    version = lines[0].removeprefix("rustc ").strip() if lines else None
    host = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("host:")), None)
    return version or None, host


@lru_cache(maxsize=8)
def tool_version(tool: str) -> str | None:
    """``valgrind-3.19.0`` → ``3.19.0``; ``heaptrack 1.4.0`` → ``1.4.0``."""
    out = command_output([tool, "--version"])
    if not out:
        return None
    m = re.search(r"(\d+(?:\.\d+)+\S*)", out)
    return m.group(1) if m else out.strip() or None


def find_lockfile(manifest: Path) -> Path | None:
    """The Cargo.lock cargo uses for ``manifest``: beside it or in a parent (a workspace)."""
    for directory in (manifest.parent, *manifest.parent.parents):
        lock = directory / "Cargo.lock"
        if lock.is_file():
            return lock
    return None


def locked_version(lockfile: Path, crate: str) -> str | None:
    """The version of ``crate`` in a Cargo.lock (the first, if several are locked)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        doc = tomllib.loads(lockfile.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    for package in doc.get("package") or ():
        if isinstance(package, dict) and package.get("name") == crate:
            version = package.get("version")
            return str(version) if version is not None else None
    return None


def current(manifest: Path, cargo_profile: str, profiler: str) -> Provenance:
    """The facts of a build of ``manifest`` that is about to run (or just ran)."""
    version, host = rustc_facts(manifest.parent)
    target = os.environ.get("CARGO_BUILD_TARGET") or host
    dhat = None
    if profiler == "dhat-rs":
        lock = find_lockfile(manifest)
        dhat = locked_version(lock, "dhat") if lock is not None else None
        profiler_version = dhat
    else:
        tool = _TOOLS.get(profiler)
        profiler_version = tool_version(tool) if tool else None
    return Provenance(
        rustc=version,
        target=target,
        cargo_profile=cargo_profile,
        profiler_version=profiler_version,
        dhat_version=dhat,
    )
