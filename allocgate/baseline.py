"""The committed baseline: read, validated, and written deterministically and atomically."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allocgate.callsites import Callsite
from allocgate.errors import BaselineError
from allocgate.metrics import METRIC_NAMES
from allocgate.profile import PROFILERS, Profile

VERSION = 1
HEADER = """\
# allocgate baseline: the heap allocations each workload is allowed.
# Written by `allocgate bless`; do not edit by hand. After an intended change,
# regenerate it with `allocgate bless [WORKLOAD...]` and commit the result.
"""


@dataclass(frozen=True)
class WorkloadBaseline:
    """What one workload allocated when it was last blessed."""

    name: str
    profiler: str
    totals: dict[str, int]
    callsites: tuple[Callsite, ...]
    """The top callsites, more than are gated, largest first by ``total_bytes``."""
    depth: int = 1
    mode: str = "heap"
    units: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_profile(cls, name: str, profile: Profile, keep: int) -> WorkloadBaseline:
        return cls(
            name=name,
            profiler=profile.profiler,
            totals=dict(profile.totals),
            callsites=tuple(profile.callsites[:keep]),
            depth=profile.depth,
            mode=profile.mode,
            units=dict(profile.units) if profile.mode != "heap" else {},
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data, in the shape of the YAML file (for xdist workers)."""
        entry: dict[str, Any] = {"profiler": self.profiler, "depth": self.depth}
        if self.mode != "heap":
            entry["mode"] = self.mode
            entry["units"] = dict(sorted(self.units.items()))
        entry["totals"] = dict(sorted(self.totals.items()))
        entry["callsites"] = [
            {
                "key": s.key,
                **({"at": s.location} if s.location else {}),
                **dict(sorted(s.metrics.items())),
            }
            for s in sorted(self.callsites, key=lambda s: s.key)
        ]
        return entry

    @classmethod
    def from_dict(cls, name: str, entry: Mapping[str, Any], source: Path) -> WorkloadBaseline:
        return _validate_workload(source, name, entry)

    def as_profile(self, source: str) -> Profile:
        metrics = tuple(m for m in METRIC_NAMES if m in self.totals)
        return Profile(
            source=source,
            profiler=self.profiler,
            mode=self.mode,
            command="",
            metrics=metrics,
            totals=dict(self.totals),
            callsites=self.callsites,
            depth=self.depth,
            units=dict(self.units),
        )


@dataclass(frozen=True)
class Baseline:
    path: Path
    workloads: dict[str, WorkloadBaseline]

    def get(self, name: str) -> WorkloadBaseline:
        try:
            return self.workloads[name]
        except KeyError:
            known = ", ".join(sorted(self.workloads)) or "none"
            raise BaselineError(
                f"{self.path}: no baseline for workload {name!r} (has: {known}); "
                f"run `allocgate bless {name}` to record one"
            ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses duplicate mapping keys instead of keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(path: Path, text: str, error: type[Exception]) -> Any:
    """``yaml.safe_load`` with duplicate keys refused; errors say file:line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        problem = re.sub(r"\s+", " ", problem).strip()
        raise error(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {exc}") from None


def read_baseline(path: Path) -> Baseline:
    """Reads and validates a baseline file. A missing file is an empty baseline."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline(path, {})
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read baseline: {exc}") from exc
    return _validate(path, parse_yaml(path, text, BaselineError))


def _fail(path: Path, where: str, message: str) -> BaselineError:
    return BaselineError(f"{path}: {where}: {message}")


def _validate(path: Path, doc: Any) -> Baseline:
    if doc is None:
        return Baseline(path, {})
    if not isinstance(doc, dict):
        raise BaselineError(f"{path}: expected a mapping with 'version' and 'workloads'")
    unknown = set(doc) - {"version", "workloads"}
    if unknown:
        raise _fail(path, sorted(map(str, unknown))[0], "unknown key")
    version = doc.get("version")
    if version != VERSION or type(version) is not int:
        raise _fail(path, "version", f"unsupported baseline version {version!r} (expected 1)")
    workloads = doc.get("workloads") or {}
    if not isinstance(workloads, dict):
        raise _fail(path, "workloads", "expected a mapping of workload names")
    result: dict[str, WorkloadBaseline] = {}
    for name, entry in workloads.items():
        if not isinstance(name, str):
            raise _fail(path, f"workloads.{name}", "workload names must be strings")
        result[name] = _validate_workload(path, name, entry)
    return Baseline(path, result)


def _metrics(path: Path, where: str, entry: Mapping[str, Any], required: bool) -> dict[str, int]:
    values: dict[str, int] = {}
    for metric in METRIC_NAMES:
        if metric not in entry:
            continue
        value = entry[metric]
        if type(value) is not int or value < 0:
            raise _fail(
                path, f"{where}.{metric}", f"expected a non-negative integer, got {value!r}"
            )
        values[metric] = value
    if required and not values:
        raise _fail(path, where, f"expected at least one metric ({', '.join(METRIC_NAMES)})")
    return values


def _validate_workload(path: Path, name: str, entry: Any) -> WorkloadBaseline:
    where = f"workloads.{name}"
    if not isinstance(entry, dict):
        raise _fail(path, where, "expected a mapping")
    allowed = {"profiler", "depth", "mode", "units", "totals", "callsites"}
    for key in entry:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}", "unknown key")
    profiler = entry.get("profiler")
    if profiler not in PROFILERS:
        raise _fail(
            path, f"{where}.profiler", f"expected one of {', '.join(PROFILERS)}, got {profiler!r}"
        )
    depth = entry.get("depth", 1)
    if type(depth) is not int or depth < 1:
        raise _fail(path, f"{where}.depth", f"expected a positive integer, got {depth!r}")
    mode = entry.get("mode", "heap")
    if mode not in ("heap", "ad-hoc"):
        raise _fail(path, f"{where}.mode", f"expected 'heap' or 'ad-hoc', got {mode!r}")
    units = entry.get("units") or {}
    if not isinstance(units, dict) or not all(isinstance(v, str) for v in units.values()):
        raise _fail(path, f"{where}.units", "expected a mapping of metric to unit name")
    totals = entry.get("totals")
    if not isinstance(totals, dict):
        raise _fail(path, f"{where}.totals", "expected a mapping of metric to value")
    unknown = set(totals) - set(METRIC_NAMES)
    if unknown:
        raise _fail(path, f"{where}.totals.{sorted(map(str, unknown))[0]}", "unknown metric")
    total_values = _metrics(path, f"{where}.totals", totals, required=True)
    sites = entry.get("callsites") or []
    if not isinstance(sites, list):
        raise _fail(path, f"{where}.callsites", "expected a list")
    callsites: list[Callsite] = []
    seen: set[str] = set()
    for i, site in enumerate(sites):
        at = f"{where}.callsites[{i}]"
        if not isinstance(site, dict):
            raise _fail(path, at, "expected a mapping with 'key' and metrics")
        for key in site:
            if key not in ("key", "at", *METRIC_NAMES):
                raise _fail(path, f"{at}.{key}", "unknown key")
        key = site.get("key")
        if not isinstance(key, str) or not key:
            raise _fail(path, f"{at}.key", f"expected a non-empty string, got {key!r}")
        if key in seen:
            raise _fail(path, f"{at}.key", f"duplicate callsite {key!r}")
        seen.add(key)
        location = site.get("at")
        if location is not None and not isinstance(location, str):
            raise _fail(
                path, f"{at}.at", f"expected a string like 'src/main.rs:90', got {location!r}"
            )
        callsites.append(Callsite(key, _metrics(path, at, site, required=True), location))
    callsites.sort(key=lambda s: (-s.metrics.get("total_bytes", 0), s.key))
    return WorkloadBaseline(
        name=name,
        profiler=profiler,
        totals=total_values,
        callsites=tuple(callsites),
        depth=depth,
        mode=mode,
        units=dict(units),
    )


