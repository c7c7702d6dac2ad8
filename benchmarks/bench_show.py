#!/usr/bin/env python3
"""Time and peak RSS of allocgate on one big profile, side by side with the floor.

    python benchmarks/bench_show.py PROFILE [PROFILE...] [--repeat 3] [--json]

For each PROFILE, measured in fresh processes, one at a time, the commands
alternating so that load on the machine hits them alike:

* the floor: for a DHAT JSON file ``orjson.loads`` of the whole file (read and
  parse, nothing else); for a heaptrack trace ``heaptrack_print TRACE``;
* ``allocgate show PROFILE --top 10 --format json``;
* ``allocgate diff BASELINE PROFILE --format json``: what ``check`` does with a
  profile once the workload has run (fold it, read the baseline, compare);
  BASELINE is made once beforehand by
* ``allocgate bless --profile PROFILE --workload bench --baseline BASELINE``,
  measured too (it writes the baseline).

Printed per command: the median wall time and peak RSS over --repeat runs, the
time as a ratio to the floor's, and the peak RSS as a ratio to the file's size
(DHAT) or to heaptrack_print's (heaptrack). Peak RSS is the child's
``ru_maxrss`` from ``os.wait4``, what ``/usr/bin/time -v`` calls "Maximum
resident set size".

allocgate runs as ``python -m allocgate.cli`` from this checkout, with the
bytecode cache on (in a temporary PYTHONPYCACHEPREFIX, compiled beforehand),
as an installed package runs; PYTHONDONTWRITEBYTECODE in the environment would
otherwise make every run compile the package. Write big profiles outside the
repository; expect ±20-40 % run-to-run variation on a shared 2-vCPU machine.
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

ROOT = Path(__file__).resolve().parents[1]
LOADS = "import orjson,sys; orjson.loads(open(sys.argv[1],'rb').read())"
MIB = 1024 * 1024
HEAPTRACK_MAGIC = (b"\x28\xb5\x2f\xfd", b"\x1f\x8b", b"v ")


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


def child_env(pycache: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(pycache))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(
    cmd: list[str], env: dict[str, str], keep_output: bool = True
) -> tuple[float, int, int, bytes, bytes]:
    """Runs `cmd` alone; returns (wall seconds, peak RSS bytes, exit code, stdout, stderr).

    This process must stay small: Linux starts a child's ru_maxrss at its
    parent's RSS (the memory it was forked from), so a big output read here
    would show up as the next commands' peak. heaptrack_print's output, which
    for a deep trace is hundreds of MB, is thrown away unread."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out if keep_output else subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        output = out.read()
        err.seek(0)
        # Linux reports ru_maxrss in KiB.
        return wall, usage.ru_maxrss * 1024, proc.returncode, output, err.read()[-4000:]


def is_heaptrack(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4).startswith(HEAPTRACK_MAGIC)


def commands(profile: Path, baseline: Path) -> list[Runs]:
    cli = [sys.executable, "-m", "allocgate.cli"]
    if is_heaptrack(profile):
        floor = Runs("heaptrack_print", ["heaptrack_print", str(profile)])
    else:
        floor = Runs("orjson.loads", [sys.executable, "-c", LOADS, str(profile)])
    return [
        floor,
        Runs("allocgate show", [*cli, "show", str(profile), "--top", "10", "--format", "json"]),
        Runs("allocgate diff", [*cli, "diff", str(baseline), str(profile), "--format", "json"]),
        Runs(
            "allocgate bless",
            [
                *cli,
                "bless",
                "--profile",
                str(profile),
                "--workload",
                "bench",
                "--baseline",
                str(baseline),
            ],
        ),
    ]


def run_all(benches: list[Runs], repeat: int, env: dict[str, str]) -> None:
    for _ in range(repeat):
        for bench in benches:
            if bench.error is not None:
                continue
            checked = bench.label in ("allocgate show", "allocgate diff")
            wall, rss, code, out, err = measure(bench.cmd, env, keep_output=checked)
            # diff exits 1 on a regression; against its own baseline it must not.
            if code != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-5:]
                bench.error = f"exit status {code}: " + "\n".join(tail)
                continue
            if checked:
                try:
                    json.loads(out)
                except ValueError:
                    bench.error = "stdout is not JSON: " + out[:200].decode(errors="replace")
                    continue
            bench.walls.append(wall)
            bench.rss.append(rss)


def report(profile: Path, benches: list[Runs], repeat: int) -> dict[str, object]:
    size = profile.stat().st_size
    floor = benches[0]
    result: dict[str, object] = {
        "profile": str(profile),
        "size_bytes": size,
        "repeat": repeat,
        "floor": floor.label,
    }
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
            if floor.error is None and bench is not floor:
                entry["time_over_floor"] = round(bench.wall / floor.wall, 2)
                entry["rss_over_floor"] = round(bench.peak_rss / floor.peak_rss, 2)
        result[bench.label] = entry
    return result


def print_text(result: dict[str, object], benches: list[Runs]) -> None:
    size = int(str(result["size_bytes"]))
    floor = benches[0]
    print(f"profile: {result['profile']} ({size / 1e6:.1f} MB, median of {result['repeat']})")
    for bench in benches:
        if bench.error is not None:
            error = bench.error.replace("\n", "\n    ")
            print(f"  {bench.label:<16} FAILED: {shlex.join(bench.cmd)}\n    {error}")
            continue
        line = (
            f"  {bench.label:<16} {bench.wall:7.2f} s  {bench.peak_rss / MIB:8.1f} MiB"
            f"  ({bench.peak_rss / size:5.2f} x file)"
        )
        if bench is not floor and floor.error is None:
            line += (
                f"  time {bench.wall / floor.wall:5.2f} x {floor.label},"
                f" RSS {bench.peak_rss / floor.peak_rss:5.2f} x"
            )
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profiles", type=Path, nargs="+", metavar="PROFILE")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for profile in args.profiles:
        if not profile.is_file():
            parser.error(f"{profile}: no such file")
    failed = False
    results = []
    with tempfile.TemporaryDirectory(prefix="allocgate-bench-") as tmp:
        env = child_env(Path(tmp) / "pycache")
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(ROOT / "allocgate")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for profile in args.profiles:
            baseline = Path(tmp) / f"{profile.name}.baseline.yml"
            benches = commands(profile, baseline)
            if is_heaptrack(profile) and shutil.which("heaptrack_print") is None:
                benches[0].error = "heaptrack_print is not installed"
            # The baseline diff compares with; bless is measured again below.
            bless = benches[-1]
            _, _, code, _, err = measure(bless.cmd, env, keep_output=False)
            if code != 0:
                bless.error = err.decode(errors="replace").strip()
            run_all(benches, args.repeat, env)
            result = report(profile, benches, args.repeat)
            results.append(result)
            if not args.json:
                print_text(result, benches)
            failed = failed or any(bench.error is not None for bench in benches)
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
