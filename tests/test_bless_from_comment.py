"""`/allocgate bless` from a PR comment, end to end.

A scratch git repository around the demo crate: `main` holds the blessed
baseline, the PR branch `feature` changes what the workload does, and the
checkout's HEAD is the PR head. The loopback GitHub stand-in answers the
permission, pulls, contents, comments and reactions endpoints. Real cargo and
Valgrind bless the workload.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import require_tools
from github_bless_server import FakeGitHubRepo
from test_pr_flow import allocgate

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
pytestmark = [pytest.mark.github, pytest.mark.cargo, pytest.mark.valgrind]

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


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@dataclass(frozen=True)
class Template:
    path: Path
    target: Path
    base_sha: str
    head_sha: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """main: the crate, its config and a blessed baseline; feature: small does more work."""
    require_tools("git", "cargo", "valgrind")
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


@pytest.mark.parametrize(
    ("login", "body", "why"),
    [
        ("rita", "/allocgate bless\nwhy not", "has <code>read</code> access"),
        ("tom", "/allocgate bless\nwhy not", "has <code>triage</code> access"),
        ("stranger", "/allocgate bless\nwhy not", "has <code>none</code> access"),
        ("alice", "/allocgate bless", "A reason is required"),
        (
            "alice",
            "/allocgate bless small because\nreason",
            "Unknown workload <code>because</code>",
        ),
    ],
    ids=["reader", "triage", "stranger", "no-reason", "unknown-workload"],
)
def test_refusals_reply_once_and_write_nothing(pr: PrCase, login: str, body: str, why: str) -> None:
    before = (pr.work / BASELINE).read_bytes()
    pr.comment(body, login)

    done = pr.bless()

    assert done.returncode == 2, done.stderr
    assert "bless refused" in done.stderr
    assert pr.puts() == []
    (reply,) = pr.replies()
    assert reply.startswith("**allocgate bless refused**")
    assert why in reply
    assert (pr.work / BASELINE).read_bytes() == before, "nothing ran, nothing was written"
    assert pr.github.reactions == [(555, "confused")]
    _no_token(pr, done)


def test_a_fork_is_refused_with_the_local_command(pr: PrCase) -> None:
    pr.github.open_pull(
        PR,
        head_ref="feature",
        head_sha=pr.template.head_sha,
        base_sha=pr.template.base_sha,
        head_repository="mallory/rust-service",
    )
    pr.comment("/allocgate bless\nlooks fine to me")

    done = pr.bless()

    assert done.returncode == 2
    assert pr.puts() == []
    (reply,) = pr.replies()
    assert "pwn request" in reply
    assert f"git fetch origin pull/{PR}/head && git checkout {pr.template.head_sha}" in reply
    assert 'allocgate bless --reason "…"' in reply
    assert (pr.work / BASELINE).read_bytes() == pr.branch_baseline(), "nothing was blessed"
    _no_token(pr, done)


def test_a_stale_head_is_refused(pr: PrCase) -> None:
    pushed = "9" * 40
    pr.github.open_pull(PR, head_ref="feature", head_sha=pushed, base_sha=pr.template.base_sha)
    pr.comment("/allocgate bless\nintended")

    done = pr.bless()

    assert done.returncode == 2
    assert pr.puts() == []
    (reply,) = pr.replies()
    shown = html.unescape(reply)
    assert "pushed to after the comment" in shown
    assert pr.template.head_sha[:12] in shown
    assert pushed[:12] in shown


@pytest.mark.parametrize(
    ("body", "on_pr"),
    [("LGTM", True), ("/allocgate blessed be", True), ("/allocgate bless\nwhy", False)],
    ids=["lgtm", "near-miss", "plain-issue"],
)
def test_other_comments_are_ignored_without_a_request(pr: PrCase, body: str, on_pr: bool) -> None:
    pr.comment(body, on_pr=on_pr)
    env = {k: v for k, v in pr.env.items() if k != "GITHUB_TOKEN"}

    done = allocgate("bless", "--from-comment", cwd=pr.work, env=env)

    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stderr
    assert pr.github.requests == []


def test_a_branch_that_moved_during_the_bless_gets_a_409_and_keeps_its_baseline(
    pr: PrCase,
) -> None:
    pushed = b"# someone else's baseline\nversion: 1\nworkloads: {}\n"

    def push(path: str) -> None:
        pr.github.branches["feature"].files[path] = pushed

    pr.github.after_get = push
    pr.comment("/allocgate bless small\nintended")

    done = pr.bless()

    assert done.returncode == 2
    assert len(pr.puts()) == 1, "one PUT, answered 409, not retried"
    assert pr.branch_baseline() == pushed
    assert pr.github.branches["feature"].commits == []
    (reply,) = pr.replies()
    assert "branch moved while blessing" in reply
    assert "409" in done.stderr
    _no_token(pr, done)


def test_a_baseline_pushed_before_the_bless_is_refused_before_running(pr: PrCase) -> None:
    pr.github.branches["feature"].files[BASELINE] = b"version: 1\nworkloads: {}\n"
    before = (pr.work / BASELINE).read_bytes()
    pr.comment("/allocgate bless\nintended")

    done = pr.bless()

    assert done.returncode == 2
    assert pr.puts() == []
    assert (pr.work / BASELINE).read_bytes() == before
    assert "branch moved" in pr.replies()[0]


def test_the_token_stays_out_of_a_failure_that_echoes_it(pr: PrCase) -> None:
    pr.github.fail("GET", r"/repos/.*/pulls/7", 422, body={"message": f"bad token {TOKEN}"})
    pr.comment("/allocgate bless\nintended")

    done = pr.bless()

    assert done.returncode == 2
    assert pr.puts() == []
    (reply,) = pr.replies()
    assert "allocgate bless failed" in reply
    _no_token(pr, done)


# The CLI side: --reason, show-baseline, and the "Baseline changed in this PR" section.


def test_cli_bless_with_a_reason_records_it_and_show_baseline_lists_it(pr: PrCase) -> None:
    done = allocgate(
        "bless", "small", "-q", "--reason", "More requests per run.", cwd=pr.work, env=pr.env
    )
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load((pr.work / BASELINE).read_text())
    provenance = doc["workloads"]["small"]["provenance"]
    assert provenance["reason"] == "More requests per run."
    assert provenance["blessed_by"] == "Local Dev"
    assert provenance["head_sha"] == pr.template.head_sha
    assert "pull_request" not in provenance
    assert "reason" not in doc["workloads"]["large"].get("provenance", {})

    shown = allocgate("show-baseline", cwd=pr.work)

    assert shown.returncode == 0, shown.stderr
    assert f"blessed by Local Dev on {provenance['date']} at {pr.template.head_sha[:12]}" in (
        shown.stdout
    )
    assert "reason: More requests per run." in shown.stdout
    assert "large (valgrind-dhat)" in shown.stdout
    assert "no bless recorded" in shown.stdout


def test_a_local_rebless_shows_in_the_pr_report_and_require_reason_fails_it(
    pr: PrCase, tmp_path: Path
) -> None:
    done = allocgate("bless", "small", "-q", cwd=pr.work, env=pr.env)
    assert done.returncode == 0, done.stderr
    git(pr.work, "commit", "-qam", "re-bless small")
    event = tmp_path / "pull_request.json"
    event.write_text(
        json.dumps({"pull_request": {"number": PR, "base": {"sha": pr.template.base_sha}}})
    )
    env = {
        **pr.env,
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }

    check = allocgate("check", "small", "-q", cwd=pr.work, env=env)

    assert check.returncode == 0, check.stderr
    assert "Baseline changed in this PR:" in check.stdout
    assert "small (changed): total bytes" in check.stdout
    assert "no reason recorded" in check.stdout
    summary = (tmp_path / "summary.md").read_text()
    first = summary.split("\n")[1]
    assert first == "### ⚠️ Baseline changed in this PR", summary
    assert "**No reason recorded.**" in summary
    assert "→" in summary

    strict = allocgate("check", "small", "-q", "--require-reason", cwd=pr.work, env=env)

    assert strict.returncode == 1, strict.stderr
    assert "require_reason: no reason recorded for small" in strict.stdout
    assert "### ❌ Baseline changed in this PR" in (tmp_path / "summary.md").read_text()


def test_a_reason_given_locally_satisfies_require_reason(pr: PrCase) -> None:
    config = pr.work / "allocgate.yml"
    config.write_text("require_reason: true\n" + config.read_text())
    done = allocgate(
        "bless", "small", "-q", "--reason", "Handles 30% more.", cwd=pr.work, env=pr.env
    )
    assert done.returncode == 0, done.stderr

    check = allocgate("check", "small", "-q", "--base", "main", cwd=pr.work, env=pr.env)

    assert check.returncode == 0, check.stdout + check.stderr
    assert "blessed by Local Dev" in check.stdout
    assert "Handles 30% more." in check.stdout
