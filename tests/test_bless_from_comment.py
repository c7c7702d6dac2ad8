"""`/allocgate bless` from a PR comment, end to end.

A scratch git repository around the demo crate: `main` holds the blessed
baseline, the PR branch `feature` changes what the workload does, and the
checkout's HEAD is the PR head. The loopback GitHub stand-in answers the
permission, pulls, contents, comments and reactions endpoints. Real cargo and
Valgrind bless the workload.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from github_bless_server import FakeGitHubRepo

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
TOKEN = "ghs_bless_comment_secret_0123456789"
REPO = "octo/rust-service"
PR = 7
BASELINE = "allocgate-baseline.yml"
CONFIG = """\
defaults:
  profiler: valgrind-dhat
  top: 3
workloads:
  small: {manifest: reqctx/Cargo.toml, args: ['2000']}
  large: {manifest: reqctx/Cargo.toml, args: ['3000']}
"""


def _tools_or_skip(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        if os.environ.get("ALLOCGATE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"required tools missing: {', '.join(missing)}")
        pytest.skip(f"not on PATH: {', '.join(missing)}")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def allocgate(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "allocgate.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass(frozen=True)
class Template:
    path: Path
    target: Path
    base_sha: str
    head_sha: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """main: the crate, its config and a blessed baseline; feature: small does more work."""
    _tools_or_skip("git", "cargo", "valgrind")
    root = tmp_path_factory.mktemp("bless-repo")
    repo = root / "repo"
    repo.mkdir()
    target = root / "target"
    shutil.copytree(DEMO / "reqctx", repo / "reqctx", ignore=shutil.ignore_patterns("target"))
    (repo / "allocgate.yml").write_text(CONFIG)
    done = allocgate("bless", "-q", cwd=repo, env={"CARGO_TARGET_DIR": str(target)})
    assert done.returncode == 0, done.stderr
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Local Dev")
    git(repo, "config", "user.email", "dev@example.invalid")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "allocgate.yml").write_text(CONFIG.replace("'2000'", "'2600'"))
    git(repo, "commit", "-q", "-am", "small handles more requests")
    return Template(repo, target, base, git(repo, "rev-parse", "HEAD"))


@dataclass
class PrCase:
    """A checkout of the PR head, the stand-in serving its repository, and the env to run in."""

    work: Path
    github: FakeGitHubRepo
    template: Template
    env: dict[str, str]
    event_path: Path

    def comment(self, body: str, login: str = "alice", *, on_pr: bool = True) -> None:
        issue: dict[str, object] = {"number": PR}
        if on_pr:
            issue["pull_request"] = {"url": f"{self.github.url}/repos/{REPO}/pulls/{PR}"}
        self.event_path.write_text(
            json.dumps(
                {
                    "action": "created",
                    "comment": {"id": 555, "body": body, "user": {"login": login}},
                    "issue": issue,
                    "repository": {"full_name": REPO},
                }
            )
        )

    def bless(self) -> subprocess.CompletedProcess[str]:
        return allocgate("bless", "--from-comment", "-q", cwd=self.work, env=self.env)

    def replies(self) -> list[str]:
        return [c["body"] for c in self.github.comments_on(REPO, PR)]

    def puts(self) -> list[dict[str, object]]:
        return [r.body for r in self.github.requests_to("PUT")]

    def branch_baseline(self) -> bytes:
        return self.github.branches["feature"].files[BASELINE]


@pytest.fixture
def pr(template: Template, tmp_path: Path) -> Iterator[PrCase]:
    work = tmp_path / "work"
    shutil.copytree(template.path, work, symlinks=True)
    github = FakeGitHubRepo(TOKEN, REPO).start()
    github.grant("alice", "write")
    github.grant("mia", "read", "maintain")
    github.grant("rita", "read")
    github.grant("tom", "read", "triage")
    baseline = (work / BASELINE).read_bytes()
    github.add_branch("main", template.base_sha, {BASELINE: baseline})
    github.add_branch("feature", template.head_sha, {BASELINE: baseline})
    github.open_pull(PR, head_ref="feature", head_sha=template.head_sha, base_sha=template.base_sha)
    event = tmp_path / "event.json"
    env = {
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "issue_comment",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_TOKEN": TOKEN,
        "CARGO_TARGET_DIR": str(template.target),
    }
    case = PrCase(work, github, template, env, event)
    yield case
    github.stop()


def _no_token(pr: PrCase, done: subprocess.CompletedProcess[str]) -> None:
    for text in (done.stdout, done.stderr, *pr.replies()):
        assert TOKEN not in text


def test_a_writers_bless_commits_the_baseline_and_replies(pr: PrCase) -> None:
    before = yaml.safe_load(pr.branch_baseline())["workloads"]["small"]["totals"]["total_bytes"]
    pr.comment("/allocgate bless small\r\nThe service now handles 30% more requests.\r\n")

    done = pr.bless()

    assert done.returncode == 0, done.stderr
    (put,) = pr.puts()
    assert put["branch"] == "feature"
    assert put["sha"] == git(pr.template.path, "rev-parse", f"feature:{BASELINE}")
    doc = yaml.safe_load(base64.b64decode(str(put["content"])))
    small = doc["workloads"]["small"]
    after = small["totals"]["total_bytes"]
    assert after > before
    provenance = small["provenance"]
    assert provenance["reason"] == "The service now handles 30% more requests."
    assert provenance["blessed_by"] == "alice"
    assert provenance["pull_request"] == "#7"
    assert provenance["head_sha"] == pr.template.head_sha
    assert provenance["date"].startswith("20")
    assert "reason" not in doc["workloads"]["large"].get("provenance", {}), "large was not blessed"
    (commit,) = pr.github.branches["feature"].commits
    assert "small" in commit["message"]
    assert "#7" in commit["message"]
    assert "alice" in commit["message"]
    (reply,) = pr.replies()
    assert "allocgate blessed" in reply
    assert commit["sha"][:12] in reply
    assert "30% more requests" in reply
    assert pr.github.reactions == [(555, "+1")]
    _no_token(pr, done)
