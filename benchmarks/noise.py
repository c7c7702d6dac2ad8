"""How much a workload's callsites swing between runs, and what that does to the gate.

Runs a built binary N times under a profiler, folds every run as allocgate does, and
prints per callsite the range of the gated metric over the runs (largest swing
first), then replays the gate: a bless from the first B runs and a check of each
other run (``runs: 1``), counting false alarms of the old rule (the median of the
bless runs, no range) and of the envelope (the bless runs' range).

    python benchmarks/noise.py --profiler valgrind-dhat --runs 12 -- path/to/binary ARGS…
    python benchmarks/noise.py --profiles 'dir/*.json'      # profiles kept from earlier runs
"""

from __future__ import annotations

import argparse
import glob
import itertools
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from allocgate.envelope import Span, collect, grew, spans_of, swings
from allocgate.load import load_profile
from allocgate.metrics import METRICS, format_value
from allocgate.profile import Profile


def run_once(profiler: str, argv: Sequence[str], out: Path) -> Path:
    if profiler == "valgrind-dhat":
        cmd = ["valgrind", "--tool=dhat", f"--dhat-out-file={out}", "--num-callers=64", *argv]
        subprocess.run(cmd, check=True, capture_output=True)
        return out
    base = out.with_suffix("")
    subprocess.run(["heaptrack", "-o", str(base), *argv], check=True, capture_output=True)
    return next(base.parent.glob(base.name + ".*zst"))


def replay(
    profiles: Sequence[Profile], metric: str, top: int, bless_runs: int, limit: int = 300
) -> tuple[int, int, int]:
    """Checks judged and false alarms after every bless of ``bless_runs`` of the runs
    (up to ``limit`` of them), each other run checked alone: (checks, median rule, envelope)."""
    tol = METRICS[metric].default_tolerance
    values = [_values(p) for p in profiles]
    checks = old = envelope = 0
    for chosen in itertools.islice(itertools.combinations(range(len(values)), bless_runs), limit):
        blessed = collect([values[i] for i in chosen], (metric,))
        ranked = sorted(blessed, key=lambda k: (-blessed[k].median(metric), k))[: 3 * top]
        for j, current in enumerate(values):
            if j in chosen:
                continue
            checks += 1
            shown = sorted(current, key=lambda k: (-current[k].get(metric, 0), k))[:top]
            alarm_old = alarm_env = False
            for key in set(ranked[:top]) | set(shown):
                value = current.get(key, {}).get(metric, 0)
                if key not in ranked:  # a new site above the absolute tolerance
                    alarm_old |= value > tol.absolute
                    alarm_env |= value > tol.absolute
                    continue
                site = blessed[key]
                alarm_old |= tol.exceeded_by(site.median(metric), value)
                alarm_env |= grew(tol, site.span(metric), Span.point(value))
            old += alarm_old
            envelope += alarm_env
    return checks, old, envelope


def _values(profile: Profile) -> dict[str, dict[str, int]]:
    return {s.key: dict(s.metrics) for s in profile.callsites}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profiler", choices=("valgrind-dhat", "heaptrack"), default="valgrind-dhat"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profiles", help="a glob of profiles to read instead of running")
    parser.add_argument("--metric", default="total_bytes")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--bless-runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="a directory to keep the raw profiles in")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="allocgate-noise-") as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        if args.profiles:
            paths = [Path(p) for p in sorted(glob.glob(args.profiles))]
        else:
            paths = [
                run_once(args.profiler, args.command, directory / f"run{i}.json")
                for i in range(args.runs)
            ]
        profiles = [load_profile(p) for p in paths]
    metric = args.metric
    sites = collect([_values(p) for p in profiles], (metric,))
    totals = Span.of(p.totals.get(metric, 0) for p in profiles)
    print(f"{len(profiles)} runs of {profiles[0].profiler}; {metric} total {_span(metric, totals)}")
    ranked = sorted(sites.values(), key=lambda s: -s.median(metric))[: 3 * args.top]
    swung = swings(spans_of(ranked, (metric,)), (metric,))
    print(f"{len(swung)} of the top {len(ranked)} callsites swung:")
    for s in swung:
        mid = sites[s.key].median(metric)
        print(
            f"  {s.span.relative_width() * 100:5.1f}%  {_span(metric, s.span)} "
            f"(median {format_value(metric, mid)})  {s.key}"
        )
    for bless_runs in sorted({1, args.bless_runs}):
        if len(profiles) <= bless_runs:
            continue
        checks, old, env = replay(profiles, metric, args.top, bless_runs)
        print(
            f"bless of {bless_runs} run(s), {checks} single-run checks replayed: false alarms "
            f"{old / checks:.1%} per check with the median rule, {env / checks:.1%} with the "
            f"envelope (in 20 checks: {20 * old / checks:.1f} vs {20 * env / checks:.1f})"
        )
    return 0


def _span(metric: str, span: Span) -> str:
    return f"{format_value(metric, span.low)}–{format_value(metric, span.high)}"


if __name__ == "__main__":
    sys.exit(main())
