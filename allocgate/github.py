"""GitHub: the sticky pull-request comment, the step summary and the step outputs.

This is the only module that talks HTTP. Only `GitHubContext.from_env` reads the
environment; the functions that call the API get a `requests.Session` (see
`make_session`) and a `GitHubContext` handed to them, so tests point them at a
server of their own.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from allocgate import __version__
from allocgate.errors import GitHubError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"
DEFAULT_TIMEOUT = 30.0

CommentMode = Literal["always", "on-change", "on-regression"]
COMMENT_MODES: tuple[CommentMode, ...] = ("always", "on-change", "on-regression")

CommentAction = Literal["created", "updated", "unchanged", "skipped", "forbidden"]

#: The login GitHub gives the Actions installation token (`GITHUB_TOKEN`).
ACTIONS_BOT_LOGIN = "github-actions[bot]"

#: GitHub rejects longer comment bodies with a bare 422.
MAX_COMMENT_CHARS = 65536

#: GitHub drops a step summary over 1 MiB with an error instead of showing it.
MAX_STEP_SUMMARY_BYTES = 1024 * 1024

FORK_SAFE_HINT = (
    "this is typical for pull requests from forks, whose workflows get a read-only token; "
    "to comment on them use the fork-safe workflow pair described in the README "
    "(examples/github/fork-safe-check.yml and examples/github/fork-safe-comment.yml)"
)

_REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")
_OUTPUT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_PAGES = 1000


@dataclass(frozen=True)
class GitHubContext:
    """Where to talk to GitHub, about which pull request, with which token."""

    api_url: str
    """REST API root without a trailing slash (`GITHUB_API_URL`; differs on GHES)."""
    repository: str
    """`owner/name`."""
    pr_number: int
    """The pull request (an issue number) that carries the comment."""
    token: str = field(repr=False)
    """Never printed: excluded from repr and redacted from every error message."""
    server_url: str = DEFAULT_SERVER_URL
    run_id: str | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        pr: int | None = None,
        token_env: str = "GITHUB_TOKEN",
    ) -> GitHubContext:
        """Build the context from the variables GitHub Actions sets.

        `pr` wins over the event payload; a `workflow_run` event carries no
        pull request of its own, so there the caller must pass it.
        """
        token = env.get(token_env, "")
        if not token:
            raise GitHubError(
                f"environment variable {token_env} is not set or empty: "
                "allocgate needs a token to talk to the GitHub API"
            )
        repository = env.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise GitHubError(
                "environment variable GITHUB_REPOSITORY is not set: expected owner/name"
            )
        if not _REPOSITORY_RE.fullmatch(repository):
            raise GitHubError(
                f"environment variable GITHUB_REPOSITORY is {repository!r}: expected owner/name"
            )
        if pr is None:
            pr = _pr_number_from_event(env)
        elif pr <= 0:
            raise GitHubError(f"pull request number must be positive, got {pr}")
        return cls(
            api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            repository=repository,
            pr_number=pr,
            token=token,
            server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
            run_id=env.get("GITHUB_RUN_ID") or None,
        )

    @property
    def run_url(self) -> str | None:
        """The web page of this workflow run, or None outside of Actions."""
        if self.run_id is None:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def _pr_number_from_event(env: Mapping[str, str]) -> int:
    event_name = env.get("GITHUB_EVENT_NAME") or "unknown"
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        raise GitHubError(
            "environment variable GITHUB_EVENT_PATH is not set, so the pull request is unknown: "
            "pass its number explicitly (--pr)"
        )
    number = _pr_number_in_event(_read_event(path))
    if number is None:
        raise GitHubError(
            f"the {event_name} event in GITHUB_EVENT_PATH ({path}) names no pull request: "
            "pass its number explicitly (--pr)"
        )
    return number


def _read_event(path: str) -> Mapping[str, Any]:
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GitHubError(
            f"cannot read the event file GITHUB_EVENT_PATH={path}: {exc.strerror}"
        ) from exc
    except ValueError as exc:
        raise GitHubError(f"the event file GITHUB_EVENT_PATH={path} is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise GitHubError(f"the event file GITHUB_EVENT_PATH={path} is not a JSON object")
    return event


def _pr_number_in_event(event: Mapping[str, Any]) -> int | None:
    # Keyed on the payload rather than GITHUB_EVENT_NAME: pull_request,
    # pull_request_target and the review events all carry `pull_request`.
    pull_request = event.get("pull_request")
    if isinstance(pull_request, dict):
        return _positive_int(pull_request.get("number"))
    issue = event.get("issue")
    # issue_comment fires for issues too; only an issue with `pull_request` is a PR.
    if isinstance(issue, dict) and issue.get("pull_request"):
        return _positive_int(issue.get("number"))
    return None


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request sent through the session a timeout unless it has one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=self._timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def make_session(token: str, *, timeout: float = DEFAULT_TIMEOUT) -> requests.Session:
    """A session that authenticates as `token` and never waits longer than `timeout` seconds."""
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"allocgate/{__version__}",
        }
    )
    adapter = _TimeoutAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry 5xx answers, lost connections and rate limits."""

    attempts: int = 5
    """Tries in all, the first one included."""
    base_delay: float = 1.0
    """Seconds before the first retry; doubled for each further one."""
    max_delay: float = 60.0
    """No single wait is longer, whatever `Retry-After` asks for."""
    sleep: Callable[[float], None] = time.sleep
    """Injected so tests can record the waits instead of sitting through them."""