def _dump(value: Any) -> str:
    return yaml.safe_dump(
        value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 20
    )


def render_workload(workload: WorkloadBaseline) -> str:
    """One workload's block under ``workloads:``, indented, deterministic."""
    # Fixed key order (identity first, then metrics by name); callsites by key
    # so that a change of rank alone does not reshuffle the diff of the file.
    text = _dump({workload.name: workload.to_dict()})
    return "".join("  " + line if line.strip() else line for line in text.splitlines(True))


def _existing_blocks(text: str, names: set[str]) -> dict[str, str] | None:
    """The verbatim text of each workload block in a file we wrote, or None."""
    lines = text.splitlines(True)
    try:
        start = lines.index("workloads:\n") + 1
    except ValueError:
        return None
    blocks: dict[str, str] = {}
    current: list[str] = []
    for line in [*lines[start:], "  \x00end:\n"]:
        if line.startswith("  ") and not line.startswith("   ") and line[2] not in "-#":
            if current:
                parsed = yaml.safe_load("".join(current))
                if not isinstance(parsed, dict) or len(parsed) != 1:
                    return None
                blocks[str(next(iter(parsed)))] = "".join(current)
            current = [line]
        elif current and (line.startswith("   ") or not line.strip()):
            current.append(line)
        else:
            return None
    return blocks if set(blocks) == names else None


def update_baseline(path: Path, workloads: Mapping[str, WorkloadBaseline]) -> Baseline:
    """Writes ``workloads`` into the baseline at ``path``, keeping every other workload
    byte for byte. The old file is validated first and replaced atomically."""
    current = read_baseline(path)
    blocks: dict[str, str] = {}
    if current.workloads:
        text = path.read_text(encoding="utf-8")
        blocks = _existing_blocks(text, set(current.workloads)) or {
            name: render_workload(w) for name, w in current.workloads.items()
        }
    for name, workload in workloads.items():
        blocks[name] = render_workload(workload)
    body = (
        HEADER
        + f"version: {VERSION}\nworkloads:\n"
        + "".join(blocks[name] for name in sorted(blocks))
    )
    atomic_write(path, body)
    merged = dict(current.workloads)
    merged.update(workloads)
    return Baseline(path, merged)


def atomic_write(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see old or new, never half."""
    path = path.resolve()
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BaselineError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BaselineError(f"{path}: cannot write: {exc.strerror or exc}") from exc
