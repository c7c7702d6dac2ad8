"""Reader for heaptrack's raw trace files (``heaptrack.<name>.zst``).

The trace is the text that ``heaptrack_interpret`` writes: one record per line,
a letter and hexadecimal fields. Interned data comes first and is referred to
by 1-based index (0 meaning "none"):

* ``s <len> <text>`` a string (file format 3 prefixes the byte length);
* ``i <ip> <module> [<function> [<file> <line> {<function> <file> <line>}]]``
  an instruction pointer; the first frame is the innermost inlined function,
  the last one the function the code physically belongs to;
* ``t <ip> <parent>`` a backtrace node, the innermost frame of a trace;
* ``a <size> <trace>`` an allocation kind: 0-based, referred to by ``+``/``-``.

Then the events: ``+ <a>`` an allocation, ``- <a>`` its free (a ``realloc`` is a
free plus an allocation), ``c <ms>`` a timestamp, ``R <pages>`` the RSS,
plus ``v`` (versions), ``X`` (command line), ``I`` (page size, pages),
``A`` (attached to a running process), ``S`` (embedded suppression), ``#``.

The numbers reproduce heaptrack_print's (AccumulatedTraceData::read): an
allocation site is one trace; "temporary" means freed with no other
allocation in between; the peak of a site is its live bytes at the first
moment the whole heap reached its maximum.

Only interned data and per-kind counters are kept, so memory grows with the
number of distinct sites and sizes, not with the number of events.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import length_hint
from pathlib import Path
from typing import IO

from allocgate.errors import ProfileError
from allocgate.frames import Frame
from allocgate.profilers.compressed import (
    GZIP_MAGIC,
    ZSTD_MAGIC,
    line_blocks,
    one_line,
    open_stream,
)
from allocgate.profilers.demangle import demangle

__all__ = ["HeaptrackData", "HeaptrackPoint", "TraceTree", "looks_like_heaptrack", "read_heaptrack"]

# File formats whose `+`/`-` records carry allocation-kind indices (heaptrack >= 1.0).
_SUPPORTED_FILE_VERSIONS = range(1, 4)
# heaptrack 1.2.0 wrote its own version where the file version belongs.
_HEAPTRACK_1_2_0 = 0x010200
# heaptrack_print hides these at the top of a trace, so the first frame is the
# code that called the allocation function; the same is done here.
_OPERATOR_NEW = frozenset(
    {
        "operator new(unsigned long)",
        "operator new[](unsigned long)",
        "operator new(unsigned int)",
        "operator new[](unsigned int)",
    }
)
_NOT_HEAPTRACK = "not a heaptrack trace (neither zstd, gzip nor text starting with a 'v' record)"


def _hex(field: bytes) -> int:
    """A hexadecimal field of 64 bits at most; a longer one is not from heaptrack (and
    as a decimal number could exceed what Python prints)."""
    if len(field.strip()) > 16:
        raise ValueError("more than 64 bits")
    return int(field, 16)


@dataclass(frozen=True, slots=True)
class TraceTree:
    """heaptrack's backtrace nodes, kept as the tree they are.

    Sites share their outer frames; a trace with deep recursion or long inlined
    chains would hold millions of frames if every site's stack were spelled
    out, so stacks are only walked on demand (see allocgate.stack_tree).
    """

    frames: tuple[tuple[int, ...], ...]
    """Per node, the frames of its instruction pointer, innermost first (node 0: none)."""
    parents: tuple[int, ...]
    """Per node, the node of its caller (0: the outermost frame was reached)."""

    def stack(self, node: int) -> tuple[int, ...]:
        """The whole stack of a node, innermost frame first."""
        stack: list[int] = []
        frames = self.frames
        parents = self.parents
        while node:
            stack.extend(frames[node])
            node = parents[node]
        return tuple(stack)


@dataclass(frozen=True, slots=True)
class HeaptrackPoint:
    """One allocation site: a backtrace node and what was allocated there."""

    tree: TraceTree = field(repr=False)
    node: int
    """The site's innermost backtrace node in ``tree``."""
    total_bytes: int
    """Bytes allocated at this point over the run."""
    total_blocks: int
    """Number of allocation calls."""
    temporary_blocks: int
    """Allocations freed with no other allocation in between."""
    peak_bytes: int
    """Bytes of this point live at the moment of the global heap peak."""
    end_bytes: int
    """Bytes still live at exit (leaked)."""

    @property
    def stack(self) -> tuple[int, ...]:
        """Indices into HeaptrackData.frames, innermost (allocating) frame first."""
        return self.tree.stack(self.node)


