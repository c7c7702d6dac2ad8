#!/usr/bin/env python3
"""Write a big DHAT profile shaped like a big program: many distinct callsites.

    python benchmarks/make_callsites.py OUT --size-mb 100 [--format dhat-rs|valgrind]
        [--copies N] [--variants 10] [--paths 5] [--seed 1]

`make_profile.py` grows a profile whose callsites share a few thousand user
functions. A big real program is different: thousands of code paths, each with
frames of its own. This generator grows the real `reqctx` sample
(fixtures/samples/<format>/reqctx-base.json, kept byte for byte at the start)
the way such a program looks:

* a *copy* is the whole sample again, as if the program had another service
  module: every frame-table entry is repeated with a new address, and every
  user function moves to a module of its own (``reqctx::split_fields`` becomes
  ``reqctx::svc0042::split_fields``, in ``svc0042.rs``);
* within a copy, each program point comes in ``--variants`` variants whose
  innermost user function (with the frames inlined at its address) is a
  different function (``reqctx::svc0042v3::split_fields``): ~12 distinct
  callsites of the sample become ~12 x variants per copy;
* each variant is reached along ``--paths`` call paths (a dispatcher frame
  ``reqctx::svc0042::dispatch_N`` below ``main``), so a callsite folds several
  program points, as in a real program.

With the defaults, 150 copies make a ~100 MB dhat-rs file with ~285,000 program
points, ~80,000 frames and ~18,000 distinct callsites (the shape of issue 12).
``--size-mb`` adds copies until the file reaches that size; ``--copies`` fixes
their number instead. Numbers are the sample's, each program point scaled by a
seeded factor (so sizes differ and ranks are stable): the same arguments give
the same bytes. Memory stays small: frame-table entries are regenerated, not
kept, and program points are written as they are made.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_profile import LAYOUTS, SAMPLE_DIRS, SAMPLES, Layout, split_frame

SAMPLE_NAME = "reqctx-base.json"
CRATE = "reqctx::"
_PP_RE = re.compile(rb"\{[^{}]*\}")
_NUMBER_RE = re.compile(rb'("(?:tb|tbk|tl|mb|mbk|gb|gbk|eb|ebk|rb|wb)":\s*)(\d+)')
_FS_RE = re.compile(rb'("fs":\s*\[)[^\]]*(\])')
COPY_STRIDE = 0x1000000  # address offset of one copy's code
VARIANT_STRIDE = 0x10000  # and of one variant's leaf functions inside it


def is_user(name: str) -> bool:
    return name.startswith((CRATE, "<" + CRATE))


@dataclass
class Point:
    raw: bytes  # the sample's text of this pp, in its layout
    fs: list[int]
    leaf: int | None  # position in fs of the innermost user frame
    main: int | None  # position in fs of reqctx::main


@dataclass
class Sample:
    raw: bytes
    body_end: int  # offset of pps_close
    ftbl: list[str]
    points: list[Point]
    leaves: list[int]  # frames that are the innermost user frame of some pp


def load_sample(path: Path, layout: Layout) -> Sample:
    raw = path.read_bytes()
    start = raw.index(layout.pps_open) + len(layout.pps_open)
    body_end = raw.rindex(layout.pps_close)
    doc = json.loads(raw)
    ftbl: list[str] = doc["ftbl"]
    frames = [split_frame(s) for s in ftbl]
    raws = _PP_RE.findall(raw, start, body_end)
    if len(raws) != len(doc["pps"]):
        raise SystemExit(f"{path}: could not split the program points")
    points = []
    leaves: set[int] = set()
    for text, pp in zip(raws, doc["pps"]):
        fs: list[int] = pp["fs"]
        names = [frames[i][1] for i in fs]
        leaf = next((j for j, n in enumerate(names) if is_user(n)), None)
        main = next((j for j, n in enumerate(names) if n == CRATE + "main"), None)
        if leaf is not None:
            leaves.add(fs[leaf])
        points.append(Point(text, fs, leaf, main))
    return Sample(
        raw=raw,
        body_end=body_end,
        ftbl=ftbl,
        points=points,
        leaves=sorted(leaves),
    )


class Generator:
    """Frame-table layout of one copy (all indices computable, nothing stored):
    the sample's frames again, then per variant 1..V-1 the sample's leaf
    frames (each at an address of its own), then the dispatchers."""

    def __init__(self, sample: Sample, layout: Layout, variants: int, paths: int) -> None:
        self.s = sample
        self.layout = layout
        self.variants = variants
        self.paths = paths
        self.n0 = len(sample.ftbl)
        self.per_copy = self.n0 + (variants - 1) * len(sample.leaves) + paths
        # Where each leaf frame sits inside one variant's block.
        self.variant_slot = {i: slot for slot, i in enumerate(sample.leaves)}

    # --- frame table -----------------------------------------------------------

    def _text(self, address: int, name: str, loc: str) -> str:
        addr = f"0x{address:X}" if self.layout.hex_upper else f"0x{address:x}"
        return f"{addr}: {name} ({loc})"

    @staticmethod
    def _rename(name: str, module: str) -> str:
        return name.replace(CRATE, f"{CRATE}{module}::")

    @staticmethod
    def _relocate(loc: str, module: str) -> str:
        # Only the program's own file moves; std and libc locations stay.
        if loc.startswith(("reqctx/src/main.rs", "main.rs")):
            return loc.replace("main.rs", f"{module}.rs", 1)
        return loc

    def copy_entries(self, copy: int) -> Iterator[str]:
        module = f"svc{copy:04d}"
        shift = (copy + 1) * COPY_STRIDE
        for text in self.s.ftbl:
            address, name, loc = split_frame(text)
            if address is None:
                yield text  # "[root]"
                continue
            yield self._text(
                address + shift, self._rename(name, module), self._relocate(loc, module)
            )
        for v in range(1, self.variants):
            vmodule = f"{module}v{v}"
            for slot, i in enumerate(self.s.leaves):
                _, name, loc = split_frame(self.s.ftbl[i])
                yield self._text(
                    shift + v * VARIANT_STRIDE + slot * 0x40,
                    self._rename(name, vmodule),
                    self._relocate(loc, module),
                )
        where = f"{module}.rs" if self.layout.hex_upper else f"reqctx/src/{module}.rs"
        column = "" if self.layout.hex_upper else ":9"
        for r in range(self.paths):
            yield self._text(
                shift + 0xF00000 + r * 0x40,
                f"{CRATE}{module}::dispatch_{r}",
                f"{where}:{400 + r}{column}",
            )

    # --- program points ----------------------------------------------------------

    def copy_points(self, copy: int, rng: random.Random) -> Iterator[bytes]:
        base = self.n0 + copy * self.per_copy
        sep = self.layout.fs_sep
        for point in self.s.points:
            if point.leaf is None and point.main is None:
                variants, paths = 1, 1  # every variant would be the same stack
            elif point.leaf is None:
                variants, paths = 1, self.paths
            else:
                variants, paths = self.variants, self.paths
            for v in range(variants):
                fs = [base + i for i in point.fs]
                if v and point.leaf is not None:
                    block = base + self.n0 + (v - 1) * len(self.s.leaves)
                    fs[point.leaf] = block + self.variant_slot[point.fs[point.leaf]]
                for r in range(paths):
                    stack = list(fs)
                    if point.main is not None:
                        dispatch = base + self.per_copy - self.paths + r
                        stack.insert(point.main + 1, dispatch)
                    yield self._point(point.raw, stack, sep, rng.randint(1, 8))

    @staticmethod
    def _point(raw: bytes, stack: list[int], sep: str, factor: int) -> bytes:
        text = _NUMBER_RE.sub(lambda m: m[1] + str(int(m[2]) * factor).encode(), raw)
        fs = sep.join(map(str, stack)).encode()
        return _FS_RE.sub(lambda m: m[1] + fs + m[2], text, count=1)


def write_profile(
    out: BinaryIO,
    fmt: str,
    size_bytes: int,
    copies: int | None,
    variants: int,
    paths: int,
    seed: int,
) -> tuple[int, int, int]:
    """Writes the profile; returns (copies, program points, frame-table entries)."""
    layout = LAYOUTS[fmt]
    sample = load_sample(SAMPLES / SAMPLE_DIRS[fmt] / SAMPLE_NAME, layout)
    gen = Generator(sample, layout, variants, paths)
    rng = random.Random(seed)
    ftbl_text = sample.raw[sample.body_end + len(layout.pps_close) : -len(layout.end)]
    head = sample.raw[: sample.body_end]
    out.write(head)
    written = len(head) + len(layout.pps_close) + len(ftbl_text) + len(layout.end)
    points = len(sample.points)
    made = 0
    while (copies is None and written < size_bytes) or (copies is not None and made < copies):
        chunk = b"".join(layout.pp_sep + pp for pp in gen.copy_points(made, rng))
        out.write(chunk)
        points += chunk.count(b'"fs"')
        written += len(chunk)
        # The copy's frame-table entries are counted now, written at the end.
        written += sum(len(layout.ftbl_sep) + len(json.dumps(e)) for e in gen.copy_entries(made))
        made += 1
    out.write(layout.pps_close)
    out.write(ftbl_text)
    for copy in range(made):
        out.write(
            b"".join(layout.ftbl_sep + json.dumps(e).encode() for e in gen.copy_entries(copy))
        )
    out.write(layout.end)
    return made, points, len(sample.ftbl) + made * gen.per_copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="file to write (overwritten)")
    parser.add_argument("--size-mb", type=float, default=100.0, help="target size (10**6 bytes)")
    parser.add_argument("--copies", type=int, help="copies of the sample (instead of --size-mb)")
    parser.add_argument("--variants", type=int, default=6, help="leaf functions per sample site")
    parser.add_argument("--paths", type=int, default=8, help="call paths per variant")
    parser.add_argument("--format", choices=sorted(LAYOUTS), default="dhat-rs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.variants < 1 or args.paths < 1 or (args.copies is not None and args.copies < 0):
        parser.error("--variants and --paths must be at least 1, --copies at least 0")
    start = time.perf_counter()
    with args.out.open("wb", buffering=1 << 20) as out:
        copies, points, ftbl = write_profile(
            out,
            args.format,
            int(args.size_mb * 1e6),
            args.copies,
            args.variants,
            args.paths,
            args.seed,
        )
    size = args.out.stat().st_size
    print(
        f"{args.out}: {size / 1e6:.1f} MB, {args.format}, {copies} copies, {points} pps "
        f"({size / max(points, 1):.0f} bytes/pp), {ftbl} frame-table entries, "
        f"{time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
