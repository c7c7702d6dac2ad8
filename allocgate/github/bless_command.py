"""`/allocgate bless` in a pull-request comment: the event, the grammar, the checks, the replies.

Everything here is pure: values in, values (or a `Refusal`) out. The HTTP calls
live in `github.bless_api`, the sequence in `github.bless_flow`. Text taken from the comment,
the event, a profile or the baseline is escaped before it goes into markdown;
the comment body is never handed to a shell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocgate.baseline_change import TotalChange
from allocgate.errors import GitHubError
from allocgate.escape import md_code, md_fence, md_text
from allocgate.metrics import format_delta, format_value
from allocgate.render.baseline_section import quote

COMMAND = "/allocgate bless"
#: Longer reasons are refused rather than cut: the baseline keeps what was said, whole.
MAX_REASON_CHARS = 2000
#: `permission` values that may bless; the API reports `maintain` only in `role_name`.
WRITE_PERMISSIONS = frozenset({"admin", "write"})
WRITE_ROLES = frozenset({"admin", "maintain", "write"})

_WORKLOAD_RE = re.compile(r"[A-Za-z0-9_.:+-]{1,100}")


class Refusal(Exception):
    """A bless that will not happen; the message is markdown for the reply comment.

    Not an AllocgateError: a refusal is answered on the pull request, not printed
    as a crash. `reason` is the same in one plain line for the log.
    """

    def __init__(self, markdown: str, reason: str) -> None:
        super().__init__(reason)
        self.markdown = markdown
        self.reason = reason


@dataclass(frozen=True)
class CommentEvent:
    """The parts of an `issue_comment` event a bless needs."""

    repository: str
    issue_number: int
    is_pull_request: bool
    comment_id: int
    login: str
    body: str


@dataclass(frozen=True)
class BlessCommand:
    """A parsed `/allocgate bless` comment."""

    workloads: tuple[str, ...]
    """Named on the first line; empty means all."""
    reason: str | None
    """The lines below the first, trimmed; None when there are none."""


@dataclass(frozen=True)
class PullRequest:
    """The parts of `GET /repos/{owner}/{repo}/pulls/{n}` a bless needs."""

    number: int
    head_sha: str
    head_ref: str
    head_repository: str | None
    """`owner/name` of the head's repository; None when the fork was deleted."""
    base_repository: str
    base_sha: str

    @property
    def is_fork(self) -> bool:
        return self.head_repository != self.base_repository


def read_comment_event(path: Path) -> CommentEvent:
    """Reads the `issue_comment` payload at `GITHUB_EVENT_PATH`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GitHubError(f"cannot read the event file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise GitHubError(f"the event file {path} is not JSON: {exc}") from None
    return comment_event(doc, str(path))


def comment_event(doc: Any, where: str = "the event") -> CommentEvent:
    """The `issue_comment` payload as a value; anything missing is an error naming the field."""
    comment = _mapping(doc, "comment", where)
    issue = _mapping(doc, "issue", where)
    repository = _mapping(doc, "repository", where)
    user = _mapping(comment, "user", f"{where}: comment")
    return CommentEvent(
        repository=_string(repository, "full_name", f"{where}: repository"),
        issue_number=_number(issue, "number", f"{where}: issue"),
        # issue_comment fires for plain issues too; only a PR's issue has `pull_request`.
        is_pull_request=bool(issue.get("pull_request")),
        comment_id=_number(comment, "id", f"{where}: comment"),
        login=_string(user, "login", f"{where}: comment.user"),
        body=_string(comment, "body", f"{where}: comment", empty=True),
    )


def parse_command(body: str) -> BlessCommand | None:
    """`/allocgate bless [WORKLOAD…]` on the first line, the reason below; None for anything else.

    The web editor ends lines with CRLF, the API with LF: both (and lone CRs) are lines.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    words = lines[0].split()
    if words[:2] != COMMAND.split():
        return None
    reason_lines = [line.rstrip() for line in lines[1:]]
    reason = "\n".join(reason_lines).strip("\n").strip()
    return BlessCommand(workloads=tuple(words[2:]), reason=reason or None)


def pull_request(doc: Any, number: int) -> PullRequest:
    """`GET /repos/{owner}/{repo}/pulls/{n}` as a value."""
    where = f"pull request #{number}"
    head = _mapping(doc, "head", where)
    base = _mapping(doc, "base", where)
    head_repo = head.get("repo")
    head_name = head_repo.get("full_name") if isinstance(head_repo, dict) else None
    return PullRequest(
        number=number,
        head_sha=_string(head, "sha", f"{where}: head"),
        head_ref=_string(head, "ref", f"{where}: head"),
        head_repository=head_name if isinstance(head_name, str) else None,
        base_repository=_string(_mapping(base, "repo", f"{where}: base"), "full_name", where),
        base_sha=_string(base, "sha", f"{where}: base"),
    )


# The checks, in the order the flow makes them.


def check_permission(login: str, repository: str, payload: Mapping[str, Any] | None) -> None:
    """`payload` is the permission answer, or None when GitHub says the user is no collaborator."""
    permission = payload.get("permission") if payload else None
    role = payload.get("role_name") if payload else None
    if permission in WRITE_PERMISSIONS or role in WRITE_ROLES:
        return
    shown = role if isinstance(role, str) else permission if isinstance(permission, str) else "no"
    raise Refusal(
        f"{md_text(login)} has {md_code(shown)} access to {md_text(repository)}: "
        "blessing needs write, maintain or admin access.",
        f"{login} has {shown} access to {repository}; blessing needs write, maintain or admin",
    )


