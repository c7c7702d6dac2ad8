"""Folding stacks that share their outer frames (heaptrack's trace tree) node by node.

A site's stack is its node's frames followed by its parent's stack. Spelling
every site's stack out costs the sum of their lengths, which deep recursion
or long inlined chains make quadratic in the trace's size (a 34 KB trace can
hold 300 million frames). Everything the fold needs is had node by node:

* the key depends on a few entries of the stack only (the workspace frames
  that make it, the dependency entry before them, the first fallback names,
  the first unresolved frame): the *condensed* stack of a node is
  ``condense(entries(node) + condensed(parent))``, memoized per node, and
  ``FrameTable.key`` gives it the key of the whole stack;
* the tie-break fingerprint is a sum over the entries:
  ``fingerprint(entries(node)) + fingerprint(parent)``;
* location and display stack look at the frames from four before the key's
  first frame to sixteen after it, at whether one of its kind comes later,
  and at which kinds of frame the stack holds: each site gets a short stack
  with the same location and display stack (``display_equivalent``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from allocgate.boundary import DEPENDENCY, FOREIGN, PLUMBING, STD, WORKSPACE
from allocgate.callsites import Folder, FrameTable, extend_names

# display_stack: up to four frames before the first key frame, sixteen in all.
_BEFORE = 4
_SHOWN = 16


class TreeFold:
    """Per-node facts of one trace tree under one frame table, each computed once."""

    def __init__(
        self,
        entries: Sequence[tuple[int, ...]],
        parents: Sequence[int],
        table: FrameTable,
        depth: int,
    ) -> None:
        self.entries = entries
        self.parents = parents
        self.table = table
        self.depth = depth
        size = len(entries)
        self._condensed: list[tuple[int, ...] | None] = [None] * size
        self._condensed[0] = ()
        self._stacks: list[_NodeStack | None] = [None] * size
        self._prints: list[int | None] = [None] * size
        self._prints[0] = 0
        self._kinds: list[int | None] = [None] * size
        self._kinds[0] = 0
        self._entry_kinds: dict[int, int] = {}
        self._node_bits: dict[int, int] = {0: 0}
        self._node_frames: dict[int, int] = {}

    # --- memoized along the path to the root ---------------------------------------

    def _path(self, memo: Sequence[object], node: int) -> list[int]:
        """Nodes from `node` up to the first whose value is known (that one last)."""
        path = [node]
        parents = self.parents
        while memo[node] is None:
            node = parents[node]
            path.append(node)
        return path

    def condensed(self, node: int) -> tuple[int, ...]:
        memo = self._condensed
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        for n in reversed(path[:-1]):
            value = memo[n] = self._condense((*self.entries[n], *value))
        return value

    def fingerprint(self, node: int) -> int:
        memo = self._prints
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        for n in reversed(path[:-1]):
            value = memo[n] = self.table.fingerprint(self.entries[n]) + value
        return value

    def kinds(self, node: int) -> int:
        """The kinds of frame in the node's stack, one bit per kind."""
        memo = self._kinds
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        for n in reversed(path[:-1]):
            for index in self.entries[n]:
                value |= self._entry_kind_bits(index)
            memo[n] = value
        return value

    def _entry_kind_bits(self, index: int) -> int:
        bits = self._entry_kinds.get(index)
        if bits is None:
            bits = 0
            for frame in self.table.chain(index):
                bits |= 1 << self.table.facts(frame).kind
            self._entry_kinds[index] = bits
        return bits

    def node_stack(self, node: int) -> _NodeStack:
        """The node's condensed stack, as the fold takes it (one per node)."""
        stack = self._stacks[node]
        if stack is None:
            stack = self._stacks[node] = _NodeStack(self.condensed(node))
            stack.node = node
        return stack

    def node_fingerprint(self, stack: Sequence[int]) -> int:
        """The whole stack's fingerprint, for a node's condensed stack."""
        assert isinstance(stack, _NodeStack)
        return self.fingerprint(stack.node)

    # --- the entries FrameTable.key looks at -------------------------------------------

    def _condense(self, stack: Iterable[int]) -> tuple[int, ...]:
        if self.table.workspace_keys:
            return self._condense_boundary(stack)
        return self._condense_innermost(stack)

    def _condense_boundary(self, stack: Iterable[int]) -> tuple[int, ...]:
        """Until the first workspace entry: the first entry with each fallback
        name, the first unresolved one and the last with a dependency; then the
        workspace entries that add names, up to `depth` names."""
        step = self.table.step
        out: list[int] = []
        names: list[str] = []
        found = [False, False, False]
        unresolved = False
        dependency_only: int | None = None  # where out holds an entry kept for its dependency only
        for index in stack:
            s = step(index)
            if s.workspace:
                before = len(names)
                done = extend_names(names, s.workspace, self.depth)
                if len(names) > before:
                    out.append(index)
                if done:
                    break
                continue
            if names:
                continue
            keep = False
            if s.unresolved_before and not unresolved:
                unresolved = keep = True
            for i, name in enumerate(s.fallback):
                if name is not None and not found[i]:
                    found[i] = keep = True
            if s.dependency is not None:
                # Only the last dependency before the workspace counts.
                if dependency_only is not None:
                    del out[dependency_only]
                dependency_only = None if keep else len(out)
                keep = True
            if keep:
                out.append(index)
        return tuple(out)

    def _condense_innermost(self, stack: Iterable[int]) -> tuple[int, ...]:
        """The entries that add user names, up to `depth`; before the first,
        the first entry with each fallback name."""
        step = self.table.step
        out: list[int] = []
        names: list[str] = []
        found = [False, False, False]
        for index in stack:
            s = step(index)
            before = len(names)
            done = extend_names(names, s.user, self.depth)
            if len(names) > before:
                out.append(index)
            if done:
                break
            if not names:
                keep = False
                for i, name in enumerate(s.fallback):
                    if name is not None and not found[i]:
                        found[i] = keep = True
                if keep:
                    out.append(index)
        return tuple(out)

    # --- for the sites that are shown --------------------------------------------------

    def _later(self, node: int, position: int, bits: int) -> bool:
        """Whether a frame of one of `bits`' kinds comes after the entry at `position`."""
        rest = self.entries[node][position + 1 :]
        return any(self._entry_kind_bits(i) & bits for i in rest) or bool(
            self.kinds(self.parents[node]) & bits
        )

    def display_equivalent(self, node: int) -> tuple[int, ...]:
        """A short stack whose location and display stack are the whole stack's
        (FrameTable.location, FrameTable.display_stack)."""
        kinds = self.kinds(node)
        workspace, dependency = 1 << WORKSPACE, 1 << DEPENDENCY
        mine = workspace if kinds & workspace else dependency if kinds & dependency else 0
        if not mine:
            return self._leading(node, kinds)
        # Innermost keys locate at the first workspace *or* dependency frame.
        located = 0 if self.table.workspace_keys else (workspace | dependency) & ~mine
        first_located: int | None = None
        # Whole nodes without a frame of the key's kind are passed over; the
        # last few are kept for the four frames shown before the key's.
        passed: list[int] = []
        n = node
        while not self._own_bits(n) & mine:
            if first_located is None and self._own_bits(n) & located:
                first_located = self._first_of(self.entries[n], located)
            passed.append(n)
            while len(passed) > 1 and sum(map(self._frame_count, passed[1:])) >= _BEFORE:
                passed.pop(0)
            n = self.parents[n]
        entries = self.entries[n]
        at = next(i for i, e in enumerate(entries) if self._entry_kind_bits(e) & mine)
        if first_located is None and located:
            first_located = self._first_of(entries[:at], located)
        before = [e for m in passed for e in self.entries[m]] + list(entries[:at])
        window: list[int] = []
        frames = 0
        for e in reversed(before):
            if frames >= _BEFORE:
                break
            window.insert(0, e)
            frames += len(self.table.chain(e))
        first = entries[at]
        out = window
        if first_located is not None and first_located not in out:
            # Ahead of the window, so before the displayed frames (see above).
            out.insert(0, first_located)
        out.append(first)
        facts = self.table.facts
        chain = self.table.chain(first)
        count = len(chain) - next(i for i, f in enumerate(chain) if (1 << facts(f).kind) & mine)
        last = (n, at)
        for index, m, position in self._walk_from(n, at + 1):
            if count >= _SHOWN + 1:
                break
            out.append(index)
            count += len(self.table.chain(index))
            last = (m, position)
        else:
            return tuple(out)
        # A later frame of the kind keeps the display running to its end; the
        # key's entry stands in for it (never reached: sixteen frames come first).
        if self._later(*last, mine):
            out.append(first)
        return tuple(out)

    def _own_bits(self, node: int) -> int:
        bits = self._node_bits.get(node)
        if bits is None:
            bits = 0
            for index in self.entries[node]:
                bits |= self._entry_kind_bits(index)
            self._node_bits[node] = bits
        return bits

    def _frame_count(self, node: int) -> int:
        count = self._node_frames.get(node)
        if count is None:
            count = self._node_frames[node] = sum(
                len(self.table.chain(index)) for index in self.entries[node]
            )
        return count

    def _first_of(self, entries: Iterable[int], bits: int) -> int | None:
        return next((e for e in entries if self._entry_kind_bits(e) & bits), None)

    def _walk_from(self, node: int, position: int) -> Iterator[tuple[int, int, int]]:
        """(entry, its node, its position) from `position` in `node` outwards."""
        while node:
            entries = self.entries[node]
            for at in range(position, len(entries)):
                yield entries[at], node, at
            node = self.parents[node]
            position = 0

    def _leading(self, node: int, kinds: int) -> tuple[int, ...]:
        """No workspace or dependency frame: shown are the first sixteen frames
        after the leading plumbing; located is the first std, else foreign, frame."""
        facts = self.table.facts
        want = 1 << STD if kinds & (1 << STD) else 1 << FOREIGN if kinds & (1 << FOREIGN) else 0
        out: list[int] = []
        shown = 0
        located = not want
        walk = self._walk_from(node, 0)
        for index, _, _ in walk:
            out.append(index)
            for frame in self.table.chain(index):
                kind = facts(frame).kind
                if shown or kind != PLUMBING:
                    shown += 1
                if (1 << kind) & want:
                    located = True
            if shown >= _SHOWN:
                break
        if not located:
            for index, _, _ in walk:
                if self._entry_kind_bits(index) & want:
                    out.append(index)
                    break
        return tuple(out)


