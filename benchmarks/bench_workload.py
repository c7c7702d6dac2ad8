"""Overhead of profiling the demo workload, and allocgate's own share of a check.

Prints wall time and peak RSS of the demo binary run plain, under Valgrind DHAT
and under heaptrack (dhat-rs cannot be built offline; see the samples' figures),
then the time split of `allocgate check` on the demo: build, run, analysis.

    python benchmarks/bench_workload.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"


def measure(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child, via wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed with status {status}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(DEMO, work / "demo", ignore=shutil.ignore_patterns("target"))
        env = dict(os.environ, CARGO_TARGET_DIR=str(work / "target"))
        subprocess.run(
            [
                "cargo",
                "build",
                "--quiet",
                "--profile",
                "profiling",
                "--manifest-path",
                str(work / "demo/reqctx/Cargo.toml"),
            ],
            check=True,
            env=env,
        )
        exe = work / "target/profiling/reqctx"
        runs = {
            "plain": [str(exe), "20000"],
            "valgrind-dhat": [
                "valgrind",
                "--tool=dhat",
                f"--dhat-out-file={work}/d.json",
                "--num-callers=64",
                str(exe),
                "20000",
            ],
            "heaptrack": ["heaptrack", "-o", str(work / "h"), str(exe), "20000"],
        }
        print(f"demo workload: reqctx 20000 (median of {args.repeat})")
        plain = None
        for name, argv in runs.items():
            results = [measure(argv, work, env) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in results)
            rss = max(r[1] for r in results)
            plain = plain or wall
            print(f"  {name:14} {wall:6.2f} s  {rss:7.1f} MiB peak RSS  (x{wall / plain:.0f} wall)")
        print(
            "  dhat-rs        not buildable offline; samples/README.md: reqctx-base at N=100000"
            " 3.31 s / 13.8 MiB vs plain 0.05 s / 3.1 MiB"
        )
        walls, shares = [], []
        for _ in range(args.repeat):
            report = work / "r.json"
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "allocgate.cli",
                    "check",
                    "-q",
                    "--config",
                    str(work / "demo/allocgate.yml"),
                    "--report-json",
                    str(report),
                ],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - started
            seconds = json.loads(report.read_text())["workloads"][0]["seconds"]
            walls.append(wall)
            shares.append(seconds)
        wall = statistics.median(walls)
        build = statistics.median(s["build"] for s in shares)
        run = statistics.median(s["run"] for s in shares)
        analyse = statistics.median(s["analyse"] for s in shares)
        own = wall - build - run
        print(
            f"allocgate check (warm build): {wall:.2f} s = cargo {build:.2f} s + workload under"
            f" valgrind {run:.2f} s + allocgate {own:.2f} s ({own / wall:.0%}; profile"
            f" analysis {analyse * 1000:.0f} ms, the rest interpreter start-up and imports)"
        )


if __name__ == "__main__":
    main()
