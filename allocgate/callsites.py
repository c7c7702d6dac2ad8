"""Folding allocation stacks into callsites whose identity survives unrelated edits.

A callsite's key is the first ``depth`` *user* frames of a stack (innermost first):
allocator entry points, the Rust standard library and runtime plumbing are skipped,
addresses, symbol hashes, generic arguments, paths and line numbers are dropped, so
the same code names the same callsite in every build, run and back end.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocgate.frames import SYMBOL_HASH_RE, Frame

KEY_SEPARATOR = " ← "
"""Joins the frames of a key, innermost first: ``a ← b`` reads "a, called from b"."""

# Allocator entry points and C/runtime frames: never the code that asked for memory.
_ALLOCATOR_NAMES = frozenset(
    {
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "memalign",
        "posix_memalign",
        "aligned_alloc",
        "valloc",
        "pvalloc",
        "operator new",
        "operator new[]",
        "operator new(unsigned long)",
        "operator new[](unsigned long)",
        "_Znwm",
        "_Znam",
        "UnknownInlinedFun",
        "_start",
        "__libc_start_main",
        "__libc_start_main_impl",
        "__libc_start_call_main",
        "start_thread",
        "clone",
        "clone3",
        "main",
    }
)
_PLUMBING_PREFIXES = (
    "__rust_",
    "__rg_",
    "__rdl_",
    "__rustc::",
    "__GI_",
    "_dl_",
    "dl_",
    "heaptrack",
    "<dhat::",
)
# Crates whose frames are plumbing: the standard library, its vendored
# hashbrown, and dhat itself.
_STD_CRATES = frozenset(
    {
        "alloc",
        "core",
        "std",
        "hashbrown",
        "dhat",
        "compiler_builtins",
        "std_detect",
        "panic_unwind",
        "panic_abort",
        "backtrace",
        "gimli",
        "addr2line",
        "miniz_oxide",
        "rustc_demangle",
        "parking_lot",
        "parking_lot_core",
        "lock_api",
    }
)
_STD_FILE_RE = re.compile(
    r"(^|/)library/(alloc|core|std|proc_macro|panic_unwind|portable-simd)/"
    r"|^/rustc/[0-9a-f]+/"
    r"|^(alloc|core|std)/src/"
    r"|(^|/)hashbrown-[^/]*/"
    r"|(^|/)dhat-[^/]*/"
    r"|^\./(nptl|elf|malloc|csu|libio|stdio-common|string|misc)/"
    r"|^\.\./sysdeps/"
)
_PRIMITIVES = frozenset(
    [
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "usize",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "isize",
        "f32",
        "f64",
        "bool",
        "char",
        "str",
        "!",
        "()",
    ]
)
_CLOSURE_RE = re.compile(r"\{\{closure\}\}|\{closure#\d+\}")
_ABS_PREFIX_RES = (
    re.compile(r"^/rustc/[0-9a-f]+/"),
    re.compile(r"^.*/\.cargo/registry/src/[^/]+/"),
    re.compile(r"^.*/\.cargo/git/checkouts/[^/]+/[^/]+/"),
    re.compile(r"^.*/\.rustup/toolchains/[^/]+/lib/rustlib/src/rust/"),
)


def strip_generics(name: str) -> str:
    """Drops generic arguments: ``Vec<T>::push::<u8>`` → ``Vec::push``.

    A ``<`` that opens a qualified path (``<X as Trait>::f``, at the start of a
    segment) is kept, with the generics inside it dropped.
    """
    if "<" not in name:
        return name
    out: list[str] = []
    last = ""
    i = 0
    while True:
        j = name.find("<", i)
        if j < 0:
            out.append(name[i:])
            return "".join(out)
        if j > i:
            out.append(name[i:j])
            last = name[j - 1]
        turbofish = name.endswith("::", 0, j)
        if turbofish or (last and (last.isalnum() or last in "_>}]")):
            if turbofish and out and out[-1].endswith("::"):
                out[-1] = out[-1][:-2]
                last = out[-1][-1:] if out[-1] else ""
            i = _matching(name, j) + 1
        else:
            out.append("<")
            last = "<"
            i = j + 1


_ANGLE_RE = re.compile(r"<|(?<!-)>")


def _matching(text: str, start: int) -> int:
    """Index of the ``>`` closing the ``<`` at ``start`` (``->`` is not a bracket)."""
    depth = 0
    for m in _ANGLE_RE.finditer(text, start):
        if m.group() == "<":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.start()
    return len(text) - 1


def normalize_function(name: str) -> str:
    """The stable spelling of a function name: no hash, no generics, one closure form."""
    name = SYMBOL_HASH_RE.sub("", name.strip())
    name = _CLOSURE_RE.sub("{closure}", name)
    if "<" in name:
        name = strip_generics(name)
    return name


def normalize_path(path: str) -> str:
    """Drops the machine-specific prefix of a source path (toolchain, registry, checkout)."""
    for regex in _ABS_PREFIX_RES:
        path = regex.sub("", path)
    return path


def _root_crate(name: str) -> str | None:
    """The crate a (normalized) qualified name belongs to, judged by its self type."""
    if name.startswith("<"):
        end = _matching(name, 0)
        inner = name[1:end]
        self_type, _, trait = inner.partition(" as ")
        self_type = self_type.lstrip("&*").removeprefix("mut ").removeprefix("dyn ").strip()
        root = re.split(r"::|<|\[|\(| ", self_type, maxsplit=1)[0]
        generic_param = len(root) <= 2 and root[:1].isupper()
        if not root or root in _PRIMITIVES or generic_param or self_type[:1] in "[(":
            # Methods of primitives (`<str>::to_lowercase`) are std's; a trait
            # impl for one belongs to the trait's crate.
            return (_root_crate(trait.strip()) if trait else None) or "core"
        return root
    head = re.split(r"::|<", name, maxsplit=1)[0]
    return head or None


@dataclass(frozen=True)
class FoldOptions:
    """How stacks fold into callsites."""

    depth: int = 1
    """How many user frames make the key."""
    skip: tuple[str, ...] = ()
    """Extra regular expressions: matching frames are treated as plumbing."""
    harness: bool = False
    """A #[test] workload: libtest's frames are plumbing, and program points with
    no user frame key as ``harness.HARNESS_KEY`` (see allocgate/harness.py)."""

    def skip_regex(self) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in self.skip)) if self.skip else None


@dataclass(frozen=True)
class Callsite:
    """Allocations folded under one key, with a representative stack for people."""

    key: str
    metrics: dict[str, int]
    location: str | None = None
    """``file:line`` of the innermost user frame of the largest program point."""
    stack: tuple[str, ...] = ()
    """The largest program point's frames, allocator frames trimmed, for display."""
    points: int = 1
    """How many program points folded into this callsite."""


