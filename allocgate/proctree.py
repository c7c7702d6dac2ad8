"""Running a child and everything it starts: a total deadline, bounded output, no
process left behind.

The child runs in its own session. Its output is drained as it comes into a
bounded tail (and, when asked, a file), so a workload that prints gigabytes costs
kilobytes. On timeout the whole tree is killed: the child's process group and
session, every descendant found through ``/proc`` parent links (also those that
started a session of their own) and every process carrying this run's marker in
its environment (also those orphaned to init). After a normal exit, anything
still alive from the tree is a leftover: killed and reported by pid and name.
No cgroups are needed, so this works in any container.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TAIL_BYTES = 64 * 1024
"""Bytes of each stream kept for messages; the rest is dropped as it passes."""
EXIT_GRACE = 0.5
"""Seconds to wait for the pipes to close once the child has exited."""
_SCAN_EVERY = 0.5
_READ_SIZE = 1 << 16
_MAX_LINE = 4096
_MAX_PANIC_LINES = 12
_PROC = Path("/proc")


@dataclass(frozen=True)
class Leftover:
    """A process of the tree still running after the child exited."""

    pid: int
    name: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.name})"


@dataclass(frozen=True)
class Panic:
    """The first Rust panic seen on stderr."""

    message: str
    location: str
    thread: str

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{self.message}{where}"


@dataclass(frozen=True)
class TreeResult:
    """How a process tree ended."""

    returncode: int
    stdout: str
    """The last TAIL_BYTES of stdout."""
    stderr: str
    """The last TAIL_BYTES of stderr."""
    seconds: float
    timed_out: bool
    leftovers: tuple[Leftover, ...]
    """Processes that outlived the child; all were killed."""
    panic: Panic | None
    stdout_bytes: int
    stderr_bytes: int


class Tail:
    """The last ``limit`` bytes of a stream, in memory bounded by twice that."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self._buf += data
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]

    def text(self) -> str:
        data = bytes(self._buf[-self.limit :])
        if self.total > len(data):
            # Drop the partial first line of a cut stream.
            cut = data.find(b"\n")
            data = data[cut + 1 :] if cut >= 0 else data
        return data.decode("utf-8", errors="replace")


# Rust 1.73 moved the message to the lines after the location; newer versions
# add the thread id: ``thread 'main' (1629) panicked at src/main.rs:55:13:``.
_PANIC_RE = re.compile(r"^thread '(?P<thread>.*)'(?: \(\d+\))? panicked at (?P<rest>.*)$")
_OLD_PANIC_RE = re.compile(r"^'(?P<msg>.*)', (?P<loc>\S+:\d+(?::\d+)?)$")
# What Rust's default hook prints right after the message: it ends a message of
# several lines. Any other line may be the program's own output (a Drop impl
# printing during unwinding), so without one of these only the first line counts.
_PANIC_END_RE = re.compile(r"^(?:note: |stack backtrace:)")