DEFAULT_RETRY = RetryPolicy()


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


class _Client:
    """Sends requests to one API root, retrying what is worth retrying."""

    def __init__(self, session: requests.Session, ctx: GitHubContext, retry: RetryPolicy) -> None:
        self._session = session
        self._ctx = ctx
        self._retry = retry
        api = urlsplit(ctx.api_url)
        self._origin = (api.scheme, api.netloc)

    def url(self, path: str) -> str:
        return f"{self._ctx.api_url}{path}"

    def display(self, url: str) -> str:
        """The part of a URL that goes into messages: path and query, no host."""
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def redact(self, text: str) -> str:
        # Nothing we build contains the token, but a server could echo it back.
        return text.replace(self._ctx.token, "***") if self._ctx.token else text

    def same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == self._origin

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        passthrough: tuple[int, ...] = (),
    ) -> requests.Response:
        """Send, retrying transient failures; a status in `ok` or `passthrough` is returned.

        Anything else raises GitHubError naming the method, path and status.
        """
        where = f"{method} {self.display(url)}"
        policy = self._retry
        attempts = max(1, policy.attempts)
        for attempt in range(1, attempts + 1):
            backoff = min(policy.base_delay * 2 ** (attempt - 1), policy.max_delay)
            try:
                response = self._session.request(method, url, json=json_body)
            except requests.ConnectionError as exc:
                failure = f"could not reach {self._origin[1]} ({type(exc).__name__})"
                delay: float | None = backoff
            except requests.Timeout as exc:
                failure = f"no answer from {self._origin[1]} in time ({type(exc).__name__})"
                # The request may have arrived: sending a POST again could comment twice.
                delay = backoff if method in ("GET", "PATCH") else None
            except requests.RequestException as exc:
                raise GitHubError(self.redact(f"{where} failed: {exc}")) from None
            else:
                status = response.status_code
                log.debug("%s -> HTTP %d (attempt %d)", where, status, attempt)
                if status in ok:
                    return response
                delay = self._retry_delay(response, backoff, where)
                # A rate-limited 403 is worth waiting for even where a plain 403 is expected.
                if status in passthrough and delay is None:
                    return response
                failure = f"HTTP {status}{self._github_message(response)}"
            if delay is None or attempt == attempts:
                suffix = f" after {attempt} attempts" if attempt > 1 else ""
                raise GitHubError(self.redact(f"{where} failed{suffix}: {failure}"))
            log.info("%s: %s; retrying in %.1f s", where, self.redact(failure), delay)
            policy.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _retry_delay(self, response: requests.Response, backoff: float, where: str) -> float | None:
        """Seconds to wait before trying again, or None when retrying cannot help."""
        status = response.status_code
        max_delay = self._retry.max_delay
        if status >= 500:
            return backoff
        if status not in (403, 429):
            return None
        retry_after = _parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            return min(max(retry_after, 0.0), max_delay)
        if status == 403 and "secondary rate limit" in response.text.lower():
            return backoff
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = _parse_float(response.headers.get("x-ratelimit-reset"))
            if reset is None:
                return None
            wait = max(reset - time.time(), 0.0) + 1.0
            if wait > max_delay:
                # The primary limit resets hourly; sleeping out the cap and failing
                # anyway only makes the job slower.
                resets = time.strftime("%H:%M:%S UTC", time.gmtime(reset))
                raise GitHubError(f"{where} failed: the API rate limit is exhausted until {resets}")
            return wait
        if status == 429:
            return backoff
        return None

    def _github_message(self, response: requests.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            return ""
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            message = " ".join(payload["message"].split())[:200]
            return f" ({message})"
        return ""


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    seconds = _parse_float(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


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
    if not marker or marker not in body:
        raise GitHubError("the comment body does not contain its marker")
    if len(body) > MAX_COMMENT_CHARS:
        raise GitHubError(
            f"the comment has {len(body)} characters; GitHub takes at most {MAX_COMMENT_CHARS}"
        )
    client = _Client(session, ctx, retry)
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
        created = _comment_from(response.json())
        return CommentResult("created", f"created comment on #{pr}", created.id, created.url)

    if mode == "on-change" and _same_text(existing.body, body):
        return CommentResult(
            "unchanged", f"comment on #{pr} is up to date", existing.id, existing.url
        )
    url = client.url(f"{issue_path}/comments/{existing.id}")
    response = client.request("PATCH", url, json_body={"body": body}, passthrough=(403, 404))
    if response.status_code in (403, 404):
        return _forbidden(client, "PATCH", url, response, pr, existing)
    updated = _comment_from(response.json())
    return CommentResult(
        "updated", f"updated comment on #{pr}", updated.id, updated.url or existing.url
    )


def _forbidden(
    client: _Client,
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


def _find_comment(client: _Client, ctx: GitHubContext, marker: str) -> _Comment | None:
    is_ours = _author_filter(client)
    for raw in _list_comments(client, ctx):
        body = raw.get("body")
        user = raw.get("user")
        if isinstance(body, str) and marker in body and isinstance(user, dict) and is_ours(user):
            return _comment_from(raw)
    return None


def _author_filter(client: _Client) -> Callable[[Mapping[str, Any]], bool]:
    response = client.request("GET", client.url("/user"), passthrough=(401, 403, 404))
    login = None
    if response.status_code == 200:
        payload = response.json()
        if isinstance(payload, dict) and isinstance(payload.get("login"), str):
            login = payload["login"]
    if login is not None:
        log.debug("looking for comments by %s", login)
        return lambda user: user.get("login") == login
    log.debug("GET /user answered HTTP %d: treating bot comments as ours", response.status_code)
    return lambda user: user.get("login") == ACTIONS_BOT_LOGIN or user.get("type") == "Bot"


def _list_comments(client: _Client, ctx: GitHubContext) -> Iterator[Mapping[str, Any]]:
    url: str | None = client.url(
        f"/repos/{ctx.repository}/issues/{ctx.pr_number}/comments?per_page=100"
    )
    seen: set[str] = set()
    while url is not None:
        if url in seen or len(seen) >= _MAX_PAGES:
            raise GitHubError(f"GET {client.display(url)}: the comment pages do not end")
        seen.add(url)
        response = client.request("GET", url)
        try:
            page = response.json()
        except ValueError as exc:
            raise GitHubError(f"GET {client.display(url)}: the answer is not JSON") from exc
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


def append_step_summary(path: Path, markdown: str) -> None:
    """Append `markdown` to the job summary file (`$GITHUB_STEP_SUMMARY`)."""
    if not markdown.endswith("\n"):
        markdown += "\n"
    try:
        used = path.stat().st_size
    except FileNotFoundError:
        used = 0
    data = markdown.encode("utf-8")
    room = MAX_STEP_SUMMARY_BYTES - used
    if len(data) > room:
        note = "\n\n*allocgate: the rest of this report exceeds GitHub's 1 MiB summary limit.*\n"
        keep = max(room - len(note.encode("utf-8")), 0)
        # Cut on a character boundary so the file stays valid UTF-8.
        data = data[:keep].decode("utf-8", errors="ignore").encode("utf-8")
        data += note.encode("utf-8") if keep else b""
    with path.open("ab") as handle:
        handle.write(data)


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs to `path` (`$GITHUB_OUTPUT`), multi-line values as heredocs."""
    lines: list[str] = []
    for name, value in outputs.items():
        if not _OUTPUT_NAME_RE.fullmatch(name):
            raise GitHubError(f"output name {name!r} is not allowed")
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))
