"""Folding allocation stacks into callsites a Rust developer can act on.

A program point's key is taken **at the workspace boundary**: the innermost
frame whose function belongs to one of the user's workspace crates, followed by
the entry point into the dependency it called (the outermost frame between it
and the allocation that is neither the workspace's nor std's), e.g.
``scan_core::record::enrich → <serde_json::value::Value as core::clone::Clone>::clone``;
just ``scan_core::report::render`` when the workspace code allocated through std
alone. Closures and generic instantiations fold under their function. Points
with no workspace frame key by their first non-std frame and are marked
outside the workspace. ``keys: innermost`` keeps the older rule: the first
``depth`` frames that are not std or allocator plumbing.

What a frame is (see ``boundary``) is decided once per distinct frame, when a
stack first reaches it; locations and display stacks are built only for the
sites that can be shown or recorded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocgate.boundary import (
    DEPENDENCY,
    FOREIGN,
    PLUMBING,
    STD,
    WORKSPACE,
    Classifier,
    FrameFacts,
    describe,
    name_crate,
    normalize_function,
    strip_generics,
)
from allocgate.frames import Frame
from allocgate.harness import HARNESS_KEY
from allocgate.workspace import Workspace

__all__ = [
    "BOUNDARY",
    "KEYS",
    "KEY_SEPARATOR",
    "OUTSIDE_MARK",
    "Callsite",
    "FoldOptions",
    "Folder",
    "FrameTable",
    "HeavyStack",
    "display_key",
    "normalize_function",
    "sort_callsites",
    "strip_generics",
]

KEY_SEPARATOR = " ← "
"""Joins workspace frames of a deeper key, innermost first: ``a ← b`` is "a, called from b"."""
BOUNDARY = " → "
"""Joins the workspace function and the dependency entry point it called."""
KEYS = ("workspace", "innermost")
"""The kinds of key: at the workspace boundary (default), or the innermost non-std frames."""
DETAILED = 200
"""Sites per metric, by rank, that get a location and a display stack."""
HEAVIEST = 3
"""Program points per site kept by the rank metric: its heaviest stacks."""
NO_CALLER = "(no workspace caller)"
"""The ``via`` of a stack whose key frame has no further workspace frame above it."""


@dataclass(frozen=True)
class FoldOptions:
    """How stacks fold into callsites."""

    depth: int = 1
    """How many workspace (or, with innermost keys, user) frames make the key."""
    skip: tuple[str, ...] = ()
    """Extra regular expressions: matching frames are treated as plumbing."""
    keys: str = "workspace"
    """``workspace`` or ``innermost``."""
    workspace: Workspace | None = None
    """The user's crates; None: inferred from the profile's command."""
    binary: Path | None = None
    """The profiled binary, for names from its debug info; None: the program in
    the profile's command, when it still exists and matches the profile."""
    symbolize: bool = True
    """Whether to read names from the binary's debug info at all."""
    harness: bool = False
    """A #[test] workload: libtest's frames are plumbing, and program points with no
    workspace or dependency frame key as ``harness.HARNESS_KEY`` (allocgate/harness.py)."""

    def __post_init__(self) -> None:
        from allocgate.errors import ConfigError
        from allocgate.schema import regex

        # Each pattern on its own: joined, 'a)|(b' would compile and mean something else.
        for i, pattern in enumerate(self.skip):
            regex(pattern, ConfigError, "skip", f"pattern {i + 1}")

    def skip_regex(self) -> re.Pattern[str] | None:
        return re.compile("|".join(f"(?:{p})" for p in self.skip)) if self.skip else None


@dataclass(frozen=True)
class HeavyStack:
    """One of a site's heaviest stacks: which caller (``via``) and how much."""

    via: str
    """The workspace function that called the key's function (outward), or NO_CALLER."""
    value: int
    """The rank metric (the fold's first) of the program points with this ``via``
    among the site's heaviest."""
    frames: tuple[str, ...] = ()
    """For display, as ``Callsite.stack``; a baseline keeps none."""


