"""What a pull request changed in the baseline, and the section that says so."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from github_bless_server import running_repo

from allocgate.base_baseline import changes_for, pull_request_event, read_base_baseline
from allocgate.baseline import Baseline, WorkloadBaseline
from allocgate.baseline_change import WorkloadChange, baseline_changes, unexplained
from allocgate.baseline_file import read_baseline, update_baseline
from allocgate.bless_record import BlessRecord
from allocgate.callsites import Callsite
from allocgate.config import load_config
from allocgate.errors import AllocgateError, BaselineError
from allocgate.render.baseline_section import markdown_section, text_section
from allocgate.report import Report, merge_reports, read_report
from allocgate.settings import Settings

MIB = 1024 * 1024


def entry(name: str, total: int, blocks: int = 10) -> WorkloadBaseline:
    return WorkloadBaseline(
        name=name,
        profiler="valgrind-dhat",
        totals={"total_bytes": total, "total_blocks": blocks},
        callsites=(Callsite("app::f", {"total_bytes": total, "total_blocks": blocks}),),
    )


def baseline(*entries: WorkloadBaseline) -> Baseline:
    return Baseline(Path("b.yml"), {e.name: e for e in entries})


def test_only_differing_entries_are_changes() -> None:
    base = baseline(entry("same", MIB), entry("grew", MIB), entry("gone", MIB))
    head = baseline(entry("same", MIB), entry("grew", 2 * MIB), entry("new", 3 * MIB))

    changes = baseline_changes(base, head, {"grew": ("total_bytes", "total_blocks")})

    assert [(c.name, c.kind) for c in changes] == [
        ("gone", "removed"),
        ("grew", "changed"),
        ("new", "added"),
    ]
    grew = changes[1]
    assert [(t.metric, t.before, t.after) for t in grew.totals] == [
        ("total_bytes", MIB, 2 * MIB),
        ("total_blocks", 10, 10),
    ]
    assert [(t.before, t.after) for t in changes[2].totals] == [(None, 3 * MIB)]
    assert unexplained(changes) == ("grew", "new")
    assert baseline_changes(head, head, {}) == ()


def test_the_sections_show_before_after_and_no_reason() -> None:
    changes = baseline_changes(
        baseline(entry("svc", MIB)), baseline(entry("svc", 2 * MIB)), {"svc": ("total_bytes",)}
    )

    md = markdown_section(changes)
    assert md.startswith("### ⚠️ Baseline changed in this PR\n")
    assert (
        "**svc** (changed): total bytes 1.0 MiB → 2.0 MiB (+1.0 MiB). **No reason recorded.**" in md
    )
    assert "require" not in md
    strict = markdown_section(changes, require_reason=True)
    assert strict.startswith("### ❌ Baseline changed in this PR\n")
    assert "`require_reason` is set, so this check fails" in strict
    text = text_section(changes, require_reason=True)
    assert "svc (changed): total bytes 1.0 MiB → 2.0 MiB (+1.0 MiB)" in text
    assert "no reason recorded" in text
    assert "require_reason: no reason recorded for svc" in text
    assert markdown_section(()) == text_section(()) == ""


def test_a_hostile_workload_name_is_escaped() -> None:
    name = "x @octo <b>|"
    changes = baseline_changes(baseline(), baseline(entry(name, MIB)), {})
    md = markdown_section(changes)
    assert "@octo" not in md
    assert "<b>" not in md


def test_changes_round_trip_through_json_shape() -> None:
    changes = baseline_changes(baseline(entry("a", 1)), baseline(entry("a", 2)), {})
    assert tuple(WorkloadChange.from_dict(c.to_dict()) for c in changes) == changes
    with pytest.raises(ValueError, match="unknown baseline change"):
        WorkloadChange.from_dict({**changes[0].to_dict(), "kind": "renamed"})


# The base branch's baseline, from git.


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.name", "t")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    (tmp_path / "README").write_text("x\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "no baseline yet")
    return tmp_path


def test_the_base_baseline_comes_from_git(repo: Path) -> None:
    path = repo / "sub" / "allocgate-baseline.yml"
    path.parent.mkdir()
    empty = _git(repo, "rev-parse", "HEAD")
    update_baseline(path, {"a": entry("a", MIB)})
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "bless a")
    first = _git(repo, "rev-parse", "HEAD")
    update_baseline(path, {"a": entry("a", 2 * MIB)})

    at_first = read_base_baseline(repo / "sub", path, first, None)
    assert at_first.workloads["a"].totals["total_bytes"] == MIB
    assert read_base_baseline(repo, path, empty, None).workloads == {}
    assert read_baseline(path).workloads["a"].totals["total_bytes"] == 2 * MIB


def test_a_commit_not_fetched_is_asked_for_through_the_api(repo: Path) -> None:
    path = repo / "allocgate-baseline.yml"
    update_baseline(path, {"a": entry("a", 5)})
    asked: list[tuple[str, str]] = []

    def fetch(p: str, rev: str) -> bytes | None:
        asked.append((p, rev))
        return path.read_bytes()

    missing = "0123456789" * 4
    got = read_base_baseline(repo, path, missing, fetch)
    assert asked == [("allocgate-baseline.yml", missing)]
    assert got.workloads["a"].totals["total_bytes"] == 5
    with pytest.raises(BaselineError, match="fetch-depth"):
        read_base_baseline(repo, path, missing, None)


def test_base_sha_from_a_pull_request_event(tmp_path: Path) -> None:
    event = tmp_path / "e.json"
    env = {"GITHUB_EVENT_PATH": str(event)}
    event.write_text('{"pull_request": {"number": 3, "base": {"sha": "abc"}}}')
    assert pull_request_event(env) == ("abc", 3)
    event.write_text('{"issue": {"number": 3}}')
    assert pull_request_event(env) is None
    assert pull_request_event({"GITHUB_EVENT_PATH": str(tmp_path / "missing.json")}) is None
    assert pull_request_event({}) is None


# Provenance: a reason counts only when this PR recorded it.


def blessed(name: str, total: int, **record: str) -> WorkloadBaseline:
    return replace(entry(name, total), provenance={"rustc": "1.95.0", **record})


def test_a_reason_recorded_in_the_pr_explains_the_change() -> None:
    base = baseline(blessed("a", MIB, reason="old", blessed_by="x", date="2026-01-01T00:00:00Z"))
    head = baseline(
        blessed("a", 2 * MIB, reason="new cache", blessed_by="alice", pull_request="#7")
    )
    (change,) = baseline_changes(base, head, {})
    assert change.record == BlessRecord(reason="new cache", blessed_by="alice", pull_request="#7")
    assert change.explained
    md = markdown_section((change,), require_reason=True)
    assert "Blessed by alice in #\u200b7:" in md
    assert "> new cache" in md
    assert "require_reason" not in md


def test_the_bases_own_reason_explains_nothing() -> None:
    old = {"reason": "old", "blessed_by": "x", "date": "2026-01-01T00:00:00Z"}
    (change,) = baseline_changes(
        baseline(blessed("a", MIB, **old)), baseline(blessed("a", 2 * MIB, **old)), {}
    )
    assert change.record.empty
    assert not change.explained


def test_provenance_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    reason = "two lines:\nthe second - with: yaml #chars"
    update_baseline(path, {"a": blessed("a", 5, reason=reason, blessed_by="alice")})
    assert read_baseline(path).workloads["a"].provenance == {
        "blessed_by": "alice",
        "reason": reason,
        "rustc": "1.95.0",
    }
    update_baseline(path, {"b": entry("b", 6)})
    assert read_baseline(path).workloads["a"].provenance["reason"] == reason


def test_a_provenance_that_is_not_strings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    update_baseline(path, {"a": entry("a", 5)})
    text = path.read_text().replace("    totals:", "    provenance: {reason: [1]}\n    totals:")
    path.write_text(text)
    with pytest.raises(BaselineError, match=r"workloads\.a\.provenance: expected a mapping"):
        read_baseline(path)


# In the report: its JSON, merging shards, and the exit code.


def test_the_report_carries_the_changes_and_require_reason_sets_the_exit_code(
    tmp_path: Path,
) -> None:
    changes = baseline_changes(baseline(entry("a", 1)), baseline(entry("a", 2)), {})
    lenient = Report((), baseline_changes=changes)
    strict = Report((), baseline_changes=changes, require_reason=True)
    assert (lenient.exit_code, strict.exit_code) == (0, 1)
    assert strict.unexplained == ("a",)
    path = tmp_path / "r.json"
    path.write_bytes(strict.to_json())
    again = read_report(path)
    assert again.baseline_changes == changes
    assert again.require_reason
    merged = merge_reports([again, Report((), baseline_changes=changes)])
    assert merged.baseline_changes == changes
    assert merged.exit_code == 1


def test_a_base_not_in_the_checkout_is_read_through_the_contents_api(
    repo: Path, tmp_path: Path
) -> None:
    path = repo / "allocgate-baseline.yml"
    update_baseline(path, {"a": entry("a", 2 * MIB)})
    (repo / "Cargo.toml").write_text('[package]\nname = "a"\n')
    (repo / "allocgate.yml").write_text(
        "workloads:\n  a: {manifest: Cargo.toml, profiler: valgrind-dhat}\n"
    )
    base_file = tmp_path / "base.yml"
    update_baseline(base_file, {"a": entry("a", MIB)})
    missing = "0123456789" * 4
    token = "ghs_base_fetch_token"
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 4, "base": {"sha": missing}}}))
    with running_repo(token, "octo/widgets") as github:
        github.snapshots[missing] = {"allocgate-baseline.yml": base_file.read_bytes()}
        env = {
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": "octo/widgets",
            "GITHUB_TOKEN": token,
        }
        config = load_config(repo / "allocgate.yml")
        settings = Settings(environ=MappingProxyType(env))
        changes, notes = changes_for(settings, config, read_baseline(path))
        (get,) = github.requests_to("GET", r"/repos/octo/widgets/contents/.*")
    assert get.query == {"ref": [missing]}
    assert notes == ()
    assert [(t.before, t.after) for t in changes[0].totals] == [(MIB, 2 * MIB)]

    # Without a token it is a warning, unless reasons are required.
    bare = Settings(environ=MappingProxyType({"GITHUB_EVENT_PATH": str(event)}))
    assert changes_for(bare, config, read_baseline(path))[1][0].startswith("cannot tell")
    with pytest.raises(BaselineError, match="fetch-depth"):
        changes_for(replace(bare, require_reason=True), config, read_baseline(path))


def test_outside_a_git_checkout_there_is_nothing_to_compare_unless_required(
    tmp_path: Path,
) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "a"\n')
    (tmp_path / "allocgate.yml").write_text(
        "workloads:\n  a: {manifest: Cargo.toml, profiler: valgrind-dhat}\n"
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 4, "base": {"sha": "a" * 40}}}))
    config = load_config(tmp_path / "allocgate.yml")
    settings = Settings(environ=MappingProxyType({"GITHUB_EVENT_PATH": str(event)}))
    head = Baseline(tmp_path / "allocgate-baseline.yml", {})
    assert changes_for(settings, config, head) == ((), ())
    with pytest.raises(AllocgateError, match="not a git checkout"):
        changes_for(replace(settings, require_reason=True), config, head)
