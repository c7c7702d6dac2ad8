#!/usr/bin/env python3
"""Write a small heaptrack trace whose stacks are long and shared: the worst case
for a reader that spells out every allocation site's stack.

    python benchmarks/make_deep_trace.py OUT [--inlined 2000] [--depth 400]

One instruction pointer carries --inlined inlined frames (a deeply inlined std
function). Two chains of --depth backtrace nodes repeat it, each node the
parent of the next, like deep recursion: one chain is rooted in a user
function (``deep::leaf``), the other in std only. Every node is an allocation
site with one 8-byte allocation, freed at once, so all sites tie on size. The
file is ~34 KB, yet its sites' stacks hold depth**2 * inlined frames between
them (320 million with the defaults): a reader must keep the trace as the tree
it is, and the fold must find each site's key, representative stack and
tie-break node by node instead of walking every stack.
`fixtures/heaptrack/deep-chain.trace` is this script's output with the
defaults; heaptrack_print reads it in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def trace_text(inlined: int, depth: int) -> str:
    strings = ["./deep", "std::sys::backtrace::deep", "library/std/src/lib.rs"]
    strings += ["deep::leaf", "src/a.rs", "std::rt::lang_start"]
    lines = ["v 10400 3", "X ./deep", "I 1000 100"]
    lines += [f"s {len(text):x} {text}" for text in strings]
    frames = " ".join(["2 3 1"] * inlined)
    lines.append(f"i 1000 1 2 3 1 {frames}")  # ip 1: 1 + `inlined` std frames
    lines.append("i 2000 1 4 5 a")  # ip 2: the user function at the root of chain 1
    lines.append("i 3000 1 6 3 9")  # ip 3: std's root of chain 2
    traces = 0
    for root in (2, 3):
        lines.append(f"t {root:x} 0")
        traces += 1
        for _ in range(depth - 1):
            lines.append(f"t 1 {traces:x}")
            traces += 1
    lines += [f"a 8 {trace:x}" for trace in range(1, traces + 1)]
    lines.append("c 1")
    for kind in range(traces):
        lines += [f"+ {kind:x}", f"- {kind:x}"]
    lines += ["c 2", "", f"# strings: {len(strings)}", "# ips: 3", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path)
    parser.add_argument("--inlined", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=400)
    args = parser.parse_args(argv)
    args.out.write_text(trace_text(args.inlined, args.depth))
    print(f"{args.out}: {args.out.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
