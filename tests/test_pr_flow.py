"""The pull-request path end to end: sharded checks merged, and `allocgate comment`
against a real HTTP server on loopback standing in for the GitHub API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tools
from github_server import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO = REPO_ROOT / "fixtures" / "demo"
SAMPLES = REPO_ROOT / "fixtures" / "samples"
TOKEN = "ghs_pr_flow_secret_token_value"


def allocgate(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    # The package is imported from this checkout whatever the working directory.
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "allocgate.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo crate with three workloads (different arguments), blessed."""
    require_tools("cargo", "valgrind")
    root = tmp_path_factory.mktemp("shards")
    shutil.copytree(DEMO / "reqctx", root / "reqctx", ignore=shutil.ignore_patterns("target"))
    (root / "allocgate.yml").write_text(
        "defaults:\n"
        "  profiler: valgrind-dhat\n"
        "  top: 3\n"
        "workloads:\n"
        "  small: {manifest: reqctx/Cargo.toml, args: ['2000']}\n"
        "  medium: {manifest: reqctx/Cargo.toml, args: ['4000']}\n"
        "  large: {manifest: reqctx/Cargo.toml, args: ['6000']}\n"
    )
    env = {"CARGO_TARGET_DIR": str(root / "target")}
    done = allocgate("bless", "-q", cwd=root, env=env)
    assert done.returncode == 0, done.stderr
    # The "current" code allocates more on large: bless it smaller than it runs.
    config = (root / "allocgate.yml").read_text()
    (root / "allocgate.yml").write_text(config.replace("args: ['6000']", "args: ['9000']"))
    return root


def _rows(report: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for w in report["workloads"]:
        c = w["comparison"]
        rows[w["name"]] = (
            w["verdict"],
            c["totals"],
            [(s["key"], s["status"], s["baseline"], s["current"]) for s in c["sites"]],
        )
    return rows


@pytest.mark.cargo
@pytest.mark.valgrind
def test_shards_merge_into_the_unsplit_verdict_and_rows(project: Path, tmp_path: Path) -> None:
    env = {"CARGO_TARGET_DIR": str(project / "target")}
    whole = allocgate(
        "check", "-q", "--report-json", str(tmp_path / "whole.json"), cwd=project, env=env
    )
    assert whole.returncode == 1, whole.stderr
    parts = []
    names: list[str] = []
    for k in (1, 2):
        part = tmp_path / f"part{k}.json"
        done = allocgate(
            "check", "-q", "--shard", f"{k}/2", "--report-json", str(part), cwd=project, env=env
        )
        assert done.returncode in (0, 1), done.stderr
        doc = json.loads(part.read_text())
        assert doc["shard"] == f"{k}/2"
        names += [w["name"] for w in doc["workloads"]]
        parts.append(str(part))
    assert sorted(names) == ["large", "medium", "small"], "shards must partition the workloads"
    merged = allocgate(
        "merge",
        *parts,
        "--report-json",
        str(tmp_path / "merged.json"),
        "--report-md",
        str(tmp_path / "merged.md"),
        cwd=project,
    )
    assert merged.returncode == 1, "the merged verdict is the worst of the shards"
    whole_doc = json.loads((tmp_path / "whole.json").read_text())
    merged_doc = json.loads((tmp_path / "merged.json").read_text())
    assert merged_doc["verdict"] == whole_doc["verdict"] == "regressed"
    assert _rows(merged_doc) == _rows(whole_doc)
    md = (tmp_path / "merged.md").read_text()
    assert md.startswith("<!-- allocgate-comment: default -->")
    assert "large" in md
    assert "allocgate bless" in md


def test_merge_refuses_a_workload_in_two_reports(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = allocgate(
        "diff",
        str(SAMPLES / "dhat-rs/reqctx-base.json"),
        str(SAMPLES / "dhat-rs/reqctx-regressed.json"),
        "--format",
        "json",
        cwd=tmp_path,
    )
    report.write_text(done.stdout)
    again = allocgate("merge", str(report), str(report), cwd=tmp_path)
    assert again.returncode == 2
    assert "is also in" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.fixture
def regressed_report(tmp_path: Path) -> Path:
    done = allocgate(
        "diff",
        str(SAMPLES / "dhat-rs/reqctx-base.json"),
        str(SAMPLES / "dhat-rs/reqctx-regressed.json"),
        "--workload",
        "reqctx",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    path = tmp_path / "report.json"
    path.write_text(done.stdout)
    return path


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(TOKEN).start()
    yield server
    server.stop()


def _gh_env(github: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    return {
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": "octo/rust-service",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }


def test_three_comment_runs_leave_one_sticky_comment(
    github: FakeGitHub, regressed_report: Path, tmp_path: Path
) -> None:
    env = _gh_env(github, tmp_path)
    outputs = []
    for _ in range(3):
        done = allocgate("comment", "--report", str(regressed_report), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    comments = github.comments_on("octo/rust-service", 7)
    assert len(comments) == 1
    body = comments[0]["body"]
    assert "<!-- allocgate-comment: default -->" in body
    assert "reqctx::render&#95;response" in body
    assert "https://github.example/octo/rust-service/actions/runs/4242" in body
    assert len(github.requests_to("POST")) == 1
    assert len(github.requests_to("PATCH")) == 2
    # The token never leaks into what we print or write.
    summary = (tmp_path / "summary.md").read_text()
    for text in (*outputs, summary, regressed_report.read_text(), body):
        assert TOKEN not in text


def test_forbidden_comment_is_a_warning_and_check_keeps_its_exit_code(
    github: FakeGitHub, regressed_report: Path, tmp_path: Path
) -> None:
    env = _gh_env(github, tmp_path)
    github.fail("POST", r"/repos/.*/issues/7/comments", 403, times=10)
    done = allocgate("comment", "--report", str(regressed_report), cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert "warning" in done.stderr
    assert "fork" in done.stderr
    assert (tmp_path / "summary.md").read_text().count("allocgate") > 0, (
        "the summary is still written"
    )
    assert TOKEN not in done.stderr + done.stdout


def test_comment_without_token_or_pr_cannot_run(regressed_report: Path, tmp_path: Path) -> None:
    done = allocgate(
        "comment",
        "--report",
        str(regressed_report),
        cwd=tmp_path,
        env={"GITHUB_REPOSITORY": "octo/x", "GITHUB_TOKEN": TOKEN},
    )
    assert done.returncode == 2
    assert done.stderr.startswith("allocgate: error:")
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stderr
    missing = allocgate(
        "comment", "--report", str(tmp_path / "nope.json"), "--pr", "3", cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "nope.json" in missing.stderr


@pytest.mark.cargo
@pytest.mark.valgrind
def test_check_with_comment_keeps_the_gate_exit_code(github: FakeGitHub, tmp_path: Path) -> None:
    require_tools("cargo", "valgrind")
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("target"))
    env = _gh_env(github, tmp_path)
    env["CARGO_TARGET_DIR"] = str(tmp_path / "target")
    env["GITHUB_OUTPUT"] = str(tmp_path / "outputs.txt")
    github.fail("POST", r"/repos/.*/issues/7/comments", 502, times=1)
    done = allocgate(
        "check",
        "-q",
        "--config",
        str(tmp_path / "demo/allocgate.yml"),
        "--comment",
        "--report-json",
        str(tmp_path / "r.json"),
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert len(github.comments_on("octo/rust-service", 7)) == 1, "the 502 was retried"
    outputs = (tmp_path / "outputs.txt").read_text()
    assert "regressed" in outputs
    assert "false" in outputs
    assert TOKEN not in done.stderr + done.stdout + outputs