@dataclass(frozen=True)
class Callsite:
    """Allocations folded under one key, with a representative stack for people."""

    key: str
    metrics: dict[str, int]
    location: str | None = None
    """``file:line`` of the key's frame in the largest program point."""
    stack: tuple[str, ...] = ()
    """The largest program point's frames, allocator frames trimmed, for display."""
    points: int = 1
    """How many program points folded into this callsite."""
    outside: bool = False
    """No frame of the workspace: keyed by its first non-std frame."""
    unresolved: bool = False
    """An inlined frame below the key could not be named (no debug info at
    hand): the allocation may belong to it rather than to the key's function."""
    stacks: tuple[HeavyStack, ...] = ()
    """Up to HEAVIEST stacks by the rank metric, heaviest first, one per ``via``
    (only for sites that are shown)."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One frame-table entry (and the inline chain it stands for), summarised."""

    workspace: tuple[str, ...]
    """Workspace function names, innermost first, consecutive repeats dropped."""
    entry: str | None
    """The outermost dependency frame before the first workspace frame."""
    dependency: str | None
    """The outermost dependency frame (used when there is no workspace frame)."""
    user: tuple[str, ...]
    """Innermost keys: workspace and dependency names, innermost first."""
    fallback: tuple[str | None, str | None, str | None]
    """First dependency, std and foreign names: keys of points outside the workspace."""
    unresolved_before: bool
    """An unnamed Rust frame (short name, unknown crate) comes before any workspace frame."""


_NOTHING = _Step((), None, None, (), (None, None, None), False)
_UNSEEN = _Step((), None, None, (), (None, None, None), False)
"""Marks a frame not classified yet (compared by identity)."""


