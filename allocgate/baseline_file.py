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
from allocgate.callsites import KEYS, Callsite, HeavyStack, sort_callsites
from allocgate.envelope import Span
from allocgate.errors import BaselineError
from allocgate.filelock import locked, remove_stale_temps
from allocgate.metrics import METRIC_NAMES
from allocgate.schema import MAX_COUNT, show
from allocgate.yaml_doc import parse_yaml

VERSION = 2
"""Version 2 added the noise envelope (``runs``, ``range``, ``totals_range``)."""
READABLE_VERSIONS = (1, 2)
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
    if type(version) is int and version > VERSION:
        raise _fail(
            path,
            "version",
            f"baseline version {show(version)} was written by a newer allocgate (this one "
            f"reads versions {READABLE_VERSIONS[0]}–{VERSION}); upgrade allocgate",
        )
    if version not in READABLE_VERSIONS or type(version) is not int:
        raise _fail(
            path,
            "version",
            f"unsupported baseline version {show(version)} (expected one of "
            f"{', '.join(map(str, READABLE_VERSIONS))})",
        )
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
        if type(value) is not int or not 0 <= value <= MAX_COUNT:
            raise _fail(
                path,
                f"{where}.{metric}",
                f"expected a non-negative integer up to {MAX_COUNT}, got {show(value)}",
            )
        values[metric] = value
    if required and not values:
        raise _fail(path, where, f"expected at least one metric ({', '.join(METRIC_NAMES)})")
    return values


def _validate_workload(path: Path, name: str, entry: Any) -> WorkloadBaseline:
    where = f"workloads.{name}"
    if not isinstance(entry, dict):
        raise _fail(path, where, "expected a mapping")
    allowed = {
        "profiler",
        "keys",
        "depth",
        "runs",
        "mode",
        "units",
        "provenance",
        "totals",
        "totals_range",
        "callsites",
    }
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
    if type(depth) is not int or not 1 <= depth <= 1000:
        raise _fail(path, f"{where}.depth", f"expected a positive integer, got {show(depth)}")
    keys = entry.get("keys", "innermost")
    if keys not in KEYS:
        raise _fail(path, f"{where}.keys", f"expected one of {', '.join(KEYS)}, got {show(keys)}")
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
    runs = entry.get("runs", 1)
    if type(runs) is not int or runs < 1:
        raise _fail(path, f"{where}.runs", f"expected a positive integer, got {runs!r}")
    total_spans = _ranges(path, f"{where}.totals_range", entry.get("totals_range"), total_values)
    spans: dict[str, dict[str, Span]] = {}
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
            if key not in ("key", "at", "outside", "range", "stacks", *METRIC_NAMES):
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
        outside = site.get("outside", False)
        if type(outside) is not bool:
            raise _fail(path, f"{at}.outside", f"expected true or false, got {outside!r}")
        values = _metrics(path, at, site, required=True)
        ranges = _ranges(path, f"{at}.range", site.get("range"), values)
        if ranges:
            spans[key] = ranges
        stacks = _stacks(path, f"{at}.stacks", site.get("stacks"))
        callsites.append(Callsite(key, values, location, outside=outside, stacks=stacks))
    callsites = sort_callsites(callsites, "total_bytes")
    return WorkloadBaseline(
        name=name,
        profiler=profiler,
        totals=total_values,
        callsites=tuple(callsites),
        depth=depth,
        mode=mode,
        units=dict(units),
        runs=runs,
        spans=spans,
        total_spans=total_spans,
        keys=keys,
        provenance=dict(provenance),
    )


def _stacks(path: Path, where: str, doc: Any) -> tuple[HeavyStack, ...]:
    """``{via: value}``: the rank metric of the site's heaviest stacks by caller
    (optional: older baselines have none, and then every stack reads as new)."""
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise _fail(path, where, "expected a mapping of caller to value")
    stacks = []
    for via, value in doc.items():
        if not isinstance(via, str) or type(value) is not int or not 0 <= value <= MAX_COUNT:
            raise _fail(
                path, f"{where}.{show(via)}", f"expected a non-negative integer, got {show(value)}"
            )
        stacks.append(HeavyStack(via, value))
    return tuple(stacks)


def _ranges(path: Path, where: str, doc: Any, values: Mapping[str, int]) -> dict[str, Span]:
    """``{metric: [low, high]}`` around each metric's value; absent is no range (zero width)."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise _fail(path, where, "expected a mapping of metric to [low, high]")
    spans: dict[str, Span] = {}
    for metric, pair in doc.items():
        if metric not in values:
            raise _fail(path, f"{where}.{metric}", "a range for a metric without a value")
        ok = isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)
        if not ok or not 0 <= pair[0] <= values[metric] <= pair[1]:
            raise _fail(
                path,
                f"{where}.{metric}",
                f"expected [low, high] with 0 <= low <= {values[metric]} <= high, got {show(pair)}",
            )
        spans[metric] = Span(pair[0], pair[1])
    return spans


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
                try:
                    parsed = yaml.safe_load("".join(current))
                except yaml.YAMLError:
                    return None
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
    byte for byte except those named in ``remove`` (tests that are gone). The old file is validated first and replaced atomically, all under
    a lock, so concurrent blesses of different workloads all land."""
    with locked(path, BaselineError):
        # Only a killed writer leaves a temporary file while we hold the lock.
        remove_stale_temps(path)
        current = read_baseline(path)
        dropped = set(remove) - set(workloads)
        merged = {n: w for n, w in current.workloads.items() if n not in dropped}
        merged.update(workloads)
        atomic_write(path, _compose(path, current, workloads, dropped))
    return Baseline(path, merged)


def _compose(
    path: Path,
    current: Baseline,
    workloads: Mapping[str, WorkloadBaseline],
    dropped: set[str] | None = None,
) -> str:
    """The new file: kept blocks verbatim (``dropped`` ones left out), new ones
    rendered, checked to read back right."""
    dropped = dropped or set()
    blocks: dict[str, str] = {}
    if current.workloads:
        blocks = _existing_blocks(path.read_text(encoding="utf-8"), set(current.workloads)) or {}
    for name in dropped:
        blocks.pop(name, None)
    for name, workload in current.workloads.items():
        if name in dropped:
            continue
        block = blocks.get(name)
        # A hand-edited last block may lack its newline: it would swallow the next one.
        blocks[name] = block if block and block.endswith("\n") else render_workload(workload)
    for name, workload in workloads.items():
        blocks[name] = render_workload(workload)
    body = _body(blocks)
    kept = {n: w for n, w in current.workloads.items() if n not in dropped}
    expected = {**kept, **workloads}
    if not _reads_back(path, body, expected):
        body = _body({name: render_workload(w) for name, w in expected.items()})
    return body


def _body(blocks: Mapping[str, str]) -> str:
    return (
        HEADER
        + f"version: {VERSION}\nworkloads:\n"
        + "".join(blocks[name] for name in sorted(blocks))
    )


def _reads_back(path: Path, body: str, expected: Mapping[str, WorkloadBaseline]) -> bool:
    try:
        written = _validate(path, parse_yaml(path, body, BaselineError))
    except BaselineError:
        return False
    return sorted(written.workloads) == sorted(expected) and all(
        written.workloads[n].to_dict() == expected[n].to_dict() for n in expected
    )
