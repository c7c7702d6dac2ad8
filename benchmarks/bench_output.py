"""Peak RSS of allocgate's process runner while a workload prints a lot.

    python benchmarks/bench_output.py [--mb 200] [--mb 1000]

For each size, runs ``run_process`` (the runner builds and workloads go through)
on a shell pipeline printing that many MiB to stdout and as many lines to stderr,
in a fresh Python process, and prints that process's peak RSS (``VmHWM``)
next to a bare Python start-up: the difference is what the output costs. It stays
flat whatever the size, because only a 64 KiB tail of each stream is kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys
from pathlib import Path
from allocgate.process import run_process
mb = int(sys.argv[1])
if mb:
    script = (
        f"head -c {mb * 1048576} /dev/zero | tr '\\\\0' x | fold -w 1023; "
        f"head -c {mb * 1048576} /dev/zero | tr '\\\\0' y | fold -w 1023 >&2"
    )
    done = run_process(["/bin/sh", "-c", script], cwd=Path("."), timeout=600, what="bench")
    assert done.returncode == 0
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
"""


def measure(mb: int) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(mb)], env=env, capture_output=True, text=True, check=True
    )
    return int(proc.stdout.split()[-1]), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, action="append", help="MiB on each stream")
    sizes = parser.parse_args().mb or [200]
    base, _ = measure(0)
    print(f"python + allocgate.process imported: peak RSS {base / 1024:.1f} MiB")
    for mb in sizes:
        peak, seconds = measure(mb)
        print(
            f"{mb} MiB on stdout and on stderr: peak RSS {peak / 1024:.1f} MiB "
            f"(+{(peak - base) / 1024:.1f} MiB), {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
