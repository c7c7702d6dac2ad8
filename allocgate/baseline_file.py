"""The baseline file (``allocgate-baseline.yml``): read and validated, written
deterministically (sorted, one block per workload) and atomically."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from allocgate import profilers
from allocgate.atomic import atomic_write
from allocgate.baseline import Baseline, WorkloadBaseline
from allocgate.callsites import Callsite, sort_callsites
from allocgate.errors import BaselineError
from allocgate.metrics import METRIC_NAMES
from allocgate.yaml_doc import parse_yaml

VERSION = 1
HEADER = """\
# allocgate baseline: the heap allocations each workload is allowed.
# Written by `allocgate bless`; do not edit by hand. After an intended change,
# regenerate it with `allocgate bless [WORKLOAD...]` and commit the result.
"""


def workload_from_dict(name: str, entry: Mapping[str, Any], source: Path) -> WorkloadBaseline:
    """An entry in the shape of the YAML file (as xdist workers send it), validated."""
    return _validate_workload(source, name, entry)


def read_baseline(path: Path) -> Baseline:
    """Reads and validates a baseline file. A missing file is an empty baseline."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline(path, {})
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read baseline: {exc}") from exc
    return parse_baseline(text, path)


def parse_baseline(text: str, source: Path) -> Baseline:
    """A baseline from its text (e.g. `git show REV:PATH`); `source` names it in errors."""
    return _validate(source, parse_yaml(source, text, BaselineError))


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
    allowed = {"profiler", "depth", "mode", "units", "provenance", "totals", "callsites"}
    for key in entry:
        if key not in allowed:
            raise _fail(path, f"{where}.{key}", "unknown key")
    profiler = entry.get("profiler")
    if profiler not in profilers.NAMES:
        raise _fail(
            path,
            f"{where}.profiler",
            f"expected one of {', '.join(profilers.NAMES)}, got {profiler!r}",
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
    provenance = entry.get("provenance") or {}
    if not isinstance(provenance, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in provenance.items()
    ):
        raise _fail(path, f"{where}.provenance", "expected a mapping of names to strings")
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
    callsites = sort_callsites(callsites, "total_bytes")
    return WorkloadBaseline(
        name=name,
        profiler=profiler,
        totals=total_values,
        callsites=tuple(callsites),
        depth=depth,
        mode=mode,
        units=dict(units),
        provenance=dict(provenance),
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


def update_baseline(
    path: Path, workloads: Mapping[str, WorkloadBaseline], remove: Iterable[str] = ()
) -> Baseline:
    """Writes ``workloads`` into the baseline at ``path``, keeping every other workload
    byte for byte except those named in ``remove`` (tests that are gone). The old file
    is validated first and replaced atomically."""
    current = read_baseline(path)
    blocks: dict[str, str] = {}
    if current.workloads:
        text = path.read_text(encoding="utf-8")
        blocks = _existing_blocks(text, set(current.workloads)) or {
            name: render_workload(w) for name, w in current.workloads.items()
        }
    dropped = set(remove) - set(workloads)
    for name in dropped:
        blocks.pop(name, None)
    for name, workload in workloads.items():
        blocks[name] = render_workload(workload)
    body = (
        HEADER
        + f"version: {VERSION}\nworkloads:\n"
        + "".join(blocks[name] for name in sorted(blocks))
    )
    atomic_write(path, body)
    merged = {n: w for n, w in current.workloads.items() if n not in dropped}
    merged.update(workloads)
    return Baseline(path, merged)