class FrameTable:
    """Per-frame facts the fold needs, computed once per frame on first use."""

    def __init__(
        self,
        frames: Sequence[Frame],
        options: FoldOptions,
        workspace: Workspace | None,
        expanded: Sequence[tuple[Frame, ...]] | None = None,
    ) -> None:
        self.frames = frames
        self.expanded = expanded
        self.classifier = Classifier(workspace, options.skip_regex())
        self.workspace_keys = options.keys == "workspace" and bool(
            workspace is not None and workspace.crates
        )
        self.steps: list[_Step | None] = [None] * len(frames)
        self.fast: list[Any] = [_UNSEEN] * len(frames)
        self.flags: dict[str, tuple[bool, bool]] = {}
        self._joined: dict[tuple[str, str], str] = {}
        self._facts: dict[Frame, FrameFacts] = {}
        self._prints: list[int | None] = [None] * len(frames)
        self.harness = options.harness

    def chain(self, index: int) -> tuple[Frame, ...]:
        """The frames one table entry stands for (more than one once symbolized)."""
        return self.expanded[index] if self.expanded is not None else (self.frames[index],)

    def facts(self, frame: Frame) -> FrameFacts:
        found = self._facts.get(frame)
        if found is None:
            found = self._facts[frame] = self.classifier.facts(frame)
            if self.harness and found.kind != WORKSPACE:
                from allocgate.harness import is_harness_frame

                if is_harness_frame(name_crate(found.name), frame.file):
                    found = self._facts[frame] = FrameFacts(PLUMBING, found.name, False)
        return found

    def step(self, index: int) -> _Step:
        step = self.steps[index]
        if step is None:
            step = self.steps[index] = self._summarise(self.chain(index))
        return step

    def _summarise(self, chain: tuple[Frame, ...]) -> _Step:
        if not chain:
            return _NOTHING
        workspace: list[str] = []
        user: list[str] = []
        entry = dependency = None
        first: list[str | None] = [None, None, None]
        unresolved = False
        # Harness frames (a #[test] workload's libtest) are remapped by `facts`.
        classify = self.facts if self.harness else self.classifier.facts
        for frame in chain:
            facts = classify(frame)
            kind = facts.kind
            if kind == PLUMBING:
                continue
            if kind == WORKSPACE:
                if not workspace:
                    entry = dependency
                if not workspace or workspace[-1] != facts.name:
                    workspace.append(facts.name)
            elif kind == DEPENDENCY:
                dependency = facts.name
                if first[0] is None:
                    first[0] = facts.name
            elif kind == STD:
                if first[1] is None:
                    first[1] = facts.name
            elif kind == FOREIGN:
                if first[2] is None:
                    first[2] = facts.name
                # A short name in Rust source that is neither a generic
                # instantiation nor a closure: an inlined function whose crate
                # is unknown (no debug info at hand); it may be the user's.
                if (
                    not workspace
                    and frame.file
                    and frame.file.endswith(".rs")
                    and "<" not in frame.function
                    and "{" not in frame.function
                ):
                    unresolved = True
            if kind in (WORKSPACE, DEPENDENCY) and (not user or user[-1] != facts.name):
                user.append(facts.name)
        return _Step(
            tuple(workspace),
            entry,
            None if workspace else dependency,
            tuple(user),
            (first[0], first[1], first[2]),
            unresolved,
        )

    def key(self, stack: Iterable[int], depth: int = 1) -> str:
        """The callsite key of one stack (frame indices, innermost first)."""
        if self.workspace_keys:
            return self._boundary_key(stack, depth)
        return self._innermost_key(stack, depth)

    def passing(self, index: int) -> _Step | None:
        """The entry's step, or None when a depth-1 boundary key walks straight
        past it (no workspace or dependency frame, nothing unresolved): most of
        the frames above the user's code (allocator, std internals)."""
        step = self.step(index)
        if step.workspace or step.dependency is not None or step.unresolved_before:
            self.fast[index] = step
            return step
        self.fast[index] = None
        return None

    def _join(self, pair: tuple[str, str]) -> str:
        key = self._joined[pair] = f"{pair[0]}{BOUNDARY}{pair[1]}"
        return key

    def _boundary_key(self, stack: Iterable[int], depth: int) -> str:
        steps = self.steps
        names: list[str] = []
        dependency: str | None = None
        entry: str | None = None
        unresolved = False
        fallback: list[str | None] = [None, None, None]
        for index in stack:
            step = steps[index] or self.step(index)
            if step.workspace:
                if not names:
                    entry = step.entry or dependency
                    unresolved = unresolved or step.unresolved_before
                if _extend(names, step.workspace, depth):
                    break
                continue
            if names:
                continue
            unresolved = unresolved or step.unresolved_before
            if step.dependency is not None:
                dependency = step.dependency
            _first(fallback, step.fallback)
        if names:
            key = KEY_SEPARATOR.join(names)
            if entry is not None:
                key = f"{key}{BOUNDARY}{entry}"
            if unresolved or key not in self.flags:
                self.flags[key] = (False, unresolved)
            return key
        if self.harness and fallback[0] is None:
            return HARNESS_KEY
        key = fallback[0] or fallback[1] or fallback[2] or "[allocator]"
        self.flags.setdefault(key, (True, False))
        return key

    def _innermost_key(self, stack: Iterable[int], depth: int = 1) -> str:
        steps = self.steps
        names: list[str] = []
        fallback: list[str | None] = [None, None, None]
        for index in stack:
            step = steps[index] or self.step(index)
            if _extend(names, step.user, depth):
                break
            if not names:
                _first(fallback, step.fallback)
        if names:
            key = KEY_SEPARATOR.join(names)
            self.flags.setdefault(key, (False, False))
            return key
        if self.harness and fallback[0] is None:
            return HARNESS_KEY
        key = fallback[1] or fallback[0] or fallback[2] or "[allocator]"
        self.flags.setdefault(key, (True, False))
        return key

    # --- for the sites that are shown ------------------------------------------

    def fingerprint(self, stack: Sequence[int]) -> int:
        """A number that depends only on the frames' text, never on their order in
        the file or their addresses: ties between equally large program points are
        broken by it, so every run picks the same representative stack."""
        prints = self._prints
        total = 0
        for index in stack:
            value = prints[index]
            if value is None:
                text = "|".join(describe(f, self.classifier) for f in self.chain(index))
                digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
                value = prints[index] = int.from_bytes(digest, "big")
            total += value
        return total

    def _flat(self, stack: Sequence[int]) -> list[Frame]:
        return [frame for index in stack for frame in self.chain(index)]

    def location(self, stack: Sequence[int]) -> str | None:
        """Where the key's frame is: the first workspace frame (innermost keys:
        the first user frame; outside the workspace: the first named frame)."""
        frames = self._flat(stack)
        order = (
            ((WORKSPACE,), (DEPENDENCY,), (STD,), (FOREIGN,))
            if self.workspace_keys
            else ((WORKSPACE, DEPENDENCY), (STD,), (FOREIGN,))
        )
        for kinds in order:
            for frame in frames:
                if self.facts(frame).kind in kinds:
                    return self.classifier.location(frame)
        return None

    def via(self, stack: Sequence[int], depth: int) -> str:
        """The caller that tells a site's stacks apart: the first workspace (innermost
        keys: user) function outward of the ``depth`` that make the key. Depends on
        the stack alone, so the same caller has the same label in every profile."""
        names: list[str] = []
        for index in stack:
            step = self.step(index)
            if _extend(names, step.workspace if self.workspace_keys else step.user, depth + 1):
                return names[depth]
        return NO_CALLER

    def display_stack(self, stack: Sequence[int], limit: int = 16) -> tuple[str, ...]:
        """Frames for people: the few std frames that show *how* the user code
        allocated (``with_capacity``, ``clone``), then the frames down to the last
        workspace one; allocator entry points and the runtime below ``main`` are cut."""
        frames = self._flat(stack)
        kinds = [self.facts(f).kind for f in frames]
        mine = [i for i, k in enumerate(kinds) if k == WORKSPACE] or [
            i for i, k in enumerate(kinds) if k == DEPENDENCY
        ]
        if mine:
            start, end = max(mine[0] - 4, 0), mine[-1] + 1
        else:
            start, end = 0, len(frames)
        out: list[str] = []
        for frame, kind in zip(frames[start:end], kinds[start:end]):
            if not out and kind == PLUMBING:
                continue
            out.append(describe(frame, self.classifier))
            if len(out) == limit:
                break
        return tuple(out)


