#!/usr/bin/env python3
"""Write a big, realistic DHAT profile by growing the real `manysites` sample.

    python benchmarks/make_profile.py OUT --size-mb 100 [--format dhat-rs|valgrind]

The output starts with the sample (fixtures/samples/<format>/manysites.json)
exactly as recorded: its header, its pps and its frame table, byte for byte.
Then come generated pps, one per distinct stack, until the file reaches
--size-mb megabytes (10**6 bytes; the result overshoots by less than one pp
and a few frame-table entries), and the frame table gets the entries the new
stacks need. The layout is the sample's own: dhat-rs (serde_json) puts every
token on its own line with no indentation and no trailing newline; Valgrind
writes a compact layout with leading commas and a trailing newline. Key order
is the sample's too.

Each generated stack looks like one `manysites` would record if it had a few
thousand more functions:

    allocator frame                   (the sample's `<dhat::Alloc ...>::alloc` / `malloc`)
    Vec allocation internals          (inlined, copied from the sample, new address)
    manysites::<module>::<leaf>       (one of --functions generated leaf functions)
    manysites::<module>::dispatch     (one per module, calls its leaves)
    manysites::stage_NN  x DEPTH      (chain chosen by the base-32 digits of the pp
                                       number, as in manysites itself)
    manysites::run_round, manysites::main, ...  (the sample's frames)

so there are thousands of distinct innermost user functions (depth-1
callsites), as many depth-2 ones and far more at depth 3. Call sites the
sample already has (a stage calling another, run_round calling a stage) keep
the sample's frame-table entry; new ones get a new entry with an address of
their own. Frames are text-distinct after their addresses are stripped.
Numbers (tb, tbk, ...) come from a seeded PRNG: the same arguments always give
the same bytes. Nothing but the frame table (a few MB) is held in memory.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "fixtures" / "samples"
SAMPLE_NAME = "manysites.json"

BASE = 32  # manysites' stage functions, one base-32 digit per chain level
MODULES = (
    "orders",
    "billing",
    "inventory",
    "catalog",
    "pricing",
    "shipping",
    "payments",
    "accounts",
    "auth",
    "session",
    "search",
    "ranking",
    "cache",
    "storage",
    "index",
    "query",
    "parser",
    "lexer",
    "render",
    "template",
    "report",
    "export",
    "import",
    "ingest",
    "metrics",
    "logging",
    "config",
    "scheduler",
    "queue",
    "worker",
    "http",
    "grpc",
    "codec",
    "compress",
    "crypto",
    "image",
    "text",
    "geo",
    "audit",
    "notify",
)
VERBS = (
    "build",
    "parse",
    "render",
    "load",
    "merge",
    "index",
    "encode",
    "decode",
    "collect",
    "clone",
    "format",
    "split",
    "expand",
    "resolve",
    "normalize",
    "serialize",
)
NOUNS = (
    "invoice",
    "line",
    "order",
    "record",
    "batch",
    "entry",
    "token",
    "header",
    "payload",
    "row",
    "item",
    "event",
    "key",
    "path",
    "label",
    "chunk",
)


@dataclass(frozen=True)
class Layout:
    """How one tool writes the document around the pps and the frame table."""

    pps_open: bytes  # ends the header, opens the pps array
    pps_close: bytes  # closes the pps array, opens the frame table
    end: bytes  # closes the frame table and the document
    pp_sep: bytes  # between two pps
    ftbl_sep: bytes  # between two frame-table strings
    fs_sep: str  # between two frame indices in "fs"
    hex_upper: bool  # address style
    full_paths: bool  # "manysites/src/x.rs:L:C" (dhat-rs) or "x.rs:L" (Valgrind)


LAYOUTS = {
    "dhat-rs": Layout(
        pps_open=b'"pps": [\n',
        pps_close=b'\n],\n"ftbl": [\n',
        end=b"\n]\n}",
        pp_sep=b",\n",
        ftbl_sep=b",\n",
        fs_sep=",\n",
        hex_upper=False,
        full_paths=True,
    ),
    "valgrind": Layout(
        pps_open=b',"pps":\n [',
        pps_close=b'\n ]\n,"ftbl":\n [',
        end=b"\n ]\n}\n",
        pp_sep=b"\n ,",
        ftbl_sep=b"\n ,",
        fs_sep=",",
        hex_upper=True,
        full_paths=False,
    ),
}
SAMPLE_DIRS = {"dhat-rs": "dhat-rs", "valgrind": "valgrind-dhat"}

FRAME_RE = re.compile(r"^0x([0-9a-fA-F]+): (.*) \((.*)\)$")


def split_frame(text: str) -> tuple[int | None, str, str]:
    """``"0xADDR: name (loc)"`` -> (address, name, loc); [root] and odd ones -> (None, text, "")."""
    m = FRAME_RE.match(text)
    if m is None:
        return None, text, ""
    return int(m.group(1), 16), m.group(2), m.group(3)


@dataclass
class Sample:
    """The parts of the sample the generator reuses."""

    raw: bytes
    header_end: int  # offset just past pps_open
    body_end: int  # offset of pps_close
    ftbl: list[str]
    alloc_templates: list[tuple[int, list[tuple[str, str]]]]  # (first frame, inlined internals)
    call_sites: dict[tuple[str, str], int]  # (caller, callee) -> ftbl index
    tail: list[int]  # manysites::main and everything below it
    addresses: set[int]
    address_max: int


def load_sample(path: Path, layout: Layout) -> Sample:
    raw = path.read_bytes()
    header_end = raw.index(layout.pps_open) + len(layout.pps_open)
    body_end = raw.rindex(layout.pps_close)
    if not raw.endswith(layout.end):
        raise SystemExit(f"{path}: does not end as expected for its format")
    doc = json.loads(raw)
    ftbl: list[str] = doc["ftbl"]
    frames = [split_frame(s) for s in ftbl]
    addresses = {a for a, _, _ in frames if a is not None}

    templates: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}
    call_sites: dict[tuple[str, str], int] = {}
    tails: dict[tuple[int, ...], int] = {}
    for pp in doc["pps"]:
        fs: list[int] = pp["fs"]
        names = [frames[i][1] for i in fs]
        leaf = next((j for j, n in enumerate(names) if n.startswith("manysites::stage_")), None)
        if leaf is None or "manysites::main" not in names:
            continue
        main = names.index("manysites::main")
        if not frames[fs[leaf]][2].startswith(("main.rs:67", "manysites/src/main.rs:67")):
            continue  # the one push() site; not an allocation template we want
        leaf_addr = frames[fs[leaf]][0]
        internals = tuple(
            (frames[fs[j]][1], frames[fs[j]][2])
            for j in range(1, leaf)
            if frames[fs[j]][0] == leaf_addr
        )
        key = (fs[0], internals)
        templates[key] = templates.get(key, 0) + 1
        for j in range(leaf, main):
            call_sites.setdefault((names[j + 1], names[j]), fs[j + 1])
        t = tuple(fs[main:])
        tails[t] = tails.get(t, 0) + 1
    ranked = sorted(templates.items(), key=lambda kv: -kv[1])
    return Sample(
        raw=raw,
        header_end=header_end,
        body_end=body_end,
        ftbl=ftbl,
        alloc_templates=[(first, list(internals)) for (first, internals), _ in ranked],
        call_sites=call_sites,
        tail=list(max(tails.items(), key=lambda kv: kv[1])[0]),
        addresses=addresses,
        # The program's own code (not libc's or Valgrind's preload objects).
        address_max=max(
            a for a, name, _ in frames if a is not None and name.startswith("manysites::")
        ),
    )


@dataclass
class Leaf:
    name: str
    module: int
    line: int  # of the allocation in <module>.rs
    call_line: int  # of the call in <module>.rs's dispatch
    size: int  # typical block size
    zeroed: bool  # calloc-style allocation (Valgrind: no writes)
    prefix: str = ""  # "fs" text of allocator frame, internals, leaf, dispatch (made on first use)


@dataclass
class Generator:
    sample: Sample
    layout: Layout
    rng: random.Random
    functions: int
    new_ftbl: list[str] = field(default_factory=list)
    new_ftbl_bytes: int = 0
    next_address: int = 0
    leaves: list[Leaf] = field(default_factory=list)
    chain_cache: dict[tuple[int, int], str] = field(default_factory=dict)
    depth: int = 2

    def __post_init__(self) -> None:
        # New code goes above everything the sample's binary had.
        self.next_address = (self.sample.address_max | 0xFFFF) + 1
        self._call_sites: dict[tuple[str, str], int] = dict(self.sample.call_sites)
        self._make_leaves()

    # --- frame table -------------------------------------------------------------------

    def _address(self, gap: int) -> int:
        addr = self.next_address
        self.next_address += gap
        while addr in self.sample.addresses:
            addr += 1
        return addr

    def _entry(self, address: int, name: str, loc: str) -> int:
        text = f"0x{address:X}" if self.layout.hex_upper else f"0x{address:x}"
        entry = f"{text}: {name} ({loc})"
        self.new_ftbl.append(entry)
        self.new_ftbl_bytes += len(self.layout.ftbl_sep) + len(json.dumps(entry))
        return len(self.sample.ftbl) + len(self.new_ftbl) - 1

    def _loc(self, file: str, line: int, col: int) -> str:
        if self.layout.full_paths:
            return f"manysites/src/{file}:{line}:{col}"
        return f"{file}:{line}"

    def _call_site(self, caller: str, callee: str, file: str, line: int, col: int) -> int:
        """The frame of `caller` at its call of `callee` (the sample's entry if it has one)."""
        key = (caller, callee)
        if key not in self._call_sites:
            loc = self._loc(file, line, col)
            self._call_sites[key] = self._entry(self._address(0x40), caller, loc)
        return self._call_sites[key]

    # --- stacks ------------------------------------------------------------------------

    def _make_leaves(self) -> None:
        rng = self.rng
        per_module = -(-self.functions // len(MODULES))
        combos = [f"{v}_{n}" for v in VERBS for n in NOUNS]
        for m, module in enumerate(MODULES):
            names = rng.sample(combos, min(per_module, len(combos)))
            while len(names) < per_module:  # only when --functions is very large
                names.append(f"{rng.choice(combos)}_{len(names)}")
            for fn in names:
                if len(self.leaves) == self.functions:
                    return
                self.leaves.append(
                    Leaf(
                        name=f"manysites::{module}::{fn}",
                        module=m,
                        line=rng.randint(20, 900),
                        call_line=rng.randint(905, 990),
                        size=self._block_size(),
                        zeroed=rng.random() < 0.17,
                    )
                )

    def _block_size(self) -> int:
        """Mostly manysites' own sizes (8-136 bytes); one in ten up to 4 KiB."""
        rng = self.rng
        if rng.random() < 0.9:
            return 8 + 8 * rng.randint(0, 12) + rng.randint(0, 31)
        return int(2 ** rng.uniform(7, 12)) // 8 * 8

    def _prefix(self, leaf: Leaf) -> str:
        """Frame-table entries of a leaf are made when a pp first uses it."""
        if not leaf.prefix:
            templates = self.sample.alloc_templates
            first, internals = templates[1 if leaf.zeroed and len(templates) > 1 else 0]
            module = MODULES[leaf.module]
            addr = self._address(0x180)
            fs = [first]
            fs += [self._entry(addr, name, loc) for name, loc in internals]
            fs.append(self._entry(addr, leaf.name, self._loc(f"{module}.rs", leaf.line, 25)))
            dispatch = f"manysites::{module}::dispatch"
            fs.append(self._call_site(dispatch, leaf.name, f"{module}.rs", leaf.call_line, 9))
            leaf.prefix = self.layout.fs_sep.join(map(str, fs))
        return leaf.prefix

    def set_depth_for(self, pps: int) -> None:
        """Enough base-32 digits that `pps` stacks are distinct (at least 2, as in manysites)."""
        depth = 2
        while len(self.leaves) * BASE**depth < pps:
            depth += 1
        self.depth = depth
        self.chain_cache.clear()

    def _chain(self, module: int, rest: int) -> str:
        """fs text from the stage that calls `dispatch` down to the bottom of the stack."""
        key = (module, rest)
        cached = self.chain_cache.get(key)
        if cached is not None:
            return cached
        callee = f"manysites::{MODULES[module]}::dispatch"
        fs = []
        for _ in range(self.depth):
            caller = f"manysites::stage_{rest % BASE:02d}"
            rest //= BASE
            fs.append(self._call_site(caller, callee, "main.rs", 40, 23))
            callee = caller
        fs.append(self._call_site("manysites::run_round", callee, "main.rs", 40, 23))
        fs += self.sample.tail
        text = self.layout.fs_sep.join(map(str, fs))
        if len(self.chain_cache) < 200_000:
            self.chain_cache[key] = text
        return text

    def pp(self, k: int) -> bytes:
        """The k-th generated pp (without separator)."""
        leaf = self.leaves[k % len(self.leaves)]
        rest = k // len(self.leaves)
        if rest >= BASE**self.depth:
            raise ValueError("more pps than distinct stacks at this depth")
        fs = self._prefix(leaf) + self.layout.fs_sep + self._chain(leaf.module, rest)
        return self._numbers(leaf, fs).encode()

    def _numbers(self, leaf: Leaf, fs: str) -> str:
        rng = self.rng
        r = rng.random()
        tbk = 1 if r < 0.4 else 2 if r < 0.8 else rng.randint(3, 40)
        size = leaf.size
        same_size = rng.random() < 0.85
        tb = size * tbk if same_size else size * tbk + rng.randint(1, size) * (tbk - 1)
        live = 1 if tbk < 4 or rng.random() < 0.7 else rng.randint(1, tbk)
        mb, mbk = min(tb, size * live), live
        gb, gbk = (mb, mbk) if rng.random() < 0.05 else (0, 0)
        eb, ebk = (size, 1) if rng.random() < 0.01 else (0, 0)
        if self.layout.full_paths:  # dhat-rs: times in µs
            tl = tbk * rng.randint(0, 400)
            return (
                f'{{\n"tb": {tb},\n"tbk": {tbk},\n"tl": {tl},\n"mb": {mb},\n"mbk": {mbk},\n'
                f'"gb": {gb},\n"gbk": {gbk},\n"eb": {eb},\n"ebk": {ebk},\n'
                f'"fs": [\n{fs}\n]\n}}'
            )
        tl = tbk * rng.randint(100, 200_000)  # Valgrind: instructions
        wb = 0 if leaf.zeroed else tb
        rb = rng.randint(0, 2 * tb)
        acc = ""
        if same_size and size <= 1024:
            reads = rng.randint(0, 3)
            acc = f'\n  ,"acc":[-{size},{reads}]'
        return (
            f'{{"tb":{tb},"tbk":{tbk}\n  ,"tl":{tl}\n  ,"mb":{mb},"mbk":{mbk}\n'
            f'  ,"gb":{gb},"gbk":{gbk}\n  ,"eb":{eb},"ebk":{ebk}\n'
            f'  ,"rb":{rb},"wb":{wb}{acc}\n  ,"fs":[{fs}]\n  }}'
        )

    def ftbl_chunks(self) -> Iterator[bytes]:
        for entry in self.new_ftbl:
            yield self.layout.ftbl_sep + json.dumps(entry).encode()


def write_profile(
    out: BinaryIO, fmt: str, size_bytes: int, seed: int, functions: int
) -> tuple[int, int, int]:
    """Writes the profile; returns (generated pps, total pps, frame-table entries)."""
    layout = LAYOUTS[fmt]
    sample = load_sample(SAMPLES / SAMPLE_DIRS[fmt] / SAMPLE_NAME, layout)
    sample_pps = sample.raw[: sample.body_end].count(b'"fs"')

    head = sample.raw[: sample.body_end]
    ftbl_text = sample.raw[sample.body_end + len(layout.pps_close) : -len(layout.end)]
    fixed = len(head) + len(layout.pps_close) + len(ftbl_text) + len(layout.end)
    # A first guess of the pp count sets the chain depth. It comes from a throwaway
    # generator, so that the real one starts from the same state whatever the size.
    probe = Generator(sample, layout, random.Random(seed), functions)
    lengths = [len(probe.pp(k)) for k in range(2000)]
    guess = max(0, size_bytes - fixed) // (sum(lengths) // len(lengths) + len(layout.pp_sep))
    gen = Generator(sample, layout, random.Random(seed), functions)
    gen.set_depth_for(2 * guess + 1)

    out.write(head)
    written = len(head)
    k = 0
    buf: list[bytes] = []
    buffered = 0
    while written + buffered + fixed - len(head) + gen.new_ftbl_bytes < size_bytes:
        chunk = layout.pp_sep + gen.pp(k)
        buf.append(chunk)
        buffered += len(chunk)
        k += 1
        if buffered > 1 << 20:
            out.write(b"".join(buf))
            written += buffered
            buf.clear()
            buffered = 0
    out.write(b"".join(buf))
    out.write(layout.pps_close)
    out.write(ftbl_text)
    for chunk in gen.ftbl_chunks():
        out.write(chunk)
    out.write(layout.end)
    return k, sample_pps + k, len(sample.ftbl) + len(gen.new_ftbl)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="file to write (overwritten)")
    parser.add_argument(
        "--size-mb",
        type=float,
        default=100.0,
        help="target size in MB (10**6 bytes); below the sample's size you get the sample",
    )
    parser.add_argument("--format", choices=sorted(LAYOUTS), default="dhat-rs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--functions",
        type=int,
        default=4000,
        help="distinct generated leaf functions (innermost user frames)",
    )
    args = parser.parse_args(argv)
    if args.functions < 1:
        parser.error("--functions must be at least 1")

    start = time.perf_counter()
    with args.out.open("wb", buffering=1 << 20) as out:
        generated, total, ftbl = write_profile(
            out, args.format, int(args.size_mb * 1e6), args.seed, args.functions
        )
    elapsed = time.perf_counter() - start
    size = args.out.stat().st_size
    print(
        f"{args.out}: {size / 1e6:.1f} MB, {args.format}, {total} pps ({generated} generated, "
        f"{size / max(total, 1):.0f} bytes/pp), {ftbl} frame-table entries, {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