class PanicScanner:
    """Finds the first panic in a stream fed in arbitrary pieces.

    The whole stream passes through, not only its tail, so backtraces, Valgrind's
    summary or heaptrack's statistics after the panic never push it out.
    """

    def __init__(self) -> None:
        self.panic: Panic | None = None
        self._partial = bytearray()
        self._overlong = False
        self._head: tuple[str, str] | None = None
        self._lines: list[str] = []

    def feed(self, data: bytes) -> None:
        if self.panic is not None:
            return
        start = 0
        while self.panic is None:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data[start:])
                return
            self._keep(data[start:end])
            line = bytes(self._partial)
            self._partial.clear()
            self._overlong = False
            self._line(line.decode("utf-8", errors="replace").rstrip("\r"))
            start = end + 1

    def close(self) -> Panic | None:
        if self.panic is None and self._partial:
            self._line(bytes(self._partial).decode("utf-8", errors="replace"))
        if self.panic is None and self._head is not None:
            self._finish(first_line_only=True)
        return self.panic

    def _keep(self, piece: bytes) -> None:
        room = _MAX_LINE - len(self._partial)
        if room > 0:
            self._partial += piece[:room]

    def _line(self, line: str) -> None:
        if self._head is not None:
            if _PANIC_END_RE.match(line):
                self._finish()
            elif not self._lines:
                self._lines.append(line)
            elif len(self._lines) >= _MAX_PANIC_LINES or not line.strip():
                self._finish(first_line_only=True)
            else:
                self._lines.append(line)
            return
        m = _PANIC_RE.match(line)
        if m is None:
            return
        thread, rest = m.group("thread"), m.group("rest").strip()
        old = _OLD_PANIC_RE.match(rest)
        if old is not None:
            # Rust before 1.73: the message and the location on one line.
            self.panic = Panic(old.group("msg"), old.group("loc"), thread)
            return
        self._head = (thread, rest[:-1] if rest.endswith(":") else rest)

    def _finish(self, first_line_only: bool = False) -> None:
        assert self._head is not None
        thread, location = self._head
        lines = self._lines[:1] if first_line_only else self._lines
        message = "\n".join(lines).strip() or "(no message)"
        self.panic = Panic(message, location, thread)


# ---------------------------------------------------------------- /proc


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    pgrp: int
    session: int
    start: int
    """Start time in clock ticks since boot: with the pid, a process's identity."""
    name: str
    zombie: bool


def _stat(pid: int) -> _Proc | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The name is in parentheses and may itself hold spaces and parentheses.
    close = raw.rfind(b")")
    name = raw[raw.find(b"(") + 1 : close].decode("utf-8", errors="replace")
    fields = raw[close + 2 :].split()
    try:
        return _Proc(
            pid=pid,
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            start=int(fields[19]),
            name=name,
            zombie=fields[0] in (b"Z", b"X"),
        )
    except (IndexError, ValueError):
        return None


def _all_processes() -> list[_Proc]:
    found = []
    try:
        entries = os.listdir(_PROC)
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            proc = _stat(int(entry))
            if proc is not None and not proc.zombie:
                found.append(proc)
    return found


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return marker in environ.split(b"\0")


def _descendants(procs: Iterable[_Proc], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class _Tree:
    """The processes that belong to one run, found again whenever asked."""

    def __init__(self, root: int, marker: bytes) -> None:
        self.root = root
        self.marker = marker
        self.seen: set[tuple[int, int]] = set()
        self._me = os.getpid()

    def remember(self) -> None:
        """Notes the current descendants, so one that later escapes is still known."""
        procs = _all_processes()
        ids = _descendants(procs, {self.root})
        self.seen.update((p.pid, p.start) for p in procs if p.pid in ids)

    def members(self) -> list[_Proc]:
        procs = _all_processes()
        ours = {
            p.pid
            for p in procs
            if p.pid == self.root
            or p.pgrp == self.root
            or p.session == self.root
            or (p.pid, p.start) in self.seen
        }
        ours |= _descendants(procs, ours | {self.root})
        for p in procs:
            if p.pid not in ours and p.pid != self._me and _has_marker(p.pid, self.marker):
                ours.add(p.pid)
        ours |= _descendants(procs, ours)
        ours.discard(self._me)
        return [p for p in procs if p.pid in ours]

    def kill(self) -> list[_Proc]:
        """SIGKILLs every member until none is left; returns those it found first."""
        first: list[_Proc] = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.root, signal.SIGKILL)
        for _ in range(20):
            members = self.members()
            if not first:
                first = members
            if not members:
                break
            for p in members:
                # A process found by pid is only killed if it is still the same one.
                again = _stat(p.pid)
                if again is not None and again.start == p.start:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(p.pid, signal.SIGKILL)
            time.sleep(0.02)
        return first


# ---------------------------------------------------------------- running


class StartError(Exception):
    """The program could not be started (missing, not executable, bad argument)."""


CREDENTIALS = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
    }
)
"""Never passed to a build or a workload: a PR's build.rs or program must not get the
write token that allocgate uses to comment and to commit a blessed baseline."""


