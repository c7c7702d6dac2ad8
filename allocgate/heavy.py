"""A regressed site's heaviest stacks, each against the same caller's baseline value.

The fold keeps, per shown site, its heaviest stacks labelled by caller (``via``,
see ``FrameTable.via``); a baseline records their values. Comparing them by
label says which caller grew, not just that the site did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allocgate.callsites import Callsite

__all__ = ["StackDelta", "stack_deltas"]


@dataclass(frozen=True)
class StackDelta:
    """One heavy stack of the current profile and its caller's baseline value."""

    via: str
    current: int
    baseline: int | None
    """None: the baseline recorded no stack with this caller (a new one)."""
    frames: tuple[str, ...] = ()

    @property
    def delta(self) -> int:
        return self.current - (self.baseline or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "via": self.via,
            "current": self.current,
            "baseline": self.baseline,
            "frames": list(self.frames),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StackDelta:
        baseline = d.get("baseline")
        return cls(
            via=str(d["via"]),
            current=int(d["current"]),
            baseline=None if baseline is None else int(baseline),
            frames=tuple(str(f) for f in d.get("frames") or ()),
        )


def stack_deltas(current: Callsite | None, baseline: Callsite | None) -> tuple[StackDelta, ...]:
    """The current site's heaviest stacks, heaviest growth first (then heaviest),
    each with its own delta. A baseline without stacks (older file, or a site it
    never showed) has no stack values: then every stack is new."""
    if current is None:
        return ()
    before = {s.via: s.value for s in baseline.stacks} if baseline else {}
    deltas = [StackDelta(s.via, s.value, before.get(s.via), s.frames) for s in current.stacks]
    return tuple(sorted(deltas, key=lambda d: (-d.delta, -d.current, d.via)))
