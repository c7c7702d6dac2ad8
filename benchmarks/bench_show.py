#!/usr/bin/env python3
"""Time and peak RSS of `allocgate show` on a big profile, next to a bare orjson.loads.

    python benchmarks/bench_show.py PROFILE [--repeat 3] [--json]

Measures, each in a fresh subprocess and one at a time:

(a) ``python -c "import orjson,sys; orjson.loads(open(sys.argv[1],'rb').read())" PROFILE``
    (the floor: read the file and parse it, nothing else), and
(b) ``allocgate show PROFILE --top 10 --format json`` (the console script next to
    this interpreter or on PATH, else ``python -m allocgate.cli``; ``--module``
    forces the latter).

Wall time is measured around spawn and exit. Peak RSS is the child's
``ru_maxrss`` as returned by ``os.wait4`` for that one child: the same number
``resource.getrusage(RUSAGE_CHILDREN)`` reports in a wrapper that runs only that
child (and what ``/usr/bin/time -v`` prints as "Maximum resident set size"),
without a wrapper process. The runs of (a) and (b) alternate; the medians of
--repeat runs are reported, with time(show)/time(orjson.loads) and peak RSS /
file size. A failing command is reported with its stderr and makes the exit
status 1; the other half is still measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LOADS = "import orjson,sys; orjson.loads(open(sys.argv[1],'rb').read())"
MIB = 1024 * 1024


@dataclass
class Runs:
    """All runs of one command."""

    label: str
    cmd: list[str]
    walls: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # bytes
    error: str | None = None

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def peak_rss(self) -> float:
        return statistics.median(self.rss)


def measure(cmd: list[str]) -> tuple[float, int, int, bytes, bytes]:
    """Runs `cmd` alone; returns (wall seconds, peak RSS bytes, exit code, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        # Linux reports ru_maxrss in KiB.
        return wall, usage.ru_maxrss * 1024, proc.returncode, out.read(), err.read()


def show_command(profile: Path, force_module: bool) -> list[str]:
    args = ["show", str(profile), "--top", "10", "--format", "json"]
    if not force_module:
        beside = Path(sys.executable).with_name("allocgate")
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside), *args]
        found = shutil.which("allocgate")
        if found:
            return [found, *args]
    return [sys.executable, "-m", "allocgate.cli", *args]


def run_all(profile: Path, repeat: int, force_module: bool) -> list[Runs]:
    benches = [
        Runs("orjson.loads", [sys.executable, "-c", LOADS, str(profile)]),
        Runs("allocgate show", show_command(profile, force_module)),
    ]
    for _ in range(repeat):
        for bench in benches:
            if bench.error is not None:
                continue
            wall, rss, code, out, err = measure(bench.cmd)
            if code != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-5:]
                bench.error = f"exit status {code}: " + "\n".join(tail)
                continue
            if bench.label == "allocgate show":
                try:
                    json.loads(out)
                except ValueError:
                    bench.error = "stdout is not JSON: " + out[:200].decode(errors="replace")
                    continue
            bench.walls.append(wall)
            bench.rss.append(rss)
    return benches


def report(profile: Path, benches: list[Runs], repeat: int) -> dict[str, object]:
    size = profile.stat().st_size
    result: dict[str, object] = {"profile": str(profile), "size_bytes": size, "repeat": repeat}
    for bench in benches:
        entry: dict[str, object] = {"cmd": bench.cmd}
        if bench.error is not None:
            entry["error"] = bench.error
        else:
            entry |= {
                "wall_s": round(bench.wall, 3),
                "peak_rss_bytes": int(bench.peak_rss),
                "peak_rss_per_file_byte": round(bench.peak_rss / size, 2),
                "walls_s": [round(w, 3) for w in bench.walls],
                "peak_rss_bytes_all": bench.rss,
            }
        result[bench.label] = entry
    loads, show = benches
    if loads.error is None and show.error is None:
        result["time_show_over_loads"] = round(show.wall / loads.wall, 2)
    return result


def print_text(result: dict[str, object], benches: list[Runs]) -> None:
    size = int(str(result["size_bytes"]))
    print(f"profile: {result['profile']} ({size / 1e6:.1f} MB, median of {result['repeat']})")
    for bench in benches:
        if bench.error is not None:
            error = bench.error.replace("\n", "\n    ")
            print(f"  {bench.label:<15} FAILED: {shlex.join(bench.cmd)}\n    {error}")
            continue
        print(
            f"  {bench.label:<15} {bench.wall:7.2f} s  {bench.peak_rss / MIB:8.1f} MiB peak RSS"
            f"  ({bench.peak_rss / size:.2f} x file size)"
        )
    if "time_show_over_loads" in result:
        print(f"  time(show) / time(orjson.loads) = {result['time_show_over_loads']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profile", type=Path, metavar="PROFILE")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--module", action="store_true", help="run `python -m allocgate.cli` even if installed"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.profile.is_file():
        parser.error(f"{args.profile}: no such file")

    benches = run_all(args.profile, args.repeat, args.module)
    result = report(args.profile, benches, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_text(result, benches)
    return 1 if any(bench.error is not None for bench in benches) else 0


if __name__ == "__main__":
    sys.exit(main())
