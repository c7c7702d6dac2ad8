"""The gate's workflows — check, bless, run — shared by the CLI and the pytest plugin."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from allocgate.baseline import Baseline, WorkloadBaseline, read_baseline, update_baseline
from allocgate.compare import compare
from allocgate.config import Config, WorkloadConfig
from allocgate.errors import AllocgateError, BaselineError, ConfigError
from allocgate.report import Report, WorkloadResult
from allocgate.run import Measurement, Runner


def recorded_count(top: int) -> int:
    """How many callsites a baseline keeps: enough that a site climbing from rank
    N+1 is compared against its old value rather than reported as new."""
    return max(3 * top, top + 10)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1-based) → (K, N)."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard: expected K/N such as 2/3, got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard: expected 1 <= K <= N, got {text!r}")
    return k, n


def shard(workloads: Sequence[WorkloadConfig], k: int, n: int) -> list[WorkloadConfig]:
    """A deterministic 1/N of the workloads: round robin over their sorted names."""
    ordered = sorted(workloads, key=lambda w: w.name)
    return [w for i, w in enumerate(ordered) if i % n == k - 1]


def judge(w: WorkloadConfig, measurement: Measurement, baseline: Baseline) -> WorkloadResult:
    """Compares one measured workload with its baseline entry; errors become results."""
    try:
        entry = baseline.get(w.name)
        if entry.profiler != w.profiler:
            raise BaselineError(
                f"{baseline.path}: {w.name!r} was blessed under {entry.profiler} but is "
                f"configured for {w.profiler}; run `allocgate bless {w.name}`"
            )
        started = time.monotonic()
        comparison = compare(
            w.name, entry.as_profile(str(baseline.path)), measurement.profile, w.gate
        )
        seconds = dict(measurement.seconds)
        seconds["analyse"] = seconds.get("analyse", 0.0) + time.monotonic() - started
    except AllocgateError as exc:
        return WorkloadResult(w.name, error=str(exc), profiles=measurement.kept)
    return WorkloadResult(
        name=w.name,
        comparison=comparison,
        profiles=measurement.kept,
        runs=measurement.runs,
        spread=measurement.spread if measurement.runs > 1 else {},
        nondeterministic=measurement.nondeterministic,
        seconds=seconds,
    )


def check_one(w: WorkloadConfig, runner: Runner, baseline: Baseline) -> WorkloadResult:
    try:
        measurement = runner.measure(w)
    except AllocgateError as exc:
        return WorkloadResult(w.name, error=str(exc))
    return judge(w, measurement, baseline)


def check(
    config: Config, workloads: Sequence[WorkloadConfig], runner: Runner, shard_of: str | None = None
) -> Report:
    """Builds, runs and compares each workload; one failing workload spoils no other."""
    baseline = read_baseline(config.baseline)
    results = tuple(check_one(w, runner, baseline) for w in workloads)
    return Report(results, shard=shard_of)


def baseline_entry(w: WorkloadConfig, measurement: Measurement) -> WorkloadBaseline:
    return WorkloadBaseline.from_profile(w.name, measurement.profile, recorded_count(w.gate.top))


@dataclass(frozen=True)
class BlessOutcome:
    old: dict[str, WorkloadBaseline]
    new: dict[str, WorkloadBaseline]


def bless(config: Config, workloads: Sequence[WorkloadConfig], runner: Runner) -> BlessOutcome:
    """Measures every workload first and writes the baseline once: all or nothing."""
    current = read_baseline(config.baseline)
    entries = {w.name: baseline_entry(w, runner.measure(w)) for w in workloads}
    update_baseline(config.baseline, entries)
    return BlessOutcome(
        old={n: current.workloads[n] for n in entries if n in current.workloads}, new=entries
    )