def _extend(names: list[str], more: Iterable[str], depth: int) -> bool:
    """Appends names (consecutive repeats dropped) until there are ``depth``;
    whether there are."""
    for name in more:
        if not names or names[-1] != name:
            names.append(name)
            if len(names) == depth:
                return True
    return False


def _first(found: list[str | None], candidates: Iterable[str | None]) -> None:
    """Keeps, per position, the first name seen."""
    for i, candidate in enumerate(candidates):
        if candidate is not None and found[i] is None:
            found[i] = candidate


class _Site:
    """One callsite's running sums and its heaviest program points."""

    __slots__ = ("floor", "heavy", "points", "values")

    def __init__(self, values: list[int], stack: Sequence[int]) -> None:
        self.values = values
        self.points = 1
        self.heavy: list[tuple[int, int | None, Sequence[int]]] = [(values[0], None, stack)]
        """(rank value, fingerprint once a tie needed it, stack), heaviest first."""
        self.floor = -1
        """The lightest kept rank value once HEAVIEST are kept: lighter points
        are passed over with one comparison (the hot loop's only extra cost)."""

    @property
    def stack(self) -> Sequence[int]:
        return self.heavy[0][2]

    def offer(self, table: FrameTable, rank: int, stack: Sequence[int]) -> None:
        """Keeps ``stack`` when it is among the HEAVIEST; ties by fingerprint, so
        every run keeps the same stacks whatever the order of the points."""
        heavy = self.heavy
        mine: int | None = None
        at = len(heavy)
        for i, (value, print_, kept) in enumerate(heavy):
            if rank > value:
                at = i
                break
            if rank == value:
                if mine is None:
                    mine = table.fingerprint(stack)
                if print_ is None:
                    print_ = table.fingerprint(kept)
                    heavy[i] = (value, print_, kept)
                if mine > print_:
                    at = i
                    break
        if at == HEAVIEST:
            return
        heavy.insert(at, (rank, mine, stack))
        if len(heavy) > HEAVIEST:
            heavy.pop()
        if len(heavy) == HEAVIEST:
            self.floor = heavy[-1][0]


