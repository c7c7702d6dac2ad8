"""A `/allocgate bless` comment, start to finish: check, bless, commit, reply.

The order matters: nothing runs and nothing is written until the commenter may
write, the pull request is not a fork's, the checkout is the PR's head and a
reason is given. Each refusal is one reply and a non-zero exit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate import bless_record, git
from allocgate.baseline_change import TotalChange
from allocgate.bless_record import BlessRecord
from allocgate.config import Config, WorkloadConfig
from allocgate.errors import AllocgateError, GitHubError
from allocgate.github import bless_api
from allocgate.github.bless_command import (
    Blessed,
    CommentEvent,
    Refusal,
    blessed_reply,
    check_head,
    check_not_fork,
    check_permission,
    check_reason,
    check_workloads,
    commit_message,
    error_reply,
    parse_command,
    read_comment_event,
    refusal_reply,
)
from allocgate.github.client import DEFAULT_RETRY, ApiClient, make_session
from allocgate.github.context import DEFAULT_API_URL, DEFAULT_SERVER_URL, GitHubContext

if TYPE_CHECKING:
    from allocgate.api import BlessOutcome

    #: Blesses the workloads, recording who and why (`allocgate bless` does the same).
    BlessFn = Callable[[Config, Sequence[WorkloadConfig], BlessRecord], BlessOutcome]

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_REFUSED = 0, 2


@dataclass(frozen=True)
class CommentBlessResult:
    exit_code: int
    message: str
    """One line for the log (never the comment body, never the token)."""
    reply_url: str | None = None


def from_environment(
    env: Mapping[str, str],
    *,
    cwd: Path,
    token_env: str,
    load_config: Callable[[], Config],
    bless: BlessFn,
) -> CommentBlessResult:
    """Reads the event and the token as GitHub Actions provides them, then `bless_from_comment`.

    A comment that is no bless is answered before the token is even looked at.
    """
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        raise GitHubError(
            "environment variable GITHUB_EVENT_PATH is not set: bless --from-comment runs in "
            "an issue_comment workflow (see examples/github/bless-from-comment.yml)"
        )
    event = read_comment_event(Path(path))
    if parse_command(event.body) is None or not event.is_pull_request:
        return _ignored(event)
    token = env.get(token_env, "")
    if not token:
        raise GitHubError(
            f"environment variable {token_env} is not set or empty: "
            "a bless from a comment needs a token that may write contents and comments"
        )
    ctx = GitHubContext(
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        repository=event.repository,
        pr_number=event.issue_number,
        token=token,
        server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
    )
    with make_session(token) as session:
        client = ApiClient(session, ctx, DEFAULT_RETRY)
        return bless_from_comment(event, client, cwd=cwd, load_config=load_config, bless=bless)


def _ignored(event: CommentEvent) -> CommentBlessResult:
    where = "" if event.is_pull_request else " on an issue that is no pull request"
    return CommentBlessResult(
        EXIT_DONE, f"comment {event.comment_id}{where} is no /allocgate bless; nothing to do"
    )


def bless_from_comment(
    event: CommentEvent,
    client: ApiClient,
    *,
    cwd: Path,
    load_config: Callable[[], Config],
    bless: BlessFn,
) -> CommentBlessResult:
    """Everything after the event is read: the checks, the bless, the commit and the reply."""
    command = parse_command(event.body)
    if command is None or not event.is_pull_request:
        return _ignored(event)
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
    message = f"blessed {', '.join(names)} on #{number} as {commit.sha[:12]}"
    try:
        url = bless_api.post_comment(client, repo, number, blessed_reply(done))
    except GitHubError as exc:
        # The commit is made; failing now would only hide that.
        return CommentBlessResult(EXIT_DONE, f"{message}, but the reply failed: {exc}")
    _react(client, event, "+1")
    return CommentBlessResult(EXIT_DONE, message, url)


def _answer(client: ApiClient, event: CommentEvent, body: str, reason: str) -> CommentBlessResult:
    """A refusal or failure: one reply, a reaction, a non-zero exit."""
    url = bless_api.post_comment(client, event.repository, event.issue_number, body)
    _react(client, event, "confused")
    return CommentBlessResult(EXIT_REFUSED, f"bless refused: {reason}", url)


def _react(client: ApiClient, event: CommentEvent, content: str) -> None:
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
