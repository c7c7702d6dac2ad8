"""A ``tests:`` workload's tests shown together: one heading per crate's tests, a
one-line summary ("37 tests within budget, 1 regressed"), and the details only
for the tests that moved. Shared by the text and markdown reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from allocgate.compare import UNCHANGED
from allocgate.report import WorkloadResult
from allocgate.test_workloads import GONE, NEW, renamed_pairs


@dataclass(frozen=True)
class Section:
    """One plain workload (``group`` None), or every reported test of one workload."""

    group: str | None
    results: tuple[WorkloadResult, ...]

    @property
    def verdict(self) -> str:
        order = {"pass": 0, "regressed": 1, "error": 2}
        return max((r.verdict for r in self.results), key=order.__getitem__, default="pass")

    @property
    def moved(self) -> tuple[WorkloadResult, ...]:
        """Tests worth a table: regressed, failed, or with any callsite that changed."""
        return tuple(r for r in self.results if r.status is None and _moved(r))

    @property
    def summary(self) -> str:
        """``6 tests: 5 within budget, 1 regressed; 1 new`` (zero counts left out)."""
        return test_summary(self.results)

    def notes(self) -> list[str]:
        """One line per new or gone test; a rename (one new, one gone) in one line."""
        new = [(r.name, self.group or "") for r in self.results if r.status == NEW]
        gone = [(r.name, self.group or "") for r in self.results if r.status == GONE]
        pairs = renamed_pairs(new, gone)
        paired = {n for pair in pairs for n in pair}
        lines = [
            f"{short(old, self.group)} → {short(added, self.group)}: renamed? (new test + gone "
            "test; the new one is not gated until blessed)"
            for old, added in pairs
        ]
        for r in self.results:
            if r.name in paired:
                continue
            if r.status == NEW:
                lines.append(
                    f"{short(r.name, self.group)}: new test"
                    + (f" — error: {r.error}" if r.error else ", not gated until blessed")
                )
            elif r.status == GONE:
                lines.append(
                    f"{short(r.name, self.group)}: gone (in the baseline, no longer a test)"
                )
        return lines


def short(name: str, group: str | None) -> str:
    """A test's path without its workload's name."""
    return name.removeprefix(f"{group}::") if group else name


def _moved(result: WorkloadResult) -> bool:
    c = result.comparison
    if c is None or c.verdict != "pass":
        return True
    return c.totals.status != UNCHANGED or any(s.status != UNCHANGED for s in c.sites)


def sections(results: Sequence[WorkloadResult]) -> list[Section]:
    """Results in report order, each group's tests gathered where its first one is."""
    out: list[Section] = []
    seen: dict[str, list[WorkloadResult]] = {}
    for r in results:
        if r.group is None:
            out.append(Section(None, (r,)))
        elif r.group in seen:
            seen[r.group].append(r)
        else:
            seen[r.group] = [r]
            out.append(Section(r.group, ()))
    return [Section(s.group, tuple(seen[s.group])) if s.group else s for s in out]


def test_summary(results: Sequence[WorkloadResult]) -> str:
    judged = [r for r in results if r.status is None]
    counts = {
        "within budget": sum(r.verdict == "pass" for r in judged),
        "regressed": sum(r.verdict == "regressed" for r in judged),
        "could not be evaluated": sum(r.verdict == "error" for r in judged),
    }
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    if parts:
        first = int(parts[0].split()[0])
        parts[0] = parts[0].replace(" ", " test " if first == 1 else " tests ", 1)
    text = ", ".join(parts) or "no test judged"
    extra = [
        f"{n} {label}"
        for label, n in (
            ("new", sum(r.status == NEW for r in results)),
            ("gone", sum(r.status == GONE for r in results)),
        )
        if n
    ]
    return text + ("; " + ", ".join(extra) if extra else "")
