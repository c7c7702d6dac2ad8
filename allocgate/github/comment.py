"""allocgate's one sticky comment on a pull request: found again by its marker
and its author, created or updated as the comment mode says."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests

from allocgate.errors import GitHubError
from allocgate.github.client import DEFAULT_RETRY, ApiClient, RetryPolicy
from allocgate.github.context import GitHubContext
from allocgate.github.limits import MAX_COMMENT_CHARS
from allocgate.github.redact import redact

log = logging.getLogger(__name__)

CommentMode = Literal["always", "on-change", "on-regression"]
COMMENT_MODES: tuple[CommentMode, ...] = ("always", "on-change", "on-regression")

CommentAction = Literal["created", "updated", "unchanged", "skipped", "forbidden"]

#: The login GitHub gives the Actions installation token (`GITHUB_TOKEN`).
ACTIONS_BOT_LOGIN = "github-actions[bot]"

FORK_SAFE_HINT = (
    "this is typical for pull requests from forks, whose workflows get a read-only token; "
    "to comment on them use the fork-safe workflow pair described in the README "
    "(examples/github/fork-safe-check.yml and examples/github/fork-safe-comment.yml)"
)

_MAX_PAGES = 1000


@dataclass(frozen=True)
class CommentResult:
    """What `upsert_comment` did."""

    action: CommentAction
    message: str
    """One line for a person; for `forbidden` a warning to show as such."""
    comment_id: int | None = None
    url: str | None = None


@dataclass(frozen=True)
class _Comment:
    id: int
    body: str
    url: str | None


def upsert_comment(
    session: requests.Session,
    ctx: GitHubContext,
    body: str,
    *,
    marker: str,
    mode: str = "always",
    regressed: bool,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> CommentResult:
    """Create or update allocgate's one comment on the pull request, as `mode` says.

    The earlier comment is the first one, over every page of the PR's comments,
    whose body contains `marker` and whose author is the token's own user. An
    Actions installation token (`GITHUB_TOKEN`) may not read `GET /user` (403);
    then any comment by `github-actions[bot]` or by an account of type `Bot`
    counts as ours.

    Modes: `always` creates or updates; `on-change` leaves an identical comment
    alone; `on-regression` posts nothing while there is no regression and no
    earlier comment, but still updates an earlier one (so it can say the
    regression is gone).

    A token that may not write comments (403/404, as on pull requests from
    forks) gives a `forbidden` result rather than an error; other failures raise
    GitHubError.
    """
    if mode not in COMMENT_MODES:
        raise GitHubError(f"comment mode must be one of {', '.join(COMMENT_MODES)}, got {mode!r}")
    # A report quotes profiles and configs; none of it may publish the token.
    body = redact(body, ctx.token)
    if not marker or marker not in body:
        raise GitHubError("the comment body does not contain its marker")
    if len(body) > MAX_COMMENT_CHARS:
        raise GitHubError(
            f"the comment has {len(body)} characters; GitHub takes at most {MAX_COMMENT_CHARS}"
        )
    client = ApiClient(session, ctx, retry)
    pr = ctx.pr_number
    issue_path = f"/repos/{ctx.repository}/issues"

    existing = _find_comment(client, ctx, marker)
    if existing is None:
        if mode == "on-regression" and not regressed:
            return CommentResult("skipped", f"no regression and no earlier comment on #{pr}")
        url = client.url(f"{issue_path}/{pr}/comments")
        response = client.request(
            "POST", url, json_body={"body": body}, ok=(200, 201), passthrough=(403, 404)
        )
        if response.status_code in (403, 404):
            return _forbidden(client, "POST", url, response, pr)
        created = _comment_from(client.json(response, f"POST {client.display(url)}"))
        return CommentResult("created", f"created comment on #{pr}", created.id, created.url)

    if mode == "on-change" and _same_text(existing.body, body):
        return CommentResult(
            "unchanged", f"comment on #{pr} is up to date", existing.id, existing.url
        )
    url = client.url(f"{issue_path}/comments/{existing.id}")
    response = client.request("PATCH", url, json_body={"body": body}, passthrough=(403, 404))
    if response.status_code in (403, 404):
        return _forbidden(client, "PATCH", url, response, pr, existing)
    updated = _comment_from(client.json(response, f"PATCH {client.display(url)}"))
    return CommentResult(
        "updated", f"updated comment on #{pr}", updated.id, updated.url or existing.url
    )


def _forbidden(
    client: ApiClient,
    method: str,
    url: str,
    response: requests.Response,
    pr: int,
    existing: _Comment | None = None,
) -> CommentResult:
    message = (
        f"warning: the token cannot write comments on pull request #{pr} "
        f"({method} {client.display(url)} answered HTTP {response.status_code}); "
        f"{FORK_SAFE_HINT}"
    )
    return CommentResult(
        "forbidden",
        message,
        existing.id if existing else None,
        existing.url if existing else None,
    )


def _same_text(old: str, new: str) -> bool:
    # Browsers and the API may hand back CRLF for a body sent with LF.
    return old.replace("\r\n", "\n") == new.replace("\r\n", "\n")


def _find_comment(client: ApiClient, ctx: GitHubContext, marker: str) -> _Comment | None:
    is_ours = _author_filter(client)
    for raw in _list_comments(client, ctx):
        body = raw.get("body")
        user = raw.get("user")
        if isinstance(body, str) and marker in body and isinstance(user, dict) and is_ours(user):
            return _comment_from(raw)
    return None


def _author_filter(client: ApiClient) -> Callable[[Mapping[str, Any]], bool]:
    response = client.request("GET", client.url("/user"), passthrough=(401, 403, 404))
    login = None
    if response.status_code == 200:
        payload = client.json(response, "GET /user")
        if isinstance(payload, dict) and isinstance(payload.get("login"), str):
            login = payload["login"]
    if login is not None:
        log.debug("looking for comments by %s", login)
        return lambda user: user.get("login") == login
    log.debug("GET /user answered HTTP %d: treating bot comments as ours", response.status_code)
    return lambda user: user.get("login") == ACTIONS_BOT_LOGIN or user.get("type") == "Bot"


def _list_comments(client: ApiClient, ctx: GitHubContext) -> Iterator[Mapping[str, Any]]:
    url: str | None = client.url(
        f"/repos/{ctx.repository}/issues/{ctx.pr_number}/comments?per_page=100"
    )
    seen: set[str] = set()
    while url is not None:
        if url in seen or len(seen) >= _MAX_PAGES:
            raise GitHubError(f"GET {client.display(url)}: the comment pages do not end")
        seen.add(url)
        response = client.request("GET", url)
        page = client.json(response, f"GET {client.display(url)}")
        if not isinstance(page, list):
            raise GitHubError(f"GET {client.display(url)}: expected a list of comments")
        yield from (item for item in page if isinstance(item, dict))
        next_url = response.links.get("next", {}).get("url")
        if next_url is not None and not client.same_origin(next_url):
            # Following it would send the token to another host.
            raise GitHubError(
                f"GET {client.display(url)}: the next page is on another host; not following it"
            )
        url = next_url


def _comment_from(raw: object) -> _Comment:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
        raise GitHubError("GitHub answered with a comment that has no id")
    body = raw.get("body")
    url = raw.get("html_url")
    return _Comment(
        id=raw["id"],
        body=body if isinstance(body, str) else "",
        url=url if isinstance(url, str) else None,
    )
