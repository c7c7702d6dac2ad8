"""Folding stacks that share their outer frames (heaptrack's trace tree) node by node.

A site's stack is its node's frames followed by its parent's stack. Spelling
every site's stack out costs the sum of their lengths, which deep recursion
or long inlined chains make quadratic in the trace's size (a 34 KB trace can
hold 300 million frames). Everything the fold needs is had node by node:

* the key depends on a few frames of the stack only (the first ``depth``
  user frames and the first fallback names): the *condensed* stack of a node
  is ``condense(frames(node) + condensed(parent))``, memoized per node, and
  its key is the key of the whole stack;
* the tie-break fingerprint is a sum over the frames: ``fp(frames(node)) +
  fp(parent)``;
* location and display stack look at the frames from four before the first
  user frame to sixteen after it, and at whether a user frame comes later:
  each kept site gets an equivalent short stack (``display_equivalent``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from allocgate.callsites import Folder, FrameTable

# display_stack: up to four frames before the first user frame, sixteen in all.
_BEFORE = 4
_SHOWN = 16


class TreeFold:
    """Per-node facts of one trace tree under one frame table, computed once each."""

    def __init__(
        self,
        frames: Sequence[tuple[int, ...]],
        parents: Sequence[int],
        table: FrameTable,
        depth: int,
    ) -> None:
        self.frames = frames
        self.parents = parents
        self.table = table
        self.depth = depth
        size = len(frames)
        self._condensed: list[tuple[int, ...] | None] = [None] * size
        self._condensed[0] = ()
        self._keys: list[str | None] = [None] * size
        self._prints: list[int | None] = [None] * size
        self._prints[0] = 0
        self._has_user: list[bool | None] = [None] * size
        self._has_user[0] = False

    def _path(self, memo: Sequence[object], node: int) -> list[int]:
        """Nodes from `node` up to (not including) the first with a memoized value."""
        path = []
        parents = self.parents
        while memo[node] is None:
            path.append(node)
            node = parents[node]
        path.append(node)
        return path

    def condensed(self, node: int) -> tuple[int, ...]:
        memo = self._condensed
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        for n in reversed(path[:-1]):
            value = memo[n] = self._condense(self.frames[n] + value)
        return value

    def _condense(self, stack: Iterable[int]) -> tuple[int, ...]:
        """The frames FrameTable.key looks at, in order: the first `depth` user
        frames (a repeat of the previous user name skipped, as the key does),
        the first strong and the first weak fallback frame."""
        user = self.table.user
        fallback = self.table.fallback
        weak = self.table.weak
        out: list[int] = []
        names = 0
        last: str | None = None
        strong_seen = weak_seen = False
        for index in stack:
            name = user[index]
            if name is not None:
                if names < self.depth and name != last:
                    out.append(index)
                    names += 1
                    last = name
            elif fallback[index] is not None:
                if weak[index]:
                    if not weak_seen:
                        out.append(index)
                        weak_seen = True
                elif not strong_seen:
                    out.append(index)
                    strong_seen = True
        return tuple(out)

    def key(self, node: int) -> str:
        key = self._keys[node]
        if key is None:
            key = self._keys[node] = self.table.key(self.condensed(node), self.depth)
        return key

    def fingerprint(self, node: int) -> int:
        memo = self._prints
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        for n in reversed(path[:-1]):
            value = memo[n] = self.table.fingerprint(self.frames[n]) + value
        return value

    def has_user(self, node: int) -> bool:
        memo = self._has_user
        path = self._path(memo, node)
        value = memo[path[-1]]
        assert value is not None
        user = self.table.user
        for n in reversed(path[:-1]):
            value = memo[n] = value or any(user[i] is not None for i in self.frames[n])
        return value

    def _walk(self, node: int) -> Iterable[tuple[int, int, int]]:
        """(frame, its node, its position in that node), innermost first."""
        while node:
            for position, index in enumerate(self.frames[node]):
                yield index, node, position
            node = self.parents[node]

    def display_equivalent(self, node: int) -> tuple[int, ...]:
        """A short stack whose location and display stack are the whole stack's."""
        user = self.table.user
        fallback = self.table.fallback
        before: list[int] = []
        if not self.has_user(node):
            # Shown: the first sixteen frames after the leading allocator frames.
            out: list[int] = []
            for index, _, _ in self._walk(node):
                if out or fallback[index] is not None:
                    out.append(index)
                    if len(out) == _SHOWN:
                        break
            return tuple(out)
        walk = iter(self._walk(node))
        for index, _, _ in walk:
            if user[index] is not None:
                first = index
                break
            before = [*before[-(_BEFORE - 1) :], index]
        else:  # pragma: no cover - has_user said there is one
            raise AssertionError("no user frame")
        after: list[int] = []
        at = (node, 0)
        for index, n, position in walk:
            after.append(index)
            at = (n, position + 1)
            if len(after) == _SHOWN:
                break
        else:
            return (*before, first, *after)
        # A user frame further down keeps the display running to its end;
        # the first user frame stands in for it (never reached: 16 come first).
        n, position = at
        later = any(user[i] is not None for i in self.frames[n][position:]) or self.has_user(
            self.parents[n]
        )
        return (*before, first, *after, *((first,) if later else ()))


def fold_tree(
    fold: TreeFold,
    points: Iterable[tuple[int, Sequence[int]]],
    metrics: Sequence[str],
) -> Folder:
    """Sums (node, metric values) points into a Folder, as Folder.add would sum
    their whole stacks; the kept stacks are display equivalents."""
    folder = Folder(fold.table, metrics, fold.depth)
    sites = folder.sites
    n = len(folder.metrics)
    for node, values in points:
        key = fold.key(node)
        acc = sites.get(key)
        if acc is None:
            sites[key] = [*values, 1, values[0], node, None]
            continue
        for i in range(n):
            acc[i] += values[i]
        acc[n] += 1
        if values[0] > acc[n + 1]:
            acc[n + 1] = values[0]
            acc[n + 2] = node
            acc[n + 3] = None
        elif values[0] == acc[n + 1]:
            # Folder's tie-break: the larger fingerprint of the whole stack wins.
            mine = fold.fingerprint(node)
            theirs = acc[n + 3]
            if theirs is None:
                theirs = acc[n + 3] = fold.fingerprint(acc[n + 2])
            if mine > theirs:
                acc[n + 2] = node
                acc[n + 3] = mine
    for acc in sites.values():
        acc[n + 2] = fold.display_equivalent(acc[n + 2])
    return folder
