"""The REST calls a bless from a comment makes, on top of `allocgate.github.client`.

Each function is one request (retried by the client where that is safe) and
returns a plain value; what the answers mean is decided in `bless_comment`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from allocgate.errors import GitHubError
from allocgate.github.bless_command import PullRequest, pull_request
from allocgate.github.client import ApiClient

#: Reactions the API accepts on a comment.
REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})


class BranchMoved(GitHubError):
    """The contents API answered 409: the branch is no longer where the bless started."""


@dataclass(frozen=True)
class RemoteFile:
    sha: str
    """The blob sha, the same as `git rev-parse COMMIT:PATH`."""
    content: bytes


@dataclass(frozen=True)
class Commit:
    sha: str
    url: str | None


def collaborator_permission(client: ApiClient, repository: str, login: str) -> Mapping[str, Any]:
    """The commenter's permission; someone who is no collaborator has none."""
    url = client.url(f"/repos/{repository}/collaborators/{quote(login, safe='')}/permission")
    response = client.request("GET", url, passthrough=(404,))
    if response.status_code == 404:
        return {"permission": "none", "role_name": "none"}
    return _object(client, url, response)


def get_pull(client: ApiClient, repository: str, number: int) -> PullRequest:
    url = client.url(f"/repos/{repository}/pulls/{number}")
    return pull_request(_object(client, url, client.request("GET", url)), number)


def get_file(client: ApiClient, repository: str, path: str, ref: str) -> RemoteFile | None:
    """The file at `ref`, or None when it does not exist there."""
    url = client.url(f"{_contents(repository, path)}?ref={quote(ref, safe='')}")
    response = client.request("GET", url, passthrough=(404,))
    if response.status_code == 404:
        return None
    doc = _object(client, url, response)
    sha, content = doc.get("sha"), doc.get("content")
    if not isinstance(sha, str) or not isinstance(content, str):
        raise GitHubError(f"GET {client.display(url)}: the answer is not a file")
    try:
        data = base64.b64decode(content, validate=False)
    except ValueError as exc:
        raise GitHubError(f"GET {client.display(url)}: the content is not base64") from exc
    return RemoteFile(sha, data)


def put_file(
    client: ApiClient,
    repository: str,
    path: str,
    *,
    branch: str,
    content: bytes,
    sha: str | None,
    message: str,
) -> Commit:
    """Commits `content` to `branch`; `sha` is the blob it replaces (None: a new file).

    A 409 raises BranchMoved and is not retried: the branch changed under us,
    and committing over that change is exactly what the sha is there to stop.
    """
    url = client.url(_contents(repository, path))
    body: dict[str, Any] = {
        "message": message,
        "content": base64.b64encode(content).decode("ascii"),
        "branch": branch,
    }
    if sha is not None:
        body["sha"] = sha
    response = client.request("PUT", url, json_body=body, ok=(200, 201), passthrough=(409,))
    if response.status_code == 409:
        raise BranchMoved(
            f"PUT {client.display(url)} answered HTTP 409: {branch} moved while blessing"
        )
    commit = _object(client, url, response).get("commit")
    if not isinstance(commit, dict) or not isinstance(commit.get("sha"), str):
        raise GitHubError(f"PUT {client.display(url)}: the answer names no commit")
    html_url = commit.get("html_url")
    return Commit(commit["sha"], html_url if isinstance(html_url, str) else None)


def post_comment(client: ApiClient, repository: str, number: int, body: str) -> str | None:
    """Replies on the pull request; returns the new comment's URL."""
    url = client.url(f"/repos/{repository}/issues/{number}/comments")
    response = client.request("POST", url, json_body={"body": body}, ok=(200, 201))
    html_url = _object(client, url, response).get("html_url")
    return html_url if isinstance(html_url, str) else None


def add_reaction(client: ApiClient, repository: str, comment_id: int, content: str) -> None:
    if content not in REACTIONS:
        raise GitHubError(f"unknown reaction {content!r}")
    url = client.url(f"/repos/{repository}/issues/comments/{comment_id}/reactions")
    client.request("POST", url, json_body={"content": content}, ok=(200, 201))


def _contents(repository: str, path: str) -> str:
    return f"/repos/{repository}/contents/{quote(path, safe='/')}"


def _object(client: ApiClient, url: str, response: requests.Response) -> Mapping[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise GitHubError(f"{client.display(url)}: expected a JSON object")
    return doc
