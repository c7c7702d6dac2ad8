"""Naming a profile's addresses from the binary's own debug info.

Valgrind DHAT and heaptrack print an inlined frame by its short DWARF name
(``clone``, ``insert``), so on their own they cannot say whose ``clone`` it was.
The binary's debug info can: with ``debug = 1`` or more, every inlined function
has its linkage name, and ``llvm-symbolizer --inlines`` reports the whole chain
of inlined frames at an address, innermost first, with full paths.

Why llvm-symbolizer: one process answers a batch of addresses read from stdin
(0.07 s for the 300 addresses of a threaded program with an 11 MB binary), it
prints JSON (no guessing where a name with spaces or newlines ends, unlike
``addr2line -i -f``'s alternating lines), ``--functions=linkage --no-demangle``
gives linkage names that ``allocgate.demangle`` turns into the same spelling
dhat-rs prints, and it ships with Debian's ``llvm`` package. pyelftools would
read the DWARF from Python but is a new runtime dependency and much slower on
large binaries.

Addresses in a profile are run-time addresses. A position-independent
executable is loaded at an offset (Valgrind: usually 0x108000; heaptrack: a
random one), so the *load bias* is derived first: a named frame whose symbol
the binary's symbol table also has pins it (``nm``), and the page-aligned bias
that most such frames agree on wins.
"""

from __future__ import annotations

import shlex
import shutil
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from allocgate.boundary import name_crate, normalize_function
from allocgate.callsites import FoldOptions, FrameTable
from allocgate.frames import Frame
from allocgate.profilers.demangle import demangle, strip_hash
from allocgate.workspace import Workspace, guess_workspace, workspace_of_source

__all__ = [
    "Resolution",
    "Resolved",
    "Symbolizer",
    "SymbolizerUnavailable",
    "binary_of",
    "executable_ranges",
    "frame_table",
    "resolve_frames",
    "symbolizer_for",
]

_PAGE = 0x1000
_PT_LOAD = 1
_PF_X = 1
# Anchors beyond this many add time, not certainty.
_MAX_ANCHORS = 400


class SymbolizerUnavailable(Exception):
    """The binary or the tools needed to read it are missing; names stay as printed."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """One (possibly inlined) frame named from debug info."""

    function: str
    """Demangled, without the ``::h<hash>`` suffix; a short DWARF name when the
    binary has no linkage name for it (``debug = "line-tables-only"``)."""
    file: str | None
    """Absolute path as the debug info gives it (the compilation directory joined)."""
    line: int | None
    qualified: bool
    """Whether ``function`` is a full path (a linkage name), not a short DWARF name."""


def executable_ranges(binary: Path) -> tuple[tuple[int, int], ...]:
    """The file-relative address ranges of the binary's executable segments."""
    try:
        with binary.open("rb") as handle:
            head = handle.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                raise SymbolizerUnavailable(f"{binary}: not a 64-bit little-endian ELF file")
            (phoff,) = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError as exc:
        raise SymbolizerUnavailable(f"{binary}: {exc.strerror or exc}") from exc
    ranges = []
    for i in range(phnum):
        p_type, p_flags, _off, vaddr, _paddr, _filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", table, i * phentsize
        )
        if p_type == _PT_LOAD and p_flags & _PF_X:
            ranges.append((vaddr, vaddr + memsz))
    return tuple(ranges)


