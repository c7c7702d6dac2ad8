"""A small fake of the GitHub REST API on 127.0.0.1, for testing allocgate.github.

It is a real HTTP server (ThreadingHTTPServer in a thread, port 0) with
in-memory state: issue comments with ids and authors, `Link` pagination that
honours `per_page`, `GET /user`, injected failures, and a log of every request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_COMMENTS_RE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments")
_COMMENT_RE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)")

USER = {"login": "allocgate-user", "id": 1, "type": "User"}
ACTIONS_BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}


@dataclass
class Failure:
    """Answer the next `times` requests matching `method` and `path` with `status`."""

    method: str
    path: str
    """A regular expression that must match the whole path (no query)."""
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    """Seconds to wait before answering, to make clients time out."""


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class FakeGitHub:
    """In-memory GitHub: one repository's issue comments and the token's user."""

    def __init__(self, token: str, *, user: Mapping[str, Any] | None = None) -> None:
        self.token = token
        self.user: Mapping[str, Any] | None = dict(user) if user is not None else dict(USER)
        """The token's user; None makes `GET /user` answer 403 like an Actions token."""
        self.comments: dict[int, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeGitHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        # A short poll keeps shutdown() quick.
        self._server.serve_forever(poll_interval=0.02)

    # State helpers for tests.

    def add_comment(
        self, repo: str, number: int, body: str, user: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._lock:
            return self._add_comment(repo, number, body, dict(user or USER))

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(c) for c in self.comments.values() if (c["repo"], c["issue"]) == (repo, number)
            ]

    def fail(self, method: str, path: str, status: int, **kwargs: Any) -> None:
        with self._lock:
            self.failures.append(Failure(method, path, status, **kwargs))

    def requests_to(self, method: str, path_re: str = ".*") -> list[LoggedRequest]:
        with self._lock:
            return [
                r for r in self.requests if r.method == method and re.fullmatch(path_re, r.path)
            ]

    def _add_comment(
        self, repo: str, number: int, body: str, user: dict[str, Any]
    ) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "repo": repo,
            "issue": number,
            "body": body,
            "user": user,
            "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{self._next_id}",
        }
        self.comments[self._next_id] = comment
        return dict(comment)

    # The HTTP side.

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._dispatch(self, "GET")

            def do_POST(self) -> None:
                fake._dispatch(self, "POST")

            def do_PATCH(self) -> None:
                fake._dispatch(self, "PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                LoggedRequest(method, parts.path, query, dict(handler.headers.items()), body)
            )
            failure = self._take_failure(method, parts.path)
        if failure is not None:
            time.sleep(failure.delay)
            payload = failure.body if failure.body is not None else {"message": "injected"}
            self._send(handler, failure.status, payload, failure.headers)
            return
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._send(handler, 401, {"message": "Bad credentials"})
            return
        with self._lock:
            status, payload, headers = self._route(method, parts.path, query, body, handler)
        self._send(handler, status, payload, headers)

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and re.fullmatch(failure.path, path):
                failure.times -= 1
                return failure
        return None

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        handler: BaseHTTPRequestHandler,
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/user" and method == "GET":
            if self.user is None:
                return 403, {"message": "Resource not accessible by integration"}, {}
            return 200, self.user, {}
        match = _COMMENTS_RE.fullmatch(path)
        if match and method == "GET":
            return self._list(match["repo"], int(match["number"]), path, query, handler)
        if match and method == "POST":
            user = self.user if self.user is not None else ACTIONS_BOT
            created = self._add_comment(
                match["repo"], int(match["number"]), body["body"], dict(user)
            )
            return 201, _public(created), {}
        match = _COMMENT_RE.fullmatch(path)
        if match and method == "PATCH":
            comment = self.comments.get(int(match["id"]))
            if comment is None or comment["repo"] != match["repo"]:
                return 404, {"message": "Not Found"}, {}
            comment["body"] = body["body"]
            return 200, _public(comment), {}
        return 404, {"message": "Not Found"}, {}

    def _list(
        self,
        repo: str,
        number: int,
        path: str,
        query: dict[str, list[str]],
        handler: BaseHTTPRequestHandler,
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        items = [
            _public(c) for c in self.comments.values() if (c["repo"], c["issue"]) == (repo, number)
        ]
        last = max((len(items) + per_page - 1) // per_page, 1)
        host = handler.headers.get("Host")
        links = []
        if page < last:
            links.append(f'<http://{host}{path}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<http://{host}{path}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<http://{host}{path}?per_page={per_page}&page=1>; rel="first"')
            links.append(f'<http://{host}{path}?per_page={per_page}&page={page - 1}>; rel="prev"')
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, items[(page - 1) * per_page : page * per_page], headers

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout test); nothing to answer.
            pass


def _public(comment: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if k not in ("repo", "issue")}


@contextmanager
def running(token: str, **kwargs: Any) -> Iterator[FakeGitHub]:
    server = FakeGitHub(token, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