@dataclass(frozen=True, slots=True)
class HeaptrackData:
    """A whole trace, before folding."""

    path: Path
    command: str
    """The debuggee command line (the ``X`` record)."""
    frames: tuple[Frame, ...]
    tree: TraceTree
    points: tuple[HeaptrackPoint, ...]
    peak_rss_bytes: int | None
    """Largest RSS sample times the page size; includes heaptrack's own overhead."""


def looks_like_heaptrack(head: bytes) -> bool:
    """Whether the first bytes of a file can be a heaptrack trace (compressed or not)."""
    return head.startswith((ZSTD_MAGIC, GZIP_MAGIC, b"v "))


def read_heaptrack(path: Path) -> HeaptrackData:
    """Reads a heaptrack trace (zstd, gzip or plain), streaming it line by line."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from exc
    if not head:
        raise ProfileError(f"{path}: the profile is empty")
    if not looks_like_heaptrack(head):
        raise ProfileError(f"{path}: {_NOT_HEAPTRACK}")
    with open_stream(path, head) as stream:
        return _Reader(path).read(stream)


# --- parsing ------------------------------------------------------------------------


class _Reader:
    """Turns the records of one trace into HeaptrackData."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lineno = 0
        self.file_version = 0
        self.strings: list[bytes] = []
        self.op_new_strings: set[int] = set()
        # address, module string, flattened (function, file, line) of the frames
        self.ips: list[tuple[int, int, tuple[int, ...]]] = []
        self.op_new_ips: set[int] = set()
        self.traces: list[tuple[int, int]] = []
        # per allocation kind (`a` record): size and the site it belongs to
        self.kind_size: list[int] = []
        self.kind_site: list[int] = []
        self.site_of_trace: dict[int, int] = {}
        self.site_trace: list[int] = []
        self.command: str | None = None
        self.page_size = 0
        self.max_rss_pages = 0
        # filled by read_records, per allocation kind
        self.calls: list[int] = []
        self.live: list[int] = []
        self.temporary: list[int] = []
        self.at_peak: list[int] = []

    def fail(self, problem: str) -> ProfileError:
        return ProfileError(f"{self.path}: line {self.lineno}: {problem}")

    def bad_record(self, line: bytes) -> ProfileError:
        return self.fail(f"malformed record {_quote(line)}")

    def read(self, stream: IO[bytes]) -> HeaptrackData:
        blocks = line_blocks(stream)
        first_block = next(blocks, [b""])
        first = first_block[0]
        self.lineno = 1
        if not first.strip():
            raise ProfileError(f"{self.path}: the trace is empty")
        self.read_version(first)
        self.read_records(itertools.chain([first_block[1:]], blocks))
        return self.result()

    def read_version(self, line: bytes) -> None:
        fields = line.split()
        if fields[0] != b"v" or not 2 <= len(fields) <= 3:
            raise ProfileError(f"{self.path}: {_NOT_HEAPTRACK}")
        try:
            numbers = [_hex(field) for field in fields[1:]]
        except ValueError:
            raise self.bad_record(line) from None
        if len(numbers) == 2:
            self.file_version = numbers[1]
        elif numbers[0] == _HEAPTRACK_1_2_0:
            self.file_version = 1
        if self.file_version not in _SUPPORTED_FILE_VERSIONS:
            raise self.fail(
                f"unsupported heaptrack file format version {self.file_version}"
                f" (written by heaptrack {_version_text(numbers[0])}; this reader"
                f" understands versions {_SUPPORTED_FILE_VERSIONS.start}"
                f" to {_SUPPORTED_FILE_VERSIONS.stop - 1})"
            )

    def read_records(self, blocks: Iterator[list[bytes]]) -> None:
        # The event loop is the hot path (millions of lines): everything it
        # touches is a local, per-kind counters are plain lists, and each
        # distinct event line is parsed once: `code` maps it to its kind
        # (an allocation) or to ~kind (a free).
        kind_size = self.kind_size
        calls: list[int] = []
        live: list[int] = []
        temporary: list[int] = []
        # Live counts at the latest new heap maximum, copied lazily: a kind's
        # value is saved just before its first change after that maximum.
        at_peak: list[int] = []
        saved_for: list[int] = []
        code: dict[bytes, int] = {}
        known = code.get
        peak_generation = 0
        heap = 0
        peak = 0
        # heaptrack_print's `lastAllocationPtr`: starts at, and returns to, 0
        # after every free, so a free of kind 0 right after another free also
        # counts as temporary. Kept so that the totals match heaptrack_print.
        last = 0
        lineno = self.lineno  # lines before the current block
        for lines in blocks:
            remaining = iter(lines)
            for line in remaining:
                kind = known(line)
                if kind is None:
                    # The line number of `line`, from how many are left.
                    self.lineno = lineno + len(lines) - length_hint(remaining)
                    tag = line[:1]
                    if tag == b"+" or tag == b"-":
                        kind = code[line] = self.event_kind(line, tag == b"+")
                    elif tag == b"a":
                        self.read_kind(line)
                        calls.append(0)
                        live.append(0)
                        temporary.append(0)
                        at_peak.append(0)
                        saved_for.append(0)
                        continue
                    else:
                        self.read_other(line)
                        continue
                if kind >= 0:
                    if saved_for[kind] != peak_generation:
                        at_peak[kind] = live[kind]
                        saved_for[kind] = peak_generation
                    live[kind] += 1
                    calls[kind] += 1
                    heap += kind_size[kind]
                    if heap > peak:
                        peak = heap
                        peak_generation += 1
                    last = kind
                else:
                    kind = ~kind
                    count = live[kind]
                    if count <= 0:
                        self.lineno = lineno + len(lines) - length_hint(remaining)
                        raise self.fail(f"free of allocation kind {kind:#x} with none live")
                    if saved_for[kind] != peak_generation:
                        at_peak[kind] = count
                        saved_for[kind] = peak_generation
                    live[kind] = count - 1
                    heap -= kind_size[kind]
                    if kind == last:
                        temporary[kind] += 1
                    last = 0
            lineno += len(lines)
        self.lineno = lineno
        for kind, generation in enumerate(saved_for):
            if generation != peak_generation:
                at_peak[kind] = live[kind]
        self.calls = calls
        self.live = live
        self.temporary = temporary
        self.at_peak = at_peak

    def event_kind(self, line: bytes, allocation: bool) -> int:
        """The kind an event line refers to, checked: itself for an allocation, ~kind for a free."""
        try:
            kind = _hex(line[2:])
        except ValueError:
            raise self.bad_event(line) from None
        if not 0 <= kind < len(self.kind_size):
            raise self.bad_event(line)
        return kind if allocation else ~kind

    def bad_event(self, line: bytes) -> ProfileError:
        text = line[2:].strip()
        try:
            kind = _hex(text)
        except ValueError:
            return self.bad_record(line)
        return self.fail(
            f"event refers to undefined allocation kind {kind:#x} ({len(self.kind_size)} defined)"
        )

    def read_kind(self, line: bytes) -> None:
        size, trace = self.numbers(line, 2)
        if trace > len(self.traces):
            raise self.fail(f"allocation refers to undefined trace {trace:#x}")
        site = self.site_of_trace.get(trace)
        if site is None:
            site = self.site_of_trace[trace] = len(self.site_trace)
            self.site_trace.append(trace)
        self.kind_size.append(size)
        self.kind_site.append(site)

    def read_other(self, line: bytes) -> None:
        tag = line[:1]
        if tag == b"s":
            self.read_string(line)
        elif tag == b"t":
            self.read_trace(line)
        elif tag == b"i":
            self.read_ip(line)
        elif tag == b"c":
            self.numbers(line, 1)
        elif tag == b"R":
            (pages,) = self.numbers(line, 1)
            self.max_rss_pages = max(self.max_rss_pages, pages)
        elif tag == b"I":
            self.page_size = self.numbers(line, 2)[0]
        elif tag == b"X":
            if self.command is not None:
                raise self.fail("a second debuggee command line ('X' record)")
            self.command = line[2:].rstrip(b"\r\n").decode("utf-8", "replace")
        elif tag in (b"#", b"", b"\r"):
            self.check_trailer(line)
        elif tag in (b"A", b"S"):
            # "attached to a running process" and embedded leak suppressions:
            # heaptrack_print hides suppressed leaks from its total; the
            # numbers here stay raw.
            pass
        elif tag == b"v":
            raise self.fail("a second version record")
        elif tag in (b"m", b"x"):
            raise self.fail(
                "raw preload output: this file was not processed by heaptrack_interpret"
            )
        else:
            raise self.fail(f"unknown record type {_quote(line)}")

    def numbers(self, line: bytes, count: int) -> list[int]:
        fields = line.split()
        if len(fields) != count + 1:
            raise self.bad_record(line)
        try:
            values = [_hex(field) for field in fields[1:]]
        except ValueError:
            raise self.bad_record(line) from None
        if any(value < 0 for value in values):
            raise self.bad_record(line)
        return values

    def read_string(self, line: bytes) -> None:
        body = line[2:]
        if body.endswith(b"\n"):
            body = body[:-1]
        if self.file_version >= 3:
            length_text, space, text = body.partition(b" ")
            try:
                length = _hex(length_text)
            except ValueError:
                raise self.bad_record(line) from None
            if length < 0 or length > len(text) or (length < len(text) and not space):
                raise self.fail(f"string of {length} bytes does not fit its record")
            text = text[:length]
        else:
            text = body
        self.strings.append(text)
        if text.decode("utf-8", "replace") in _OPERATOR_NEW:
            self.op_new_strings.add(len(self.strings))

    def read_ip(self, line: bytes) -> None:
        fields = line.split()
        if len(fields) < 3 or (len(fields) > 4 and (len(fields) - 3) % 3):
            raise self.bad_record(line)
        try:
            address, module, *frames = (_hex(field) for field in fields[1:])
        except ValueError:
            raise self.bad_record(line) from None
        strings = len(self.strings)
        if address < 0 or module < 0 or module > strings:
            raise self.fail(f"instruction pointer refers to undefined module string {module:#x}")
        for position, value in enumerate(frames):
            if position % 3 == 2:
                if value < 0:
                    raise self.bad_record(line)
            elif not 0 <= value <= strings:
                raise self.fail(f"instruction pointer refers to undefined string {value:#x}")
        self.ips.append((address, module, tuple(frames)))
        if frames and frames[0] in self.op_new_strings:
            self.op_new_ips.add(len(self.ips))

    def read_trace(self, line: bytes) -> None:
        ip, parent = self.numbers(line, 2)
        if ip > len(self.ips):
            raise self.fail(f"trace refers to undefined instruction pointer {ip:#x}")
        # Parents are always written first, which also rules out cycles.
        if parent > len(self.traces):
            raise self.fail(f"trace refers to undefined parent trace {parent:#x}")
        while ip in self.op_new_ips:
            ip, parent = self.traces[parent - 1] if parent else (0, 0)
        self.traces.append((ip, parent))

    def check_trailer(self, line: bytes) -> None:
        # heaptrack_interpret ends the file with these counts; a mismatch
        # means records went missing.
        for label, have in ((b"# strings: ", len(self.strings)), (b"# ips: ", len(self.ips))):
            if line.startswith(label):
                try:
                    want = int(line[len(label) :])
                except ValueError:
                    return
                if want != have:
                    raise self.fail(
                        f"the trailer announces {want} {label[2:-2].decode()}"
                        f" but the trace defines {have}"
                    )

    # --- results ---

    def result(self) -> HeaptrackData:
        frames: list[Frame] = []
        frame_index: dict[Frame, int] = {}
        ip_frames: dict[int, tuple[int, ...]] = {}
        names: dict[int, str] = {}

        def name(index: int) -> str:
            text = names.get(index)
            if text is None:
                text = names[index] = demangle(self.strings[index - 1].decode("utf-8", "replace"))
            return text

        def text(index: int) -> str | None:
            return self.strings[index - 1].decode("utf-8", "replace") if index else None

        def frames_of(ip: int) -> tuple[int, ...]:
            cached = ip_frames.get(ip)
            if cached is not None:
                return cached
            address, module, values = self.ips[ip - 1]
            if len(values) <= 1:
                entries = [(values[0] if values else 0, 0, 0)]
            else:
                entries = [
                    (values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)
                ]
            indices = []
            for function, file, line in entries:
                frame = Frame(
                    function=name(function) if function else f"{address:#x}",
                    file=text(file),
                    line=line if file else None,
                    address=address,
                    object=text(module) if not file else None,
                )
                index = frame_index.get(frame)
                if index is None:
                    index = frame_index[frame] = len(frames)
                    frames.append(frame)
                indices.append(index)
            ip_frames[ip] = cached = tuple(indices)
            return cached

        # Node t is trace t; a trace without an instruction pointer ends the
        # stack. Frames are numbered in the order the sites' stacks meet them,
        # innermost first; a walk stops at a node seen before, whose callers
        # were all seen with it, so each node is visited once.
        traces = self.traces
        node_frames: list[tuple[int, ...]] = [()] * (len(traces) + 1)
        parents = [0] * (len(traces) + 1)
        seen = [False] * (len(traces) + 1)
        seen[0] = True
        for trace in self.site_trace:
            while not seen[trace]:
                seen[trace] = True
                ip, parent = traces[trace - 1]
                if ip:
                    node_frames[trace] = frames_of(ip)
                    parents[trace] = parent
                trace = parent if ip else 0
        tree = TraceTree(tuple(node_frames), tuple(parents))

        sites = len(self.site_trace)
        total_bytes = [0] * sites
        total_blocks = [0] * sites
        temporary_blocks = [0] * sites
        peak_bytes = [0] * sites
        end_bytes = [0] * sites
        for kind, (size, site) in enumerate(zip(self.kind_size, self.kind_site)):
            total_bytes[site] += self.calls[kind] * size
            total_blocks[site] += self.calls[kind]
            temporary_blocks[site] += self.temporary[kind]
            peak_bytes[site] += self.at_peak[kind] * size
            end_bytes[site] += self.live[kind] * size
        points = tuple(
            HeaptrackPoint(
                tree=tree,
                node=trace,
                total_bytes=total_bytes[site],
                total_blocks=total_blocks[site],
                temporary_blocks=temporary_blocks[site],
                peak_bytes=peak_bytes[site],
                end_bytes=end_bytes[site],
            )
            for site, trace in enumerate(self.site_trace)
        )
        rss = self.max_rss_pages * self.page_size
        return HeaptrackData(
            path=self.path,
            command=self.command or "",
            frames=tuple(frames),
            tree=tree,
            points=points,
            peak_rss_bytes=rss or None,
        )


def _quote(line: bytes) -> str:
    return one_line(repr(line.rstrip(b"\r\n")), 60)


def _version_text(version: int) -> str:
    return f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}"
