"""A `/allocgate bless` comment, start to finish: check, bless, commit, reply.

The order matters: nothing runs and nothing is written until the commenter may
write, the pull request is not a fork's, the checkout is the PR's head and a
reason is given. Each refusal is one reply and a non-zero exit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from allocgate import bless_api, bless_record, git
from allocgate.bless_comment import (
    Blessed,
    CommentEvent,
    Refusal,
    TotalChange,
    blessed_reply,
    check_head,
    check_not_fork,
    check_permission,
    check_reason,
    check_workloads,
    commit_message,
    error_reply,
    parse_command,
    refusal_reply,
)
from allocgate.bless_record import BlessRecord
from allocgate.config import Config, WorkloadConfig
from allocgate.errors import AllocgateError, GitHubError
from allocgate.gate import BlessOutcome
from allocgate.github import _Client

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_REFUSED = 0, 2

#: Blesses the workloads, recording who and why (`allocgate bless` does the same).
BlessFn = Callable[[Config, Sequence[WorkloadConfig], BlessRecord], BlessOutcome]


@dataclass(frozen=True)
class CommentBlessResult:
    exit_code: int
    message: str
    """One line for the log (never the comment body, never the token)."""
    reply_url: str | None = None


def bless_from_comment(
    event: CommentEvent,
    client: _Client,
    *,
    cwd: Path,
    load_config: Callable[[], Config],
    bless: BlessFn,
) -> CommentBlessResult:
    """Everything after the event is read: the checks, the bless, the commit and the reply."""
    command = parse_command(event.body)
    if command is None or not event.is_pull_request:
        where = "" if event.is_pull_request else " (not on a pull request)"
        return CommentBlessResult(EXIT_DONE, f"comment {event.comment_id} is no bless{where}")
    repo, number = event.repository, event.issue_number
    try:
        permission = bless_api.collaborator_permission(client, repo, event.login)
        check_permission(event.login, repo, permission)
        pull = bless_api.get_pull(client, repo, number)
        check_not_fork(pull, command.workloads)
        check_head(git.head(cwd), pull)
        reason = check_reason(command)
        config = load_config()
        names = check_workloads(command.workloads, list(config.workloads))
        path = git.repository_path(cwd, config.baseline)
        # The branch's baseline must be the one the checkout has: the sha of the
        # blob is the same in git and in the contents API.
        remote = bless_api.get_file(client, repo, path, pull.head_ref)
        local_sha = git.blob(cwd, "HEAD", path)
        if (remote.sha if remote else None) != local_sha:
            raise bless_api.BranchMoved(f"{path} on {pull.head_ref} is not the checked-out one")
        record = bless_record.from_comment(
            reason=reason, login=event.login, pull_request=number, head_sha=pull.head_sha
        )
        outcome = bless(config, config.select(names), record)
        commit = bless_api.put_file(
            client,
            repo,
            path,
            branch=pull.head_ref,
            content=config.baseline.read_bytes(),
            sha=remote.sha if remote else None,
            message=commit_message(names, number, event.login),
        )
    except Refusal as refusal:
        return _answer(client, event, refusal_reply(event.login, refusal), refusal.reason)
    except bless_api.BranchMoved as exc:
        moved = Refusal(
            "The pull request's branch moved while blessing (someone pushed), so nothing was "
            "committed. Comment again to bless the new head.",
            str(exc),
        )
        return _answer(client, event, refusal_reply(event.login, moved), moved.reason)
    except AllocgateError as exc:
        return _answer(client, event, error_reply(event.login, str(exc)), str(exc))
    done = Blessed(
        login=event.login,
        workloads=names,
        totals=_totals(config, names, outcome),
        reason=reason,
        commit_sha=commit.sha,
        commit_url=commit.url,
        branch=pull.head_ref,
        path=path,
    )
    url = bless_api.post_comment(client, repo, number, blessed_reply(done))
    _react(client, event, "+1")
    return CommentBlessResult(
        EXIT_DONE, f"blessed {', '.join(names)} on #{number} as {commit.sha[:12]}", url
    )


def _answer(client: _Client, event: CommentEvent, body: str, reason: str) -> CommentBlessResult:
    """A refusal or failure: one reply, a reaction, a non-zero exit."""
    url = bless_api.post_comment(client, event.repository, event.issue_number, body)
    _react(client, event, "confused")
    return CommentBlessResult(EXIT_REFUSED, f"bless refused: {reason}", url)


def _react(client: _Client, event: CommentEvent, content: str) -> None:
    # The reply carries the answer; a missing reaction is not worth failing over.
    try:
        bless_api.add_reaction(client, event.repository, event.comment_id, content)
    except GitHubError as exc:
        log.warning("could not react to comment %d: %s", event.comment_id, exc)


def _totals(config: Config, names: Sequence[str], outcome: BlessOutcome) -> tuple[TotalChange, ...]:
    changes = []
    for name in names:
        new = outcome.new[name]
        old = outcome.old.get(name)
        for metric in config.workloads[name].gate.metrics:
            changes.append(
                TotalChange(
                    workload=name,
                    metric=metric,
                    before=old.totals.get(metric) if old else None,
                    after=new.totals.get(metric),
                    units=new.units,
                )
            )
    return tuple(changes)
