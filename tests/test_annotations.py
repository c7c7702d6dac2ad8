"""Annotations and blob links from a comparison, with a real event file and a real git repo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from allocgate.annotations import (
    ActionsContext,
    Location,
    comparison_annotations,
    head_sha,
    split_location,
    workflow_commands,
)
from allocgate.callsites import Callsite
from allocgate.compare import GateSettings, compare
from allocgate.profile import Profile

HEAD = "0123456789abcdef0123456789abcdef01234567"
MERGE = "fedcba9876543210fedcba9876543210fedcba98"


def profile(sites: dict[str, tuple[int, str | None]]) -> Profile:
    callsites = tuple(
        Callsite(key=k, metrics={"total_bytes": v}, location=loc) for k, (v, loc) in sites.items()
    )
    return Profile(
        source="p",
        profiler="valgrind-dhat",
        mode="heap",
        command="",
        metrics=("total_bytes",),
        totals={"total_bytes": sum(v for v, _ in sites.values())},
        callsites=tuple(sorted(callsites, key=lambda s: -s.metrics["total_bytes"])),
    )


def event(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}}))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "crates" / "orders" / "src").mkdir(parents=True)
    (root / "crates" / "orders" / "src" / "main.rs").write_text("fn main() {}\n" * 200)
    return root


def env(repo: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(repo),
        "GITHUB_REPOSITORY": "octo/orders",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_EVENT_PATH": str(event(tmp_path)),
        "GITHUB_SHA": MERGE,
        **extra,
    }


def test_the_head_sha_comes_from_the_pull_request_not_the_merge_commit(tmp_path: Path) -> None:
    assert head_sha({"GITHUB_EVENT_PATH": str(event(tmp_path)), "GITHUB_SHA": MERGE}) == HEAD
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main"}))
    assert head_sha({"GITHUB_EVENT_PATH": str(push), "GITHUB_SHA": MERGE}) == MERGE


@pytest.mark.parametrize(
    ("text", "expected"),
    [("src/main.rs:166", ("src/main.rs", 166)), ("main.rs", ("main.rs", None)), (None, None)],
)
def test_split_location(text: str | None, expected: object) -> None:
    assert split_location(text) == expected


def test_locations_are_relative_to_the_workspace(repo: Path, tmp_path: Path) -> None:
    ctx = ActionsContext.from_env(env(repo, tmp_path), cwd=repo)
    crate = repo / "crates" / "orders"
    absolute = f"{crate}/src/main.rs:166"
    assert ctx.locate(absolute) == Location("crates/orders/src/main.rs", 166)
    # rustc's relative paths are relative to the cargo workspace it compiled.
    assert ctx.locate("src/main.rs:12", bases=[crate]) == Location("crates/orders/src/main.rs", 12)
    assert ctx.locate("/rustc/abc/library/alloc/src/vec.rs:3") is None
    loc = Location("crates/orders/src/main.rs", 166)
    assert ctx.blob_url(loc) == (
        f"https://github.example/octo/orders/blob/{HEAD}/crates/orders/src/main.rs#L166"
    )


def test_without_a_workspace_the_git_top_level_is_the_root(tmp_path: Path, repo: Path) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    ctx = ActionsContext.from_env({}, cwd=repo / "crates" / "orders")
    assert ctx.root == repo.resolve()
    assert not ctx.in_actions
    assert ctx.blob_url(Location("a.rs", 1)) is None


def test_a_regression_is_an_error_on_its_line_and_an_improvement_a_notice(
    repo: Path, tmp_path: Path
) -> None:
    where = f"{repo}/crates/orders/src/main.rs"
    before = profile(
        {"orders::build_order": (730_000, f"{where}:160"), "orders::a,b": (90_000, f"{where}:20")}
    )
    after = profile(
        {"orders::build_order": (1_275_000, f"{where}:166"), "orders::a,b": (10_000, f"{where}:21")}
    )
    c = compare("orders", before, after, GateSettings())
    ctx = ActionsContext.from_env(env(repo, tmp_path), cwd=repo)
    lines = workflow_commands(ctx, comparison_annotations(c, ctx, bless="allocgate bless orders"))
    assert lines[0].startswith(
        "::error file=crates/orders/src/main.rs,line=166,title=allocgate%3A orders%3A%3Abuild_order grew::"
    )
    assert "orders: orders::build_order grew: total bytes 712.9 KiB → 1.2 MiB" in lines[0]
    assert lines[0].endswith("If intended: allocgate bless orders")
    # The comma in the key is escaped in the title property.
    assert lines[1].startswith(
        "::notice file=crates/orders/src/main.rs,line=21,title=allocgate%3A orders%3A%3Aa%2Cb shrank::"
    )


def test_no_workflow_command_outside_actions(repo: Path, tmp_path: Path) -> None:
    before = profile({"orders::f": (10_000, "src/main.rs:1")})
    after = profile({"orders::f": (90_000, "src/main.rs:1")})
    c = compare("orders", before, after, GateSettings())
    ctx = ActionsContext.from_env(env(repo, tmp_path, GITHUB_ACTIONS="false"), cwd=repo)
    annotations = comparison_annotations(c, ctx)
    assert len(annotations) == 1
    assert workflow_commands(ctx, annotations) == []


def test_a_key_cannot_start_a_command_of_its_own(repo: Path, tmp_path: Path) -> None:
    before = profile({"x": (10_000, None)})
    after = profile({"x\n::set-env name=A::b": (90_000, None)})
    c = compare("w", before, after, GateSettings())
    ctx = ActionsContext.from_env(env(repo, tmp_path), cwd=repo)
    (line,) = [x for x in workflow_commands(ctx, comparison_annotations(c, ctx)) if "set-env" in x]
    assert "\n" not in line
    assert line.startswith("::error title=")