@dataclass
class FrameTable:
    """Per-frame facts the fold needs, computed once per profile."""

    frames: Sequence[Frame]
    user: list[str | None] = field(default_factory=list)
    """Normalized name of each frame when it is user code, else None."""
    fallback: list[str | None] = field(default_factory=list)
    """Normalized name for stacks with no user frame (allocator entry points: None)."""
    weak: list[bool] = field(default_factory=list)
    prints: list[int] | None = None
    """A content hash of each frame, built on first need (see ``fingerprint``)."""
    """Fallback names that are only a second choice (unqualified C or inlined names)."""
    harness: bool = False
    """See `FoldOptions.harness`."""

    @classmethod
    def build(cls, frames: Sequence[Frame], options: FoldOptions) -> FrameTable:
        skip = options.skip_regex()
        normalized = [normalize_function(f.function) for f in frames]
        # Normalizing dropped the generics, so a "::" left is a path separator.
        qualified = ["::" in n for n in normalized]
        plumbing = [_is_plumbing(f, n, q, skip) for f, n, q in zip(frames, normalized, qualified)]
        # Inlined frames share their physical frame's address. An unqualified
        # name (Valgrind prints inlined frames by their short DWARF name) is user
        # code when its address group holds user code or std generics compiled
        # into the user's crate (`library/...` paths), and plumbing inside a
        # precompiled std function.
        groups: dict[int, list[int]] = {}
        for i, f in enumerate(frames):
            if f.address is not None:
                groups.setdefault(f.address, []).append(i)
        user: list[str | None] = []
        fallback: list[str | None] = []
        runtime: list[int] = []
        for i, f in enumerate(frames):
            name = normalized[i]
            # An address is no name: it differs in every run (ASLR).
            unnamed = name in ("???", "") or name.startswith("0x")
            fallback.append(None if unnamed or _is_allocator(f.function, name) else name)
            if fallback[-1] is not None and not qualified[i]:
                runtime.append(i)
            if plumbing[i]:
                if f.function == "UnknownInlinedFun" and f.file and not _STD_FILE_RE.search(f.file):
                    # Valgrind names some inlined user closures only by file;
                    # the caller's generics still name the closure's owner.
                    members = groups.get(f.address, [i]) if f.address is not None else [i]
                    user.append(
                        _resolve_inlined(
                            i,
                            "{closure}",
                            members,
                            frames,
                            normalized,
                            qualified,
                            plumbing,
                            closure_only=True,
                        )
                    )
                    continue
                user.append(None)
                continue
            if qualified[i]:
                user.append(name)
                continue
            members = groups.get(f.address, [i]) if f.address is not None else [i]
            resolved = _resolve_inlined(i, name, members, frames, normalized, qualified, plumbing)
            user.append(resolved)
        if options.harness:
            from allocgate.harness import is_harness_frame

            for i, kept in enumerate(user):
                if kept is not None and is_harness_frame(_root_crate(kept), frames[i].file):
                    user[i] = None
        # Stacks without user code are named by their first qualified frame
        # (``std::io::stdio::stdout``), falling back to C names (``getdelim``).
        unqualified = [False] * len(frames)
        for i in runtime:
            unqualified[i] = True
        return cls(frames, user, fallback, unqualified, harness=options.harness)

    def key(self, stack: Iterable[int], depth: int) -> str:
        """The callsite key of one stack (frame indices, innermost first)."""
        names: list[str] = []
        first_fallback: str | None = None
        weak_fallback: str | None = None
        user = self.user
        for index in stack:
            name = user[index]
            if name is not None:
                if not names or names[-1] != name:
                    names.append(name)
                    if len(names) == depth:
                        break
            elif first_fallback is None:
                candidate = self.fallback[index]
                if candidate is None:
                    continue
                if not self.weak[index]:
                    first_fallback = candidate
                elif weak_fallback is None:
                    weak_fallback = candidate
        if names:
            return KEY_SEPARATOR.join(names)
        if self.harness:
            from allocgate.harness import HARNESS_KEY

            return HARNESS_KEY
        return first_fallback or weak_fallback or "[allocator]"

    def fingerprint(self, stack: Sequence[int]) -> int:
        """A number that depends only on the frames' text, never on their order in
        the file or their addresses: ties between equally large program points are
        broken by it, so every run picks the same representative stack."""
        if self.prints is None:
            self.prints = [
                int.from_bytes(
                    hashlib.blake2b(describe_frame(f).encode(), digest_size=8).digest(), "big"
                )
                for f in self.frames
            ]
        return sum(map(self.prints.__getitem__, stack))

    def location(self, stack: Iterable[int]) -> str | None:
        for index in stack:
            if self.user[index] is not None:
                f = self.frames[index]
                if f.file:
                    return normalize_path(f.file) + (f":{f.line}" if f.line else "")
                return None
        return None

    def display_stack(self, stack: Sequence[int], limit: int = 16) -> tuple[str, ...]:
        """Frames for people: the few std frames that show *how* the user code
        allocated (``with_capacity``, ``clone``), then the user frames down to the
        last one; allocator entry points and the runtime below ``main`` are cut."""
        users = [i for i, index in enumerate(stack) if self.user[index] is not None]
        if users:
            start = max(users[0] - 4, 0)
            end = users[-1] + 1
        else:
            start, end = 0, len(stack)
        out: list[str] = []
        for index in stack[start:end]:
            if not out and self.fallback[index] is None:
                continue
            out.append(describe_frame(self.frames[index]))
            if len(out) == limit:
                break
        return tuple(out)