class Symbolizer:
    """Resolves addresses of one binary; every answer is cached."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.tool = shutil.which("llvm-symbolizer")
        if self.tool is None:
            raise SymbolizerUnavailable(
                "llvm-symbolizer not found (apt-get install llvm): inlined frames keep "
                "the short names the profiler printed"
            )
        if not binary.is_file():
            raise SymbolizerUnavailable(f"{binary}: no such binary")
        self.ranges = executable_ranges(binary)
        self._symbols: dict[str, list[tuple[int, int]]] | None = None
        self._cache: dict[int, tuple[Resolved, ...]] = {}

    def contains(self, offset: int) -> bool:
        """Whether a file-relative address lies in the binary's code."""
        return any(lo <= offset < hi for lo, hi in self.ranges)

    # --- the load bias --------------------------------------------------------

    def symbols(self) -> dict[str, list[tuple[int, int]]]:
        """Function symbols by demangled name (no hash): [(address, size), ...]."""
        if self._symbols is None:
            nm = shutil.which("nm")
            if nm is None:
                raise SymbolizerUnavailable("nm not found (apt-get install binutils)")
            done = subprocess.run(
                [nm, "--defined-only", "-S", "-C", str(self.binary)],
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
            )
            table: dict[str, list[tuple[int, int]]] = {}
            for line in done.stdout.splitlines():
                # "00000000000b1bd0 0000000000000308 T scan_core::record::enrich"
                parts = line.split(" ", 3)
                if len(parts) != 4 or parts[2] not in ("T", "t", "W", "w"):
                    continue
                try:
                    value, size = int(parts[0], 16), int(parts[1], 16)
                except ValueError:
                    continue
                table.setdefault(strip_hash(parts[3]), []).append((value, size))
            self._symbols = table
        return self._symbols

    def load_bias(self, anchors: Iterable[tuple[int, str]]) -> int | None:
        """The page-aligned offset the binary was loaded at, from (run-time
        address, function name) pairs: the bias most of them agree on."""
        symbols = self.symbols()
        votes: Counter[int] = Counter()
        seen = 0
        for address, name in anchors:
            candidates = symbols.get(strip_hash(name))
            if not candidates or len(candidates) > 4:
                continue
            seen += 1
            for value, size in candidates:
                # Every page-aligned bias that puts the address inside the symbol.
                low = address - value - max(size, 1) + 1
                bias = (address - value) & ~(_PAGE - 1)
                while bias >= low and bias >= 0:
                    votes[bias] += 1
                    bias -= _PAGE
            if seen >= _MAX_ANCHORS:
                break
        if not votes:
            return None
        ranked = votes.most_common(2)
        # A tie between two biases means the anchors could not tell.
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            return None
        return ranked[0][0]

    # --- resolving ------------------------------------------------------------

    def resolve(self, offsets: Sequence[int]) -> dict[int, tuple[Resolved, ...]]:
        """File-relative addresses → their inlined frames, innermost first.

        Addresses are return addresses (the instruction after a call), so the
        byte before each is looked up: that is the call, and its inline chain.
        An address the debug info does not cover maps to ``()``.
        """
        wanted = sorted({o for o in offsets if o not in self._cache})
        if wanted:
            self._run(wanted)
        return {o: self._cache.get(o, ()) for o in offsets}

    def _run(self, offsets: list[int]) -> None:
        assert self.tool is not None
        text = "".join(f"0x{max(o - 1, 0):x}\n" for o in offsets)
        done = subprocess.run(
            [
                self.tool,
                f"--obj={self.binary}",
                "--inlines",
                "--functions=linkage",
                "--no-demangle",
                "--output-style=JSON",
            ],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SymbolizerUnavailable(
                f"llvm-symbolizer failed on {self.binary}: {message[-1] if message else ''}"
            )
        lines = done.stdout.splitlines()
        for offset, line in zip(offsets, lines):
            try:
                answer = orjson.loads(line)
            except orjson.JSONDecodeError:
                self._cache[offset] = ()
                continue
            self._cache[offset] = tuple(_frames(answer))
        for offset in offsets[len(lines) :]:
            self._cache[offset] = ()


def _frames(answer: object) -> Iterable[Resolved]:
    if not isinstance(answer, dict):
        return
    for entry in answer.get("Symbol") or ():
        if not isinstance(entry, dict):
            continue
        raw = str(entry.get("FunctionName") or "")
        if not raw or raw == "??":
            continue
        name = demangle(raw)
        mangled = name != raw
        file = str(entry.get("FileName") or "") or None
        line = entry.get("Line")
        yield Resolved(
            function=strip_hash(name),
            file=None if file in (None, "??") else file,
            line=line if isinstance(line, int) and line > 0 else None,
            qualified=mangled or "::" in name,
        )


_SYMBOLIZERS: dict[tuple[str, int, int], Symbolizer] = {}


def symbolizer_for(binary: Path) -> Symbolizer:
    """One Symbolizer per binary (path, size and mtime), so the runs of a workload
    share its answers."""
    try:
        stat = binary.stat()
    except OSError as exc:
        raise SymbolizerUnavailable(f"{binary}: {exc.strerror or exc}") from exc
    key = (str(binary.resolve()), stat.st_size, stat.st_mtime_ns)
    found = _SYMBOLIZERS.get(key)
    if found is None:
        found = _SYMBOLIZERS[key] = Symbolizer(binary)
    return found


@dataclass(frozen=True)
class Resolution:
    """What symbolization did to a profile's frame table."""

    expanded: tuple[tuple[Frame, ...], ...]
    """Per original frame index, the frames it stands for: the innermost frame
    printed at an address carries the whole resolved inline chain, the others
    printed at that address carry nothing; unresolved frames stand for themselves."""
    addresses: int
    """Distinct addresses inside the binary."""
    resolved: int
    """Of those, how many the debug info named."""
    bias: int | None
    seconds: float


def resolve_frames(frames: Sequence[Frame], binary: Path) -> Resolution:
    """Re-names every frame of ``binary`` from its debug info (see the module doc)."""
    started = time.monotonic()
    symbolizer = symbolizer_for(binary)
    # The outermost name printed at an address is the physical function: the
    # one the symbol table has.
    physical: dict[int, str] = {}
    # Frames printed at one address, in table order: innermost first (both
    # formats list an address's inline chain innermost first, in order).
    at: dict[int, list[int]] = {}
    for index, frame in enumerate(frames):
        address = frame.address
        if address is None:
            continue
        at.setdefault(address, []).append(index)
        name = frame.function
        if name and name not in ("???", "UnknownInlinedFun") and not name.startswith("0x"):
            physical[address] = name
    bias = symbolizer.load_bias(physical.items())
    unchanged = tuple((frame,) for frame in frames)
    if bias is None:
        return Resolution(unchanged, 0, 0, None, time.monotonic() - started)
    inside = [a for a in at if symbolizer.contains(a - bias)]
    answers = symbolizer.resolve([a - bias for a in inside])
    if not _same_binary(physical, answers, bias):
        return Resolution(unchanged, len(inside), 0, None, time.monotonic() - started)
    expanded: list[tuple[Frame, ...]] = list(unchanged)
    resolved = 0
    for address in inside:
        chain = answers[address - bias]
        if not chain:
            continue
        resolved += 1
        new = tuple(
            Frame(function=r.function, file=r.file, line=r.line, address=address) for r in chain
        )
        head, *rest = at[address]
        expanded[head] = new
        for index in rest:
            expanded[index] = ()
    return Resolution(tuple(expanded), len(inside), resolved, bias, time.monotonic() - started)


def _same_binary(
    physical: dict[int, str], answers: dict[int, tuple[Resolved, ...]], bias: int
) -> bool:
    """Whether the binary is the one the profile ran: where the profiler named the
    function an address is in, the debug info must name the same one. A rebuilt
    binary at the same path would otherwise put wrong names on every frame."""
    checked = agreed = 0
    for address, name in physical.items():
        chain = answers.get(address - bias)
        if not chain or "::" not in name:
            continue
        checked += 1
        mine = _bare(name)
        agreed += any(_bare(r.function) == mine for r in chain)
    return checked == 0 or agreed >= 0.8 * checked


def _bare(name: str) -> str:
    """The last path segment without generics: what every printer agrees on."""
    name = strip_hash(name)
    depth = 0
    out = []
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out).rsplit("::", 1)[-1]


