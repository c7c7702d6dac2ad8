"""Who blessed a workload's baseline, when, for which pull request, and why.

These are bless's keys in a baseline workload's `provenance:` mapping (the
toolchain keys beside them belong to `allocgate.provenance`). A bless writes
them afresh, so a bless without a reason leaves no earlier reason behind.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from allocgate.git import git

FIELDS = ("reason", "blessed_by", "pull_request", "head_sha", "date")


@dataclass(frozen=True)
class BlessRecord:
    """bless's part of a workload's provenance; None where it is unknown."""

    reason: str | None = None
    blessed_by: str | None = None
    """A GitHub login (from a comment) or `git config user.name` (from the CLI)."""
    pull_request: str | None = None
    """`#N` when blessed from a pull-request comment."""
    head_sha: str | None = None
    """The commit that was measured."""
    date: str | None = None
    """UTC, ISO 8601 to the second."""

    def to_dict(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BlessRecord:
        """Reads the keys it knows; the toolchain's are not its business."""
        return cls(**{k: str(data[k]) for k in FIELDS if data.get(k) is not None})

    @property
    def empty(self) -> bool:
        return not self.to_dict()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_comment(*, reason: str, login: str, pull_request: int, head_sha: str) -> BlessRecord:
    return BlessRecord(reason, login, f"#{pull_request}", head_sha, now())


def from_cli(reason: str | None, cwd: Path) -> BlessRecord:
    """`allocgate bless --reason`: the author is `git config user.name`, the commit is HEAD."""
    if reason is None:
        return BlessRecord()
    return BlessRecord(
        reason=reason,
        blessed_by=git(cwd, "config", "user.name") or None,
        head_sha=git(cwd, "rev-parse", "--verify", "HEAD") or None,
        date=now(),
    )


def describe(
    name: str, profiler: str, provenance: Mapping[str, Any], clean: Callable[[str], str] = str
) -> list[str]:
    """`allocgate show-baseline`'s lines for one workload; `clean` makes baseline text safe."""
    record = BlessRecord.from_mapping(provenance)
    lines = [f"{clean(name)} ({clean(profiler)})"]
    if record.empty:
        lines.append("  no bless recorded (blessed before provenance was kept, or by hand)")
    else:
        who = [f"blessed by {clean(record.blessed_by or 'someone unnamed')}"]
        if record.pull_request:
            who.append(f"in {clean(record.pull_request)}")
        if record.date:
            who.append(f"on {clean(record.date)}")
        if record.head_sha:
            who.append(f"at {clean(record.head_sha[:12])}")
        lines.append("  " + " ".join(who))
        if record.reason is None:
            lines.append("  no reason recorded")
        else:
            first, *rest = record.reason.split("\n")
            lines.append(f"  reason: {clean(first)}")
            lines.extend(f"          {clean(line)}" for line in rest)
    facts = [
        f"{key.replace('_', ' ')} {clean(str(value))}"
        for key, value in sorted(provenance.items())
        if key not in FIELDS
    ]
    if facts:
        lines.append("  " + " · ".join(facts))
    return lines
