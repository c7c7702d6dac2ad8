"""The GitHub REST client: the only code that talks HTTP. It gets a
`requests.Session` (see `make_session`) and a `GitHubContext` handed to it, so
tests point it at a server of their own; it retries what is worth retrying."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from allocgate import __version__
from allocgate.errors import GitHubError
from allocgate.github.context import GitHubContext
from allocgate.github.deadline import DeadlineAdapter, DeadlineExceeded
from allocgate.github.redact import RedactingFilter, redact

log = logging.getLogger(__name__)
log.addFilter(RedactingFilter())

DEFAULT_TIMEOUT = 30.0


def make_session(token: str, *, timeout: float = DEFAULT_TIMEOUT) -> requests.Session:
    """A session that authenticates as `token`; each request is answered in full within
    `timeout` seconds (a total deadline, not only per socket read) or fails."""
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": f"allocgate/{__version__}",
        }
    )
    adapter = DeadlineAdapter(timeout)
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


class ApiClient:
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
        # Nothing we build contains the token, but a server could echo it back (in
        # any spelling), and requests' errors show headers in a repr.
        return redact(text, self._ctx.token)

    def json(self, response: requests.Response, where: str) -> Any:
        """The decoded body, or an error: a 200 from a proxy or a login page may be HTML."""
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise GitHubError(
                self.redact(
                    f"{where}: the answer (HTTP {response.status_code}, {kind}) is not JSON"
                )
            ) from None

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
            except DeadlineExceeded as exc:
                # Data arrives, only too slowly: another try would be as slow.
                raise GitHubError(
                    f"{where} failed: no complete answer from {self._origin[1]} within "
                    f"{exc.seconds:g} s (the server sends too slowly)"
                ) from None
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
            # Masked before it is cut or its whitespace folded, which would change a
            # token's spelling or keep half of it.
            message = " ".join(self.redact(payload["message"]).split())[:200]
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
