#!/usr/bin/env python3
"""Overhead of profiling a workload, and allocgate's own share of a `check`.

    python benchmarks/bench_workload.py [--fixture demo|logscan] [--repeat 3]

`demo` is fixtures/demo (reqctx, single-threaded, Valgrind DHAT); `logscan` is
the threaded workspace fixtures/crates/logscan (four workers, regex,
serde_json, crossbeam-channel from Debian's crate sources), checked under
Valgrind DHAT and under heaptrack. The fixture is copied to a scratch
directory (with a `.cargo/config.toml` pointing at /usr/share/cargo/registry,
so it builds offline) and built once. Printed:

* the workload binary run plain, under Valgrind DHAT and under heaptrack:
  median wall time and peak RSS (dhat-rs cannot be built offline);
* `allocgate check` on the scratch config (blessed first, so it compares):
  the median wall time split into cargo (a no-op build by then), the
  workload under its profiler, and allocgate itself: interpreter start-up,
  imports, reading and folding the profile, comparing and writing reports.

allocgate runs as `python -m allocgate.cli` from this checkout with its
bytecode cached (a temporary PYTHONPYCACHEPREFIX, compiled beforehand), as an
installed package runs.
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
CARGO_CONFIG = """\
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "/usr/share/cargo/registry"
[net]
offline = true
"""
LOGSCAN_CONFIG = """\
baseline: allocgate-baseline.yml
defaults:
  cargo_profile: profiling
  top: 5
  metrics: [total_bytes]
  threshold: {relative: 50%, absolute: 1 MiB}
workloads:
  logscan-valgrind:
    profiler: valgrind-dhat
    manifest: Cargo.toml
    bin: logscan
  logscan-heaptrack:
    profiler: heaptrack
    manifest: Cargo.toml
    bin: logscan
"""


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
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


def prepare(fixture: str, work: Path) -> tuple[Path, Path, list[str]]:
    """The scratch config, the workload's manifest and the binary's arguments."""
    if fixture == "demo":
        shutil.copytree(ROOT / "fixtures" / "demo", work / "ws", ignore=_no_target)
        return work / "ws" / "allocgate.yml", work / "ws" / "reqctx" / "Cargo.toml", ["20000"]
    shutil.copytree(ROOT / "fixtures" / "crates" / "logscan", work / "ws", ignore=_no_target)
    (work / "ws" / "allocgate.yml").write_text(LOGSCAN_CONFIG)
    return work / "ws" / "allocgate.yml", work / "ws" / "Cargo.toml", []


def _no_target(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "target"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fixture", choices=("demo", "logscan"), default="demo")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="allocgate-bench-") as tmp:
        work = Path(tmp)
        config, manifest, exe_args = prepare(args.fixture, work)
        (config.parent / ".cargo").mkdir(exist_ok=True)
        (config.parent / ".cargo" / "config.toml").write_text(CARGO_CONFIG)
        env = dict(
            os.environ,
            CARGO_TARGET_DIR=str(work / "target"),
            PYTHONPATH=str(ROOT),
            PYTHONPYCACHEPREFIX=str(work / "pycache"),
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(ROOT / "allocgate")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                "cargo",
                "build",
                "--quiet",
                "--profile",
                "profiling",
                "--manifest-path",
                str(manifest),
            ],
            check=True,
            env=env,
            cwd=config.parent,
        )
        exe = work / "target" / "profiling" / ("reqctx" if args.fixture == "demo" else "logscan")
        runs = {
            "plain": [str(exe), *exe_args],
            "valgrind-dhat": [
                "valgrind",
                "--tool=dhat",
                f"--dhat-out-file={work}/d.json",
                "--num-callers=64",
                str(exe),
                *exe_args,
            ],
            "heaptrack": ["heaptrack", "-o", str(work / "h"), str(exe), *exe_args],
        }
        print(f"{args.fixture}: {exe.name} {' '.join(exe_args)} (median of {args.repeat})")
        plain = None
        for name, argv in runs.items():
            results = [measure(argv, config.parent, env) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in results)
            rss = max(r[1] for r in results)
            plain = plain or wall
            print(f"  {name:14} {wall:6.2f} s  {rss:7.1f} MiB peak RSS  (x{wall / plain:.0f} wall)")
        cli = [sys.executable, "-m", "allocgate.cli"]
        if args.fixture == "logscan":
            subprocess.run(
                [*cli, "bless", "-q", "--config", str(config)],
                check=True,
                env=env,
                cwd=config.parent,
                stdout=subprocess.DEVNULL,
            )
        walls, steps = [], []
        report = work / "r.json"
        for _ in range(args.repeat):
            started = time.perf_counter()
            done = subprocess.run(
                [*cli, "check", "-q", "--config", str(config), "--report-json", str(report)],
                env=env,
                cwd=config.parent,
                stdout=subprocess.DEVNULL,
                check=False,
            )
            walls.append(time.perf_counter() - started)
            if done.returncode not in (0, 1):
                raise SystemExit(f"allocgate check failed with status {done.returncode}")
            results = json.loads(report.read_text())["workloads"]
            steps.append(
                {
                    k: sum(r["seconds"].get(k, 0.0) for r in results)
                    for k in ("build", "run", "analyse")
                }
            )
        wall = statistics.median(walls)
        build = statistics.median(s["build"] for s in steps)
        run = statistics.median(s["run"] for s in steps)
        analyse = statistics.median(s["analyse"] for s in steps)
        own = wall - build - run
        print(
            f"allocgate check (warm build, {len(results)} workload(s)): {wall:.2f} s ="
            f" cargo {build:.2f} s + workloads under their profilers {run:.2f} s"
            f" + allocgate {own:.2f} s ({own / wall:.1%}; reading, folding and comparing"
            f" {analyse * 1000:.0f} ms, the rest start-up, imports and reports)"
        )


if __name__ == "__main__":
    main()