def run_tree(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdout_sink: BinaryIO | None = None,
    stderr_sink: BinaryIO | None = None,
    scan_panics: bool = True,
    kill_leftovers: bool = True,
    tail_bytes: int = TAIL_BYTES,
) -> TreeResult:
    """Runs ``argv`` to completion or to its deadline and cleans up after it.

    The sinks receive all of a stream (files, never memory); the result holds
    bounded tails either way. Without ``kill_leftovers``, processes that outlive
    a normal exit (a build's compiler server) are left alone and not waited for.
    """
    marker_name = f"ALLOCGATE_RUN_{uuid.uuid4().hex}"
    child_env = {
        k: v for k, v in (os.environ if env is None else env).items() if k not in CREDENTIALS
    }
    child_env[marker_name] = "1"
    marker = f"{marker_name}=1".encode()
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise StartError(exc.strerror or str(exc)) from exc
    except ValueError as exc:
        # An argument or variable holding a NUL byte, or a variable name with '='.
        raise StartError(str(exc)) from exc
    tree = _Tree(proc.pid, marker)
    out, err = Tail(tail_bytes), Tail(tail_bytes)
    scanner = PanicScanner() if scan_panics else None
    timed_out = False
    try:
        timed_out = _drain(proc, tree, deadline, out, err, (stdout_sink, stderr_sink), scanner)
        if timed_out:
            tree.kill()
            returncode = proc.wait()
            leftovers: tuple[Leftover, ...] = ()
        else:
            returncode = proc.wait()
            found = tree.kill() if kill_leftovers else []
            leftovers = tuple(Leftover(p.pid, p.name) for p in found)
    except BaseException:
        tree.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    panic = scanner.close() if scanner is not None else None
    return TreeResult(
        returncode=returncode,
        stdout=out.text(),
        stderr=err.text(),
        seconds=time.monotonic() - started,
        timed_out=timed_out,
        leftovers=leftovers,
        panic=panic,
        stdout_bytes=out.total,
        stderr_bytes=err.total,
    )


def _drain(
    proc: subprocess.Popen[bytes],
    tree: _Tree,
    deadline: float | None,
    out: Tail,
    err: Tail,
    sinks: tuple[BinaryIO | None, BinaryIO | None],
    scanner: PanicScanner | None,
) -> bool:
    """Reads both pipes until they close; True when the deadline came first.

    Once the child has exited, pipes still open after EXIT_GRACE belong to a
    process it left behind: reading stops there instead of waiting for it.
    """
    assert proc.stdout is not None
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout.fileno(), selectors.EVENT_READ, "out")
    selector.register(proc.stderr.fileno(), selectors.EVENT_READ, "err")
    open_fds = 2
    next_scan = time.monotonic() + 0.05
    exited_at: float | None = None
    try:
        while open_fds:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return True
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= EXIT_GRACE:
                return False
            if exited_at is None and now >= next_scan:
                tree.remember()
                next_scan = now + _SCAN_EVERY
            wait = min(_SCAN_EVERY, max(next_scan - now, 0.01))
            if deadline is not None:
                wait = min(wait, deadline - now)
            if exited_at is not None:
                wait = min(wait, exited_at + EXIT_GRACE - now)
            for key, _ in selector.select(max(wait, 0.0)):
                fd = int(key.fd)
                try:
                    data = os.read(fd, _READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(fd)
                    open_fds -= 1
                elif key.data == "out":
                    out.feed(data)
                    if sinks[0] is not None:
                        sinks[0].write(data)
                else:
                    err.feed(data)
                    if sinks[1] is not None:
                        sinks[1].write(data)
                    if scanner is not None:
                        scanner.feed(data)
        if deadline is not None:
            # The pipes closed; the child may still be running without them.
            remaining = deadline - time.monotonic()
            try:
                proc.wait(timeout=max(remaining, 0.0))
            except subprocess.TimeoutExpired:
                return True
        return False
    finally:
        selector.close()
