"""The report of a run: per-workload results, its verdict, and its versioned JSON form."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from allocgate.baseline_change import WorkloadChange, unexplained
from allocgate.compare import Comparison
from allocgate.envelope import Span, Swing
from allocgate.errors import ReportError

REPORT_VERSION = 1
EXIT_PASS, EXIT_REGRESSED, EXIT_ERROR = 0, 1, 2
_SEVERITY = {"pass": 0, "regressed": 1, "error": 2}


@dataclass(frozen=True)
class WorkloadResult:
    """What happened to one workload: a comparison, or the error that prevented one."""

    name: str
    comparison: Comparison | None = None
    error: str | None = None
    profiles: tuple[str, ...] = ()
    """Raw profile files that were kept (``--keep-profiles``)."""
    runs: int = 1
    """Runs of this check."""
    baseline_runs: int = 1
    """Runs of the bless that recorded the baseline."""
    swings: tuple[Swing, ...] = ()
    """Callsites whose gated metric varied between runs (of the bless or of this
    check), widest swing first, each with the whole range seen."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each step (build, run, analyse)."""
    group: str | None = None
    """For one test of a ``tests:`` workload: that workload's name (``lexer``)."""
    status: str | None = None
    """``new`` (a test not yet blessed) or ``gone`` (a blessed test that no longer
    exists): reported, not gated — unless ``--strict`` made it an error."""
    harness: dict[str, int] = field(default_factory=dict)
    """A test's allocations by the test harness, per metric: in the totals, no callsite."""
    warnings: tuple[str, ...] = ()
    """Things that do not change the verdict but explain it (a toolchain that changed)."""

    @property
    def verdict(self) -> str:
        if self.error is None and self.status is not None:
            return "pass"
        if self.error is not None or self.comparison is None:
            return "error"
        return self.comparison.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "error": self.error,
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "profiles": list(self.profiles),
            "runs": self.runs,
            "baseline_runs": self.baseline_runs,
            "nondeterministic": [
                {"key": w.key, "metric": w.metric, "low": w.span.low, "high": w.span.high}
                for w in self.swings
            ],
            "seconds": self.seconds,
            "group": self.group,
            "status": self.status,
            "harness": self.harness,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorkloadResult:
        comparison = d.get("comparison")
        return cls(
            name=str(d["name"]),
            comparison=Comparison.from_dict(comparison) if comparison else None,
            error=d.get("error"),
            profiles=tuple(d.get("profiles") or ()),
            runs=int(d.get("runs", 1)),
            baseline_runs=int(d.get("baseline_runs", 1)),
            swings=tuple(
                Swing(str(w["key"]), str(w["metric"]), Span(int(w["low"]), int(w["high"])))
                for w in d.get("nondeterministic") or ()
            ),
            seconds=dict(d.get("seconds") or {}),
            group=d.get("group"),
            status=d.get("status"),
            harness={k: int(v) for k, v in (d.get("harness") or {}).items()},
            warnings=tuple(d.get("warnings") or ()),
        )


@dataclass(frozen=True)
class Report:
    results: tuple[WorkloadResult, ...]
    shard: str | None = None
    """``K/N`` when this is one shard's partial report."""
    baseline_changes: tuple[WorkloadChange, ...] = ()
    """How the baseline differs from the base branch's (a pull request's re-baselining)."""
    require_reason: bool = False
    """A baseline change without a recorded reason fails the check."""

    @property
    def unexplained(self) -> tuple[str, ...]:
        """Workloads re-baselined without a reason, when reasons are required."""
        return unexplained(self.baseline_changes) if self.require_reason else ()

    @property
    def verdict(self) -> str:
        worst = max((r.verdict for r in self.results), key=_SEVERITY.__getitem__, default="pass")
        return worst

    @property
    def exit_code(self) -> int:
        code = {"pass": EXIT_PASS, "regressed": EXIT_REGRESSED, "error": EXIT_ERROR}[self.verdict]
        # An unexplained re-baselining fails like a regression: it hides one.
        return max(code, EXIT_REGRESSED) if self.unexplained else code

    @property
    def regressed(self) -> bool:
        return any(r.verdict == "regressed" for r in self.results)

    def to_json(self) -> bytes:
        doc = {
            "allocgate_report": REPORT_VERSION,
            "verdict": self.verdict,
            "shard": self.shard,
            "workloads": [r.to_dict() for r in self.results],
            "baseline_changes": [c.to_dict() for c in self.baseline_changes],
            "require_reason": self.require_reason,
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def read_report(path: Path) -> Report:
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"{path}: cannot read report: {exc.strerror or exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"{path}: not a JSON report ({exc})") from None
    if not isinstance(doc, dict) or "allocgate_report" not in doc:
        raise ReportError(f"{path}: not an allocgate JSON report (no 'allocgate_report' field)")
    if doc["allocgate_report"] != REPORT_VERSION:
        raise ReportError(
            f"{path}: unsupported report version {doc['allocgate_report']!r} "
            f"(expected {REPORT_VERSION})"
        )
    try:
        results = tuple(WorkloadResult.from_dict(w) for w in doc["workloads"])
        changes = tuple(WorkloadChange.from_dict(c) for c in doc.get("baseline_changes") or ())
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{path}: malformed report: {type(exc).__name__}: {exc}") from None
    return Report(
        results,
        shard=doc.get("shard"),
        baseline_changes=changes,
        require_reason=doc.get("require_reason") is True,
    )


def merge_reports(reports: Sequence[Report], sources: Iterable[str] = ()) -> Report:
    """Partial (sharded) reports → one; a workload in two shards is an error."""
    seen: dict[str, str] = {}
    results: list[WorkloadResult] = []
    names = list(sources)
    for i, report in enumerate(reports):
        source = names[i] if i < len(names) else f"report {i + 1}"
        for result in report.results:
            if result.name in seen:
                raise ReportError(
                    f"{source}: workload {result.name!r} is also in {seen[result.name]}"
                )
            seen[result.name] = source
            results.append(result)
    results.sort(key=lambda r: r.name)
    # Every shard compares the whole baseline file: the same changes, once.
    changes = {c.name: c for report in reports for c in report.baseline_changes}
    return Report(
        tuple(results),
        baseline_changes=tuple(changes[n] for n in sorted(changes)),
        require_reason=any(r.require_reason for r in reports),
    )