def frame_table(frames: Sequence[Frame], options: FoldOptions, command: str) -> FrameTable:
    """The table a loader folds with: the workspace (given, or guessed from the
    command) and, when the binary is at hand, every frame named from its debug info."""
    workspace = options.workspace
    if workspace is None and options.keys == "workspace":
        workspace = guess_workspace(command)
    expanded = None
    binary = options.binary or (binary_of(command) if options.symbolize else None)
    if binary is not None and any(f.address is not None for f in frames):
        try:
            expanded = resolve_frames(frames, binary).expanded
        except SymbolizerUnavailable:
            expanded = None
    if workspace is not None and workspace.root is None:
        # A bare profile: its sources, if still on disk, say where the workspace is.
        workspace = _locate(workspace, expanded or [(f,) for f in frames]) or workspace
    return FrameTable(frames, options, workspace, expanded)


def _locate(workspace: Workspace, chains: Sequence[tuple[Frame, ...]]) -> Workspace | None:
    """The whole workspace around the first frame of a known crate whose source
    file exists (with ``--workspace`` or a guessed crate, only names were known)."""
    for chain in chains:
        for frame in chain:
            if not frame.file or not frame.file.startswith("/") or "::" not in frame.function:
                continue
            if name_crate(normalize_function(frame.function)) not in workspace.crates:
                continue
            path = Path(frame.file)
            if not path.is_file():
                return None
            found = workspace_of_source(path)
            if found is None:
                return None
            return Workspace(found.crates | workspace.crates, found.root, found.members)
    return None


def binary_of(command: str) -> Path | None:
    """The program a profile's command ran, if it still exists."""
    try:
        program = shlex.split(command)[0] if command.strip() else ""
    except ValueError:
        program = command.split(" ", 1)[0]
    path = Path(program)
    return path if program and path.is_file() else None
