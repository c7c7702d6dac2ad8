"""Which crates are the user's own: the workspace that a workload builds.

Keys are taken at the workspace boundary (see ``callsites``), so the fold needs
the names the workspace's crates have in symbols (``scan-core`` is
``scan_core``) and the workspace root, which makes source paths
workspace-relative. ``cargo metadata --no-deps`` says both without resolving
dependencies, so it works offline; it is read once per manifest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from allocgate.errors import WorkloadError

__all__ = ["Workspace", "guess_workspace", "read_workspace"]


@dataclass(frozen=True)
class Workspace:
    """The user's crates, as symbols name them, and where their sources live."""

    crates: frozenset[str]
    """Crate names as they appear in symbols (``-`` → ``_``)."""
    root: Path | None = None
    """The workspace root; ``None`` when only the names are known (``--workspace``)."""
    members: tuple[str, ...] = ()
    """Member directories relative to the root (``crates/scan-core``; ``.`` for the root)."""

    @classmethod
    def named(cls, names: str | tuple[str, ...] | list[str]) -> Workspace:
        """From ``--workspace NAME[,NAME…]``."""
        if isinstance(names, str):
            names = names.split(",")
        crates = frozenset(crate_name(n) for n in names if n.strip())
        return cls(crates=crates)

    def __str__(self) -> str:
        return ", ".join(sorted(self.crates))


def crate_name(name: str) -> str:
    """A package or target name as it appears in symbol paths."""
    return name.strip().replace("-", "_")


_CACHE: dict[Path, Workspace] = {}


def read_workspace(manifest: Path) -> Workspace:
    """The workspace that ``manifest`` belongs to (cached per manifest)."""
    manifest = manifest.resolve()
    cached = _CACHE.get(manifest)
    if cached is not None:
        return cached
    cargo = shutil.which("cargo")
    if cargo is None:
        raise WorkloadError("cargo not found on PATH: install Rust with rustup (https://rustup.rs)")
    done = subprocess.run(
        [
            cargo,
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
            str(manifest),
        ],
        cwd=manifest.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        first = next((x for x in lines if x.startswith("error")), lines[-1] if lines else "")
        raise WorkloadError(f"{manifest}: cargo metadata failed: {first}")
    try:
        doc = orjson.loads(done.stdout)
    except orjson.JSONDecodeError as exc:
        raise WorkloadError(f"{manifest}: cargo metadata printed no JSON ({exc})") from None
    workspace = parse_metadata(doc)
    _CACHE[manifest] = workspace
    return workspace


def parse_metadata(doc: Any) -> Workspace:
    """``cargo metadata --format-version 1 --no-deps`` output → Workspace."""
    root = Path(str(doc.get("workspace_root", "")))
    members = set(doc.get("workspace_members") or ())
    crates: set[str] = set()
    dirs: list[str] = []
    for package in doc.get("packages") or ():
        if members and package.get("id") not in members:
            continue
        crates.add(crate_name(str(package.get("name", ""))))
        for target in package.get("targets") or ():
            crates.add(crate_name(str(target.get("name", ""))))
        manifest = Path(str(package.get("manifest_path", "")))
        try:
            rel = os.path.relpath(manifest.parent, root)
        except ValueError:
            continue
        dirs.append(rel)
    crates.discard("")
    return Workspace(crates=frozenset(crates), root=root, members=tuple(sorted(dirs)))


_TARGET_RE = re.compile(r"^(?P<root>/.*?)/target/(?:[^/]+/)?(?:debug|release|[\w-]+)/[^/]+$")


def guess_workspace(command: str) -> Workspace | None:
    """For a bare profile: the workspace of the binary its command ran.

    The binary's own name is a crate of the workspace. When it still sits in a
    cargo target directory whose parent holds a ``Cargo.toml``, that workspace
    is read whole.
    """
    program = command.split(" ", 1)[0].strip()
    if not program:
        return None
    name = crate_name(Path(program).name)
    match = _TARGET_RE.match(program)
    if match is not None:
        manifest = Path(match.group("root")) / "Cargo.toml"
        if manifest.is_file():
            try:
                found = read_workspace(manifest)
            except (WorkloadError, OSError, subprocess.TimeoutExpired):
                found = None
            if found is not None:
                # Built in that workspace's target directory: its crates.
                return Workspace(found.crates | {name}, found.root, found.members)
    return Workspace(crates=frozenset({name})) if name else None


def workspace_of_source(file: Path) -> Workspace | None:
    """The workspace a source file belongs to, when its sources are on disk: the
    nearest ``Cargo.toml`` above it with a ``[workspace]`` table, else its package."""
    package: Path | None = None
    for directory in file.parents:
        manifest = directory / "Cargo.toml"
        if not manifest.is_file():
            continue
        try:
            text = manifest.read_text(errors="replace")
        except OSError:
            continue
        if package is None:
            package = manifest
        if re.search(r"^\s*\[workspace\]", text, re.M):
            package = manifest
            break
    if package is None:
        return None
    try:
        return read_workspace(package)
    except (WorkloadError, OSError, subprocess.TimeoutExpired):
        return None
