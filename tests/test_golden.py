"""The exact output of `show`, `diff` and `bless` on every profile fixture.

Speed work must not change a byte of what allocgate prints or records, so the
output of the commands on every sample is kept under fixtures/golden/ and
compared here. A change of output that is meant (a new key rule, a new
report layout) is recorded by regenerating the files:

    ALLOCGATE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and the diff of fixtures/golden/ shows, in review, what changed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from allocgate.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "fixtures" / "golden"
SAMPLES = Path("fixtures") / "samples"
UPDATE = os.environ.get("ALLOCGATE_UPDATE_GOLDEN") == "1"

PROFILES = sorted(
    [
        *(ROOT / SAMPLES / "dhat-rs").rglob("*.json"),
        *(ROOT / SAMPLES / "valgrind-dhat").rglob("*.json"),
        *(ROOT / SAMPLES / "heaptrack").glob("*.zst"),
        ROOT / "fixtures" / "heaptrack" / "tiny.trace",
        # Its golden file comes from the node-by-node fold: folding its whole
        # stacks takes minutes (tests/test_stack_tree.py compares the two folds).
        ROOT / "fixtures" / "heaptrack" / "deep-chain.trace",
    ]
)
DIFFS = [
    (profiler, "reqctx-base", after)
    for profiler, suffix in (("dhat-rs", "json"), ("valgrind-dhat", "json"), ("heaptrack", "zst"))
    for after in ("reqctx-regressed", "reqctx-improved")
]


def run(argv: Sequence[str]) -> str:
    """One CLI command in this process: its exit code, stdout and stderr as text."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    out.flush()
    return f"$ allocgate {' '.join(argv)}\nexit {code}\n{raw.getvalue().decode()}\n{err.getvalue()}"


def check(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} is missing; ALLOCGATE_UPDATE_GOLDEN=1 makes it"
    assert text == path.read_text(encoding="utf-8"), f"output differs from {path}"


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outputs name the files as given: relative to the checkout, the same everywhere.
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("GITHUB_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: str(p.relative_to(ROOT / "fixtures")))
def test_show_and_bless_output(profile: Path, tmp_path: Path) -> None:
    rel = str(profile.relative_to(ROOT))
    parts = [
        run(["show", rel, "--top", "30", "--format", "json"]),
        run(["show", rel, "--format", "text"]),
    ]
    if "heaptrack" not in rel:  # traces are slow to read; the renderer is the same
        parts.append(run(["show", rel, "--top", "10", "--depth", "2", "--format", "markdown"]))
    baseline = tmp_path / "baseline.yml"
    parts.append(
        run(["bless", "--profile", rel, "--workload", "golden", "--baseline", str(baseline)])
    )
    parts.append(baseline.read_text(encoding="utf-8"))
    check(
        str(profile.relative_to(ROOT / "fixtures")), "\n".join(parts).replace(str(tmp_path), "TMP")
    )


@pytest.mark.parametrize(("profiler", "before", "after"), DIFFS, ids=lambda x: str(x))
def test_diff_output(profiler: str, before: str, after: str, tmp_path: Path) -> None:
    folder = SAMPLES / profiler
    suffix = ".zst" if profiler == "heaptrack" else ".json"
    old, new = str(folder / f"{before}{suffix}"), str(folder / f"{after}{suffix}")
    baseline = tmp_path / "baseline.yml"
    parts = [run(["bless", "--profile", old, "--workload", "w", "--baseline", str(baseline)])]
    for fmt in ("text", "json"):
        parts.append(run(["diff", old, new, "--format", fmt]))
    parts.append(run(["diff", str(baseline), new, "--format", "markdown", "--top", "3"]))
    check(f"diff/{profiler}/{before}-{after}", "\n".join(parts).replace(str(tmp_path), "TMP"))