def check_not_fork(pull: PullRequest, workloads: Sequence[str]) -> None:
    if not pull.is_fork:
        return
    source = pull.head_repository or "a deleted fork"
    # Only names that are plainly names go into a command someone may paste.
    names = "".join(f" {w}" for w in workloads if _WORKLOAD_RE.fullmatch(w))
    local = (
        f"git fetch origin pull/{pull.number}/head && git checkout {pull.head_sha}\n"
        f'allocgate bless{names} --reason "…"'
    )
    raise Refusal(
        f"This pull request comes from {md_text(source)}. allocgate does not build and run a "
        'fork\'s code in a workflow that holds a write token (that is a "pwn request"). '
        "A maintainer can review the change and bless it locally:\n\n"
        f"{md_fence(local, 'sh')}\n\n"
        "then push the new baseline to the pull request's branch.",
        f"pull request #{pull.number} comes from the fork {source}; bless it locally",
    )


def check_head(checked_out: str, pull: PullRequest) -> None:
    if checked_out == pull.head_sha:
        return
    raise Refusal(
        f"The checked-out commit {md_code(checked_out[:12])} is not the head of this pull request "
        f"({md_code(pull.head_sha[:12])}): it was pushed to after the comment. Nothing was blessed; "
        "comment again to bless the new head.",
        f"checked-out commit {checked_out[:12]} is not the PR head {pull.head_sha[:12]} (stale)",
    )


def check_reason(command: BlessCommand) -> str:
    if command.reason is None:
        raise Refusal(
            "A reason is required: write it on the lines below the command, e.g.\n\n"
            "```\n/allocgate bless\nThe cache trades 2 MiB for a 30% faster lookup.\n```",
            "no reason given below the command",
        )
    if len(command.reason) > MAX_REASON_CHARS:
        raise Refusal(
            f"The reason has {len(command.reason)} characters; at most {MAX_REASON_CHARS} are kept. "
            "Please shorten it.",
            f"the reason is longer than {MAX_REASON_CHARS} characters",
        )
    return command.reason


def check_workloads(named: Sequence[str], configured: Sequence[str]) -> tuple[str, ...]:
    """The names to bless (all configured ones when none are named)."""
    if not named:
        return tuple(configured)
    unknown = [n for n in named if n not in configured or not _WORKLOAD_RE.fullmatch(n)]
    if unknown:
        known = ", ".join(md_code(n) for n in configured) or "none"
        raise Refusal(
            f"Unknown workload {', '.join(md_code(n) for n in unknown)} (configured: {known}). "
            "The first line names workloads only; the reason goes on the lines below.",
            f"unknown workload {', '.join(unknown)}",
        )
    return tuple(dict.fromkeys(named))


# Replies.


@dataclass(frozen=True)
class Blessed:
    """What a successful bless did, for the reply."""

    login: str
    workloads: tuple[str, ...]
    totals: tuple[TotalChange, ...]
    reason: str
    commit_sha: str
    commit_url: str | None
    branch: str
    path: str


def refusal_reply(login: str, refusal: Refusal) -> str:
    return f"**allocgate bless refused** (asked by {md_text(login)})\n\n{refusal.markdown}\n"


def error_reply(login: str, message: str) -> str:
    return (
        f"**allocgate bless failed** (asked by {md_text(login)}); nothing was committed.\n\n"
        f"{md_text(message)}\n"
    )


def blessed_reply(done: Blessed) -> str:
    names = ", ".join(md_code(w) for w in done.workloads)
    commit = md_code(done.commit_sha[:12])
    if done.commit_url:
        commit = f"[{commit}]({_url(done.commit_url)})"
    rows = ["| workload | metric | before | after | Δ |", "|---|---|---:|---:|---:|"]
    for t in done.totals:
        units = dict(t.units)
        before = "—" if t.before is None else format_value(t.metric, t.before, units)
        after = "—" if t.after is None else format_value(t.metric, t.after, units)
        delta = (
            format_delta(t.metric, t.after - t.before, units)
            if t.before is not None and t.after is not None
            else "new"
        )
        rows.append(
            f"| {md_text(t.workload)} | {md_text(t.metric)} | {before} | {after} | {delta} |"
        )
    return (
        f"**allocgate blessed** {names} (asked by {md_text(done.login)}): "
        f"{md_text(done.path)} committed to {md_text(done.branch)} as {commit}.\n\n"
        + "\n".join(rows)
        + "\n\nReason:\n\n"
        + quote(done.reason)
        + "\n"
    )


def commit_message(workloads: Sequence[str], number: int, login: str) -> str:
    return f"allocgate: bless {', '.join(workloads)} for #{number}\n\nRequested by {login}."


# Helpers.


def _url(url: str) -> str:
    # Only our own API's answers get here, but keep the link target inert anyway.
    return re.sub(r"[\s()<>\"'`]", "", url)


def _mapping(doc: Any, key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, dict):
        raise GitHubError(f"{where}: expected an object at {key!r}")
    return value


def _string(doc: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or (not value and not empty):
        raise GitHubError(f"{where}: expected a string at {key!r}")
    return value


def _number(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GitHubError(f"{where}: expected a positive number at {key!r}")
    return value
