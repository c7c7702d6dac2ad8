"""The pure parts of a bless from a comment: grammar, event, checks, replies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from allocgate.baseline_change import TotalChange
from allocgate.errors import GitHubError
from allocgate.github.bless_command import (
    BlessCommand,
    Blessed,
    Refusal,
    blessed_reply,
    check_head,
    check_not_fork,
    check_permission,
    check_reason,
    check_workloads,
    comment_event,
    parse_command,
    pull_request,
    read_comment_event,
    refusal_reply,
)

# Grammar.


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/allocgate bless\nthe cache is worth it", BlessCommand((), "the cache is worth it")),
        (
            "/allocgate bless\r\nthe cache\r\nis worth it\r\n",
            BlessCommand((), "the cache\nis worth it"),
        ),
        (
            "/allocgate bless a b\n\n  two lines\nof reason  \n\n",
            BlessCommand(("a", "b"), "two lines\nof reason"),
        ),
        ("/allocgate bless small", BlessCommand(("small",), None)),
        ("/allocgate bless\r\n\r\n   \r\n", BlessCommand((), None)),
        (
            "  /allocgate   bless  small \rold Mac line end",
            BlessCommand(("small",), "old Mac line end"),
        ),
    ],
    ids=["lf", "crlf", "workloads", "no-reason", "blank-reason", "spaces-and-cr"],
)
def test_bless_commands_parse(body: str, expected: BlessCommand) -> None:
    assert parse_command(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "LGTM",
        "",
        "/allocgate blessed",
        "/allocgate",
        "please /allocgate bless this",
        "> /allocgate bless\nquoted from someone else",
        "/allocgatebless\nreason",
        "thanks!\n/allocgate bless\nreason on a later line",
    ],
)
def test_anything_else_is_no_command(body: str) -> None:
    assert parse_command(body) is None


# The event.


def event_doc(body: str = "/allocgate bless\nwhy", *, pr: bool = True) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 7}
    if pr:
        issue["pull_request"] = {"url": "https://api.example/repos/o/r/pulls/7"}
    return {
        "action": "created",
        "comment": {"id": 99, "body": body, "user": {"login": "alice"}},
        "issue": issue,
        "repository": {"full_name": "octo/widgets"},
    }


def test_comment_event_reads_the_fields(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event_doc("/allocgate bless\r\nwhy")), encoding="utf-8")
    event = read_comment_event(path)
    assert (event.repository, event.issue_number, event.comment_id, event.login) == (
        "octo/widgets",
        7,
        99,
        "alice",
    )
    assert event.is_pull_request
    assert event.body == "/allocgate bless\r\nwhy"
    assert not comment_event(event_doc(pr=False)).is_pull_request


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"issue": {"number": 7}}, "comment"),
        ({**event_doc(), "issue": {"number": "7"}}, "number"),
        ({**event_doc(), "comment": {"id": 1, "body": "x", "user": {}}}, "login"),
        ({**event_doc(), "repository": {}}, "full_name"),
    ],
)
def test_a_malformed_event_names_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(GitHubError, match=field):
        comment_event(doc)


def test_an_unreadable_event_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(GitHubError, match="not JSON"):
        read_comment_event(tmp_path / "bad.json")
    with pytest.raises(GitHubError, match="cannot read"):
        read_comment_event(tmp_path / "missing.json")


# The checks.


@pytest.mark.parametrize(
    ("payload", "allowed"),
    [
        ({"permission": "admin", "role_name": "admin"}, True),
        ({"permission": "write", "role_name": "write"}, True),
        # The API reports maintain as `write` in `permission` and names it only in role_name.
        ({"permission": "write", "role_name": "maintain"}, True),
        ({"permission": "read", "role_name": "maintain"}, True),
        ({"permission": "read", "role_name": "triage"}, False),
        ({"permission": "read", "role_name": "read"}, False),
        ({"permission": "none", "role_name": "none"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_permission(payload: dict[str, str] | None, allowed: bool) -> None:
    if allowed:
        check_permission("alice", "octo/widgets", payload)
        return
    with pytest.raises(Refusal) as refused:
        check_permission("alice", "octo/widgets", payload)
    assert "write, maintain or admin" in refused.value.markdown


def pull_doc(head_repo: str | None = "octo/widgets") -> dict[str, Any]:
    return {
        "head": {
            "ref": "feature",
            "sha": "a" * 40,
            "repo": {"full_name": head_repo} if head_repo else None,
        },
        "base": {"ref": "main", "sha": "b" * 40, "repo": {"full_name": "octo/widgets"}},
    }


def test_a_same_repository_pull_request_passes() -> None:
    pull = pull_request(pull_doc(), 7)
    assert (pull.head_ref, pull.head_sha, pull.base_sha) == ("feature", "a" * 40, "b" * 40)
    check_not_fork(pull, ())


@pytest.mark.parametrize("head_repo", ["mallory/widgets", None], ids=["fork", "deleted-fork"])
def test_a_fork_is_refused_with_the_local_command(head_repo: str | None) -> None:
    pull = pull_request(pull_doc(head_repo), 7)
    with pytest.raises(Refusal) as refused:
        check_not_fork(pull, ("small", "$(touch pwned)"))
    text = refused.value.markdown
    assert "pwn request" in text
    assert "git fetch origin pull/7/head" in text
    assert "allocgate bless small --reason" in text
    assert "pwned" not in text, "a name that is not plainly a name stays out of the command"


def test_a_stale_head_is_refused() -> None:
    pull = pull_request(pull_doc(), 7)
    check_head("a" * 40, pull)
    with pytest.raises(Refusal, match="stale"):
        check_head("c" * 40, pull)


def test_the_reason_is_required_and_bounded() -> None:
    assert check_reason(BlessCommand((), "why")) == "why"
    with pytest.raises(Refusal, match="no reason"):
        check_reason(BlessCommand((), None))
    with pytest.raises(Refusal, match="longer"):
        check_reason(BlessCommand((), "x" * 2001))


def test_workloads_default_to_all_and_unknown_ones_are_refused() -> None:
    assert check_workloads((), ["a", "b"]) == ("a", "b")
    assert check_workloads(("b", "b"), ["a", "b"]) == ("b",)
    with pytest.raises(Refusal) as refused:
        check_workloads(("b", "because"), ["a", "b"])
    assert "because" in refused.value.markdown
    assert "reason goes on the lines below" in refused.value.markdown


# Replies: everything from the comment or the event is escaped.

HOSTILE = "ping @octo/team, see #1 <img src=x onerror=alert(1)> | `code` [link](http://evil)"


def test_the_blessed_reply_escapes_the_reason_and_shows_before_after() -> None:
    reply = blessed_reply(
        Blessed(
            login="alice",
            workloads=("small",),
            totals=(
                TotalChange("small", "total_bytes", 1024 * 1024, 2 * 1024 * 1024, {}),
                TotalChange("small", "total_blocks", None, 10, {}),
            ),
            reason=f"first line\n{HOSTILE}",
            commit_sha="f" * 40,
            commit_url="https://github.example/octo/widgets/commit/" + "f" * 40,
            branch="feature",
            path="allocgate-baseline.yml",
        )
    )
    assert "| small | total&#95;bytes | 1.0 MiB | 2.0 MiB | +1.0 MiB |" in reply
    assert "| small | total&#95;blocks | — | 10 | new |" in reply
    assert "> first line\n> ping" in reply
    for raw in ("@octo", "see #1", "<img", "`code`", "[link]", "| `"):
        assert raw not in reply
    assert "ffffffffffff" in reply
    assert "(https://github.example/octo/widgets/commit/" in reply


def test_a_refusal_reply_escapes_the_login() -> None:
    reply = refusal_reply("<b>@x</b>", Refusal("no", "no"))
    assert "<b>" not in reply
    assert "@x" not in reply
    assert reply.startswith("**allocgate bless refused**")


# The CLI refuses mixed-up bless arguments before it does anything.


def test_from_comment_takes_nothing_from_the_command_line(tmp_path: Path) -> None:
    code, out, err = run_cli("bless", "--from-comment", "small", cwd=tmp_path)
    assert code == 2
    assert "takes the workloads and the reason from the comment" in err
    assert out == ""


def test_an_empty_reason_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "a"\n')
    (tmp_path / "allocgate.yml").write_text("workloads:\n  a: {manifest: Cargo.toml}\n")
    code, _, err = run_cli("bless", "--reason", "  ", cwd=tmp_path)
    assert code == 2
    assert err.startswith("allocgate: error: --reason is empty")
    assert not (tmp_path / "allocgate-baseline.yml").exists()


def test_from_comment_outside_a_workflow_says_what_is_missing(tmp_path: Path) -> None:
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    done = subprocess.run(
        [sys.executable, "-m", "allocgate.cli", "bless", "--from-comment"],
        cwd=tmp_path,
        env={**env_free, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "GITHUB_EVENT_PATH is not set" in done.stderr