class Folder:
    """Sums a stream of program points into callsites."""

    def __init__(self, table: FrameTable, metrics: Sequence[str], depth: int) -> None:
        self.table = table
        self.metrics = tuple(metrics)
        self.depth = depth
        self.sites: dict[str, _Site] = {}

    def add(self, stack: Sequence[int], values: Sequence[int]) -> None:
        """One program point: ``values`` in the order of ``metrics``; first is the rank."""
        self.add_all(((stack, values),))

    def add_all(self, points: Iterable[tuple[Sequence[int], Sequence[int]]]) -> None:
        """Program points as the loader reads them: (frame indices, metric values)."""
        self.add_batches((points,))

    def add_batches(self, batches: Iterable[Iterable[tuple[Sequence[int], Sequence[int]]]]) -> None:
        """The stream of program points, in batches as a loader decodes them.

        The hot loop of every loader. With workspace keys at depth 1 the key
        search is inlined: per program point only the frames up to the first
        workspace frame are looked at, most with one list lookup (see
        FrameTable.passing)."""
        table = self.table
        depth = self.depth
        inline = table.workspace_keys and depth == 1
        fast = table.fast
        flags = table.flags
        joined = table._joined
        sites = self.sites
        metric_range = range(len(self.metrics))
        for batch in batches:
            for stack, values in batch:
                if inline:
                    dependency = None
                    unresolved = False
                    for index in stack:
                        step = fast[index]
                        if step is None:
                            continue
                        if step is _UNSEEN:
                            step = table.passing(index)
                            if step is None:
                                continue
                        if step.workspace:
                            entry = step.entry or dependency
                            if entry is None:
                                key = step.workspace[0]
                            else:
                                pair = (step.workspace[0], entry)
                                key = joined.get(pair) or table._join(pair)
                            if unresolved or step.unresolved_before:
                                flags[key] = (False, True)
                            elif key not in flags:
                                flags[key] = (False, False)
                            break
                        if step.dependency is not None:
                            dependency = step.dependency
                        if step.unresolved_before:
                            unresolved = True
                    else:
                        key = table._boundary_key(stack, 1)
                else:
                    key = table.key(stack, depth)
                site = sites.get(key)
                if site is None:
                    sites[key] = _Site(list(values), stack)
                    continue
                sums = site.values
                for i in metric_range:
                    sums[i] += values[i]
                site.points += 1
                if values[0] >= site.floor:
                    site.offer(table, values[0], stack)

    @property
    def points(self) -> int:
        return sum(site.points for site in self.sites.values())

    def totals(self) -> dict[str, int]:
        return {
            m: sum(site.values[i] for site in self.sites.values())
            for i, m in enumerate(self.metrics)
        }

    def callsites(self) -> tuple[Callsite, ...]:
        table = self.table
        keys = list(self.sites)
        # Locations and stacks only for the sites a report or baseline can hold.
        detailed: set[str] = set()
        for i in range(len(self.metrics)):
            ranked = sorted(keys, key=lambda k: (-self.sites[k].values[i], k))
            detailed.update(ranked[:DETAILED])
        out = []
        for key, site in self.sites.items():
            outside, unresolved = table.flags.get(key, (False, False))
            show = key in detailed
            out.append(
                Callsite(
                    key=key,
                    metrics=dict(zip(self.metrics, site.values)),
                    location=table.location(site.stack) if show else None,
                    stack=table.display_stack(site.stack) if show else (),
                    points=site.points,
                    outside=outside,
                    unresolved=unresolved,
                    stacks=self._heavy_stacks(site) if show else (),
                )
            )
        return tuple(sort_callsites(out, self.metrics[0]))

    def _heavy_stacks(self, site: _Site) -> tuple[HeavyStack, ...]:
        """The kept points by caller: points with the same ``via`` add up and show
        the heaviest one's frames."""
        by_via: dict[str, list[Any]] = {}
        for value, _, stack in site.heavy:
            via = self.table.via(stack, self.depth)
            if via in by_via:
                by_via[via][0] += value
            else:
                by_via[via] = [value, stack]
        return tuple(
            HeavyStack(via, value, self.table.display_stack(stack))
            for via, (value, stack) in sorted(by_via.items(), key=lambda kv: (-kv[1][0], kv[0]))
        )


OUTSIDE_MARK = " (outside the workspace)"
"""Follows the key of a site with no workspace frame, in every report."""


def display_key(key: str, outside: bool) -> str:
    """A key as reports show it: marked when it lies outside the workspace."""
    return key + OUTSIDE_MARK if outside else key


def sort_callsites(sites: Iterable[Callsite], metric: str) -> list[Callsite]:
    """Largest first by ``metric``, ties by key, so ranks are deterministic."""
    return sorted(sites, key=lambda s: (-s.metrics.get(metric, 0), s.key))