def fold_tree(
    fold: TreeFold,
    points: Iterable[tuple[int, Sequence[int]]],
    metrics: Sequence[str],
) -> Folder:
    """Sums (node, metric values) points as Folder sums whole stacks: each point
    goes in as its node's condensed stack (the same key), ties are broken by the
    whole stack's fingerprint, and each site keeps its heaviest points' display
    equivalents as its stacks."""
    folder = Folder(fold.table, metrics, fold.depth, fingerprint=fold.node_fingerprint)
    folder.add_batches((((fold.node_stack(node), values) for node, values in points),))
    for site in folder.sites.values():
        heavy = site.heavy
        for i, (value, print_, stack) in enumerate(heavy):
            assert isinstance(stack, _NodeStack)
            heavy[i] = (value, print_, _DisplayStack(fold, stack.node))
    return folder


class _NodeStack(tuple[int, ...]):
    """A node's condensed stack, which knows its node."""

    node: int


class _DisplayStack(Sequence[int]):
    """A site's display equivalent, made when first read: only the sites a
    report or baseline can hold are ever shown (Folder.callsites)."""

    def __init__(self, fold: TreeFold, node: int) -> None:
        self._fold = fold
        self._node = node
        self._stack: tuple[int, ...] | None = None

    def _get(self) -> tuple[int, ...]:
        if self._stack is None:
            self._stack = self._fold.display_equivalent(self._node)
        return self._stack

    def __len__(self) -> int:
        return len(self._get())

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        return self._get()[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self._get())