_CLOSURE_ENV_RE = re.compile(r"(?<![\w:}])([A-Za-z_][\w:]*)::\{closure_env#\d+\}")


def _resolve_inlined(
    i: int,
    name: str,
    members: list[int],
    frames: Sequence[Frame],
    normalized: list[str],
    qualified: list[bool],
    plumbing: list[bool],
    closure_only: bool = False,
) -> str | None:
    """Names an unqualified (inlined) frame, or None when it is plumbing.

    Valgrind prints inlined frames by their short DWARF name. A closure is named
    after the function its environment type belongs to, which the caller's
    generic arguments spell out (``call_once<(&str), reqctx::f::{closure_env#0}>``).
    Any other short name is user code only when inlined into a user function,
    whose module path it borrows (dhat-rs prints that path; Valgrind drops it).
    """
    if name.startswith("0x"):
        return None
    if name.startswith("{closure"):
        later = [m for m in members if m > i]
        for m in later:
            env = _CLOSURE_ENV_RE.search(frames[m].function)
            if env is not None:
                owner_name = env.group(1)
                if _root_crate(owner_name) in _STD_CRATES:
                    return None
                return f"{owner_name}::{{closure}}"
    if closure_only:
        return None
    owner = next((m for m in members if qualified[m] and not plumbing[m]), None)
    if owner is None:
        return None
    module = normalized[owner].rsplit("::", 1)[0] if "::" in normalized[owner] else ""
    return f"{module}::{name}" if module else name


