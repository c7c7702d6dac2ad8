"""The loopback GitHub stand-in of github_server.py, grown the endpoints a bless uses.

Added: a collaborator's permission, pull requests, the contents API on branches
(blob shas computed as git computes them, so they match `git rev-parse
COMMIT:PATH`; a PUT whose sha is not the file's current one answers 409, as
GitHub does), and reactions on comments. Every request is logged by the base.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from github_server import FakeGitHub

_PERMISSION_RE = re.compile(
    r"/repos/(?P<repo>[^/]+/[^/]+)/collaborators/(?P<login>[^/]+)/permission"
)
_PULL_RE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/pulls/(?P<number>\d+)")
_CONTENTS_RE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/contents/(?P<path>.+)")
_REACTIONS_RE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)/reactions")

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def blob_sha(data: bytes) -> str:
    """The sha git (and the contents API) gives a file's content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Branch:
    head: str
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    """What PUTs committed: message, path, sha of the new commit."""


class FakeGitHubRepo(FakeGitHub):
    """One repository's branches, pull requests and collaborators, besides the comments."""

    def __init__(self, token: str, repository: str, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.repository = repository
        self.permissions: dict[str, dict[str, str]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.branches: dict[str, Branch] = {}
        self.reactions: list[tuple[int, str]] = []
        self.snapshots: dict[str, dict[str, bytes]] = {}
        """Files at a commit sha, for contents GETs with `ref=<sha>`."""
        self.after_get: Callable[[str], None] | None = None
        """Called (under the lock) after each GET of contents: lets a test move the branch."""

    # State helpers.

    def grant(self, login: str, permission: str, role_name: str | None = None) -> None:
        self.permissions[login] = {"permission": permission, "role_name": role_name or permission}

    def add_branch(self, name: str, head: str, files: Mapping[str, bytes]) -> None:
        self.branches[name] = Branch(head, dict(files))
        self.snapshots[head] = dict(files)

    def open_pull(
        self,
        number: int,
        *,
        head_ref: str,
        head_sha: str,
        base_sha: str,
        head_repository: str | None = None,
    ) -> None:
        head_repo = head_repository or self.repository
        self.pulls[number] = {
            "number": number,
            "head": {
                "ref": head_ref,
                "sha": head_sha,
                "repo": {"full_name": head_repo} if head_repo != "deleted" else None,
            },
            "base": {"ref": "main", "sha": base_sha, "repo": {"full_name": self.repository}},
        }

    def writes(self) -> list[Any]:
        with self._lock:
            return [r for r in self.requests if r.method in WRITES]

    # The HTTP side.

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler_class()
        fake = self

        class Handler(base):  # type: ignore[misc,valid-type]
            def do_PUT(self) -> None:
                fake._dispatch(self, "PUT")

        return Handler

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        handler: BaseHTTPRequestHandler,
    ) -> tuple[int, Any, dict[str, str]]:
        match = _PERMISSION_RE.fullmatch(path)
        if match and method == "GET":
            grant = self.permissions.get(unquote(match["login"]))
            if grant is None or match["repo"] != self.repository:
                return 404, {"message": "Not Found"}, {}
            return 200, {**grant, "user": {"login": unquote(match["login"])}}, {}
        match = _PULL_RE.fullmatch(path)
        if match and method == "GET":
            pull = self.pulls.get(int(match["number"]))
            if pull is None or match["repo"] != self.repository:
                return 404, {"message": "Not Found"}, {}
            return 200, pull, {}
        match = _CONTENTS_RE.fullmatch(path)
        if match and match["repo"] == self.repository and method in ("GET", "PUT"):
            file_path = unquote(match["path"])
            if method == "GET":
                return self._get_contents(file_path, query.get("ref", ["main"])[0])
            return self._put_contents(file_path, body)
        match = _REACTIONS_RE.fullmatch(path)
        if match and method == "POST":
            self.reactions.append((int(match["id"]), body["content"]))
            return 201, {"id": len(self.reactions), "content": body["content"]}, {}
        return super()._route(method, path, query, body, handler)

    def _get_contents(self, path: str, ref: str) -> tuple[int, Any, dict[str, str]]:
        branch = self.branches.get(ref)
        files = branch.files if branch else self.snapshots.get(ref, {})
        data = files.get(path)
        if self.after_get is not None:
            self.after_get(path)
        if data is None:
            return 404, {"message": "Not Found"}, {}
        encoded = base64.encodebytes(data).decode("ascii")  # GitHub wraps at 60 columns
        return 200, {"type": "file", "path": path, "sha": blob_sha(data), "content": encoded}, {}

    def _put_contents(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        branch = self.branches.get(body.get("branch", ""))
        if branch is None:
            return 404, {"message": "Branch not found"}, {}
        current = branch.files.get(path)
        if current is not None and body.get("sha") != blob_sha(current):
            return 409, {"message": f"{path} does not match {body.get('sha')}"}, {}
        if current is None and body.get("sha") is not None:
            return 409, {"message": f"{path} does not exist"}, {}
        data = base64.b64decode(body["content"])
        branch.files[path] = data
        commit = hashlib.sha1(f"{branch.head}{path}{blob_sha(data)}".encode()).hexdigest()
        branch.head = commit
        branch.commits.append({"message": body["message"], "path": path, "sha": commit})
        return (
            200 if current is not None else 201,
            {
                "content": {"path": path, "sha": blob_sha(data)},
                "commit": {
                    "sha": commit,
                    "html_url": f"https://github.example/{self.repository}/commit/{commit}",
                },
            },
            {},
        )


@contextmanager
def running_repo(token: str, repository: str) -> Iterator[FakeGitHubRepo]:
    server = FakeGitHubRepo(token, repository).start()
    try:
        yield server
    finally:
        server.stop()