def describe_frame(frame: Frame) -> str:
    name = SYMBOL_HASH_RE.sub("", frame.function)
    if frame.file:
        where = normalize_path(frame.file) + (f":{frame.line}" if frame.line else "")
        return f"{name} ({where})"
    if frame.object:
        return f"{name} (in {frame.object.rsplit('/', 1)[-1]})"
    return name


def _is_allocator(raw: str, name: str) -> bool:
    return (
        raw in _ALLOCATOR_NAMES
        or name in _ALLOCATOR_NAMES
        or name.startswith(_PLUMBING_PREFIXES)
        or name.startswith(("<dhat::Alloc", "dhat::"))
        or name.startswith("<alloc::alloc::Global")
        or name.startswith("alloc::alloc::")
    )


def _is_plumbing(frame: Frame, name: str, qualified: bool, skip: re.Pattern[str] | None) -> bool:
    if _is_allocator(frame.function, name):
        return True
    if skip is not None and (skip.search(name) or skip.search(frame.function)):
        return True
    if frame.file and _STD_FILE_RE.search(frame.file):
        return True
    if name in ("???", "") or name.startswith("0x"):
        return True
    if qualified:
        return _root_crate(name) in _STD_CRATES
    return False


class Folder:
    """Sums program points into callsites; the hot loop of every loader.

    ``sites`` maps a key to ``[metric values…, points, best, best_stack,
    best_fingerprint]``:
    plain lists, so a loader's inner loop can update them without a call.
    """

    def __init__(self, table: FrameTable, metrics: Sequence[str], depth: int) -> None:
        self.table = table
        self.metrics = tuple(metrics)
        self.depth = depth
        self.sites: dict[str, list[Any]] = {}

    def add(self, stack: Sequence[int], values: Sequence[int]) -> None:
        """One program point: ``values`` in the order of ``metrics``; first is the rank."""
        key = self.table.key(stack, self.depth)
        acc = self.sites.get(key)
        n = len(self.metrics)
        if acc is None:
            self.sites[key] = [*values, 1, values[0], stack, None]
            return
        for i in range(n):
            acc[i] += values[i]
        acc[n] += 1
        if values[0] > acc[n + 1]:
            acc[n + 1] = values[0]
            acc[n + 2] = stack
            acc[n + 3] = None
        elif values[0] == acc[n + 1]:
            break_tie(self.table, acc, n + 2, stack)

    @property
    def points(self) -> int:
        n = len(self.metrics)
        return sum(acc[n] for acc in self.sites.values())

    def totals(self) -> dict[str, int]:
        return {m: sum(acc[i] for acc in self.sites.values()) for i, m in enumerate(self.metrics)}

    def callsites(self) -> tuple[Callsite, ...]:
        table = self.table
        n = len(self.metrics)
        sites = [
            Callsite(
                key=key,
                metrics=dict(zip(self.metrics, acc[:n])),
                location=table.location(acc[n + 2]),
                stack=table.display_stack(acc[n + 2]),
                points=acc[n],
            )
            for key, acc in self.sites.items()
        ]
        return tuple(sort_callsites(sites, self.metrics[0]))


def break_tie(table: FrameTable, acc: list[Any], at: int, stack: Sequence[int]) -> None:
    """Between two equally large program points keep the larger fingerprint;
    ``acc[at]`` is the kept stack, ``acc[at + 1]`` its fingerprint (or None)."""
    mine = table.fingerprint(stack)
    theirs = acc[at + 1]
    if theirs is None:
        theirs = acc[at + 1] = table.fingerprint(acc[at])
    if mine > theirs:
        acc[at] = stack
        acc[at + 1] = mine


def sort_callsites(sites: Iterable[Callsite], metric: str) -> list[Callsite]:
    """Largest first by ``metric``, ties by key, so ranks are deterministic."""
    return sorted(sites, key=lambda s: (-s.metrics.get(metric, 0), s.key))
